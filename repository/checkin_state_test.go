package repository

import (
	"context"
	"errors"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestCheckInRunningIsRefused: a workspace in the repository runs nowhere, so a
// CheckIn saying it was left running is refused, and changes nothing: the workspace
// stays checked out, shut down as it went out, and the holder may check it in truly.
func TestCheckInRunningIsRefused(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("running", "", "")
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	ov := image(m, "overlay")
	_, _, err = f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: ov.Digest, State: "running", OverlaySize: -1, MemorySize: -1})
	if !errors.Is(err, errdefs.ErrBadRequest) {
		t.Errorf("CheckIn as running: %v; the workspace is now %s/%s", err, f.prop(key, PropDeployment), f.prop(key, PropState))
	}
	if d, s, c := f.prop(key, PropDeployment), f.prop(key, PropState), f.chain(key); d != "staging" || s != "shutdown" || c.Lock != m.Token {
		t.Fatalf("a refused check-in left deployment %q, state %q, lock %q (want staging, shutdown, %q)", d, s, c.Lock, m.Token)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: ov.Digest, State: "shutdown", OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	if s := f.prop(key, PropState); s != "shutdown" {
		t.Fatalf("state %q after checking in shut down", s)
	}
}
