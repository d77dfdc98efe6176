package repository

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
)

// TestForeignWithdrawalsKeepAHostsEndedCheckOuts: any host identity may ask again,
// without OnBehalfOf, for a check-out of any workspace, which withdraws it. Another
// host's withdrawals must neither push a host's ended check-outs out of the record
// (its late copy would then lock the workspace for nobody) nor end a check-out name
// that host has not sent yet.
func TestForeignWithdrawalsKeepAHostsEndedCheckOuts(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	nodeA := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node-a"})
	mallory := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/mallory"})
	key := f.create("victim", "", "")
	m, err := f.r.CheckOut(nodeA, key, "node-a", "req-a", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.CheckIn(nodeA, key, CheckInRequest{Token: m.Token, OverlayDigest: image(m, "overlay").Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * maxEndedRequests {
		if _, err := f.r.CheckOut(mallory, key, "mallory", fmt.Sprintf("junk-%d", i), nil, nil); !errors.Is(err, errdefs.ErrState) {
			t.Fatalf("mallory's withdrawal %d: %v", i, err)
		}
	}
	if _, err := f.r.CheckOut(mallory, key, "mallory", "req-a2", nil, nil); !errors.Is(err, errdefs.ErrState) {
		t.Fatalf("mallory withdrawing node-a's next request name: %v", err)
	}
	if _, err := f.r.CheckOut(nodeA, key, "node-a", "req-a", nil, &tester); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "late copy") {
		t.Fatalf("node-a's late copy of its checked-in check-out, after another host's withdrawals: %v", err)
	}
	f.wantUntouched(key)
	if _, err := f.r.CheckOut(nodeA, key, "node-a", "req-a2", nil, &tester); err != nil {
		t.Fatalf("node-a's new check-out under a name another host withdrew: %v", err)
	}
}
