package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// vws console -f behind by more than one answer (1 MiB) asks again at once, not after
// its half-second pause: paced at 1 MiB per pause it could not keep up with a guest
// writing 2 MiB/s, and virtlogd would rotate away what it had not read yet.
func TestCLIConsoleFollowCatchesUpWithoutPausing(t *testing.T) {
	console := strings.Repeat("0123456789abcde\n", 8<<16) // 8 MiB already written: 7 pauses
	s := fixedConsoleManager(console)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	run(ctx, []string{"console", "k", "-f", "--host", s.URL}, &stdout, &stderr)
	if stdout.Len() != len(console) {
		t.Fatalf("following for 3 s a console 8 MiB long printed %d bytes of it; stderr %q", stdout.Len(), stderr.String())
	}
}
