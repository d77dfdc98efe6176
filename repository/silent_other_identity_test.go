package repository

import (
	"context"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
)

// TestSilentMarkStaysWhenAnotherIdentityAnnouncesTheName: node7 goes silent with a
// workspace out (marked), then another identity announces the name node7 (the machine
// reinstalled with a new certificate). The lock's holder is still not heard from —
// Reclaim takes the workspace as from a silent host — so vw:hostSilentSince must go
// on saying so, not vanish as if the host that runs it were back.
func TestSilentMarkStaysWhenAnotherIdentityAnnouncesTheName(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	f.announceNode7(t)
	key := f.outOnNode7(t, "out")
	advance(11 * time.Second)
	f.r.markSilentHosts(ctx)
	since := f.prop(key, PropHostSilentSince)
	if since == "" {
		t.Fatal("precondition: workspace on silent node7 not marked")
	}
	other := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7-reinstalled"})
	if _, err := f.r.announceHost(other, announcement(t, goodHost, "PT10S")); err != nil {
		t.Fatal(err)
	}
	f.r.markSilentHosts(ctx)
	if got := f.prop(key, PropHostSilentSince); got != since {
		t.Fatalf("hostSilentSince %q once another identity announces node7, want %q: the lock's holder has not been heard from", got, since)
	}
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	if _, _, err := f.r.Reclaim(admin, key); err != nil {
		t.Fatalf("Reclaim of the workspace whose holder is not heard from: %v", err)
	}
	if got := f.prop(key, PropHostSilentSince); got != "" {
		t.Fatalf("hostSilentSince %q after the reclaim", got)
	}
}
