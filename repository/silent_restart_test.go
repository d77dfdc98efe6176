package repository

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
)

// TestSilentHostSurvivesARestartAfterItsAddressWasAnnouncedAgain: node7 goes silent
// with a workspace out there, and its manager's address is then announced by another
// identity under another name (allowed once node7's announcement expired: the name
// behind the address moved). node7 is still silent after a restart of the Repository,
// whatever order the database gives the announcements in: its expired announcement
// conflicts with no live one, and without it the workspace could never be reclaimed.
func TestSilentHostSurvivesARestartAfterItsAddressWasAnnouncedAgain(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	node8 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node8"})
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	elsewhere := strings.Replace(strings.ReplaceAll(goodHost, ">node7<", ">node8<"), "https://node7:8443", "https://node8:8443", 1)
	if _, err := f.r.announceHost(node8, announcement(t, elsewhere, "PT3M")); err != nil {
		t.Fatal(err)
	}
	f.announceNode7(t)
	key := f.outOnNode7(t, "stranded")
	advance(11 * time.Second)
	f.r.markSilentHosts(ctx)
	moved := strings.ReplaceAll(goodHost, ">node7<", ">node8<") // node8's manager now at node7's address
	if _, err := f.r.announceHost(node8, announcement(t, moved, "PT3M")); err != nil {
		t.Fatal(err)
	}
	f.reopen()
	if silent, _ := f.r.hosts.Silent(f.r.now()); silent["node7"].IsZero() {
		t.Errorf("after a restart node7 is no longer silent: %v", silent)
	}
	if _, _, err := f.r.Reclaim(admin, key); err != nil {
		t.Fatalf("Reclaim from silent node7 after a restart: %v", err)
	}
}
