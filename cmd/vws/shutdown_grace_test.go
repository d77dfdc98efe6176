package main

import (
	"context"
	"testing"
)

// --grace is how long a normal shutdown waits for the guest; a trash shutdown forces
// it off at once and a serialize saves its RAM without asking it, whatever --grace
// says: the flag is refused with them, before anything is sent, rather than ignored.
func TestShutdownRefusesGraceWithAModeThatWaitsForNothing(t *testing.T) {
	_, hits := countingServer(t)
	for _, mode := range []string{"trash", "serialize", "Trash"} {
		t.Run(mode, func(t *testing.T) {
			wantError(t, vwsRun(t, context.Background(), "shutdown", "k", "--mode", mode, "--grace", "2m"), "--grace", "--mode normal")
		})
	}
	if hits.Load() != 0 {
		t.Errorf("%d requests reached the server: --grace was sent with a mode that ignores it", hits.Load())
	}
}
