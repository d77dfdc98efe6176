package repository

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestReclaimRefusedWhileTheManagerAnnouncesUnderANewName: node7's administrator
// renames the host (vws serve --host-name node7b), keeping its manager and
// certificate. The manager goes on running, reporting and handing back the workspace
// it checked out as node7, but announces itself as node7b only, so node7 goes silent.
// Its manager is heard from all the same: Reclaim must not take the workspace from
// under it (its reconciler would then remove the running guest and its changes).
func TestReclaimRefusedWhileTheManagerAnnouncesUnderANewName(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	f.announceNode7(t)
	c, err := f.r.Create(ctx, CreateSpec{Name: "renamed", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	self := &wsa.EPR{Version: wsa.V200508, Address: "https://node7:8443/wsrf/services/WorkspaceManagerService"}
	m, err := f.r.CheckOut(asNode7(), c.Key, "node7", "", self, &tester)
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(goodHost, "<repo:HostName>node7<", "<repo:HostName>node7b<", 1)
	for range 3 {
		advance(5 * time.Second)
		if _, err := f.r.announceHost(asNode7(), announcement(t, renamed, "PT10S")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := f.r.ReportState(asNode7(), c.Key, m.Token, "node7", "running", "deployed", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.Reclaim(admin, c.Key); !errors.Is(err, errdefs.ErrState) {
		t.Fatalf("Reclaim of a workspace whose manager (%s) announces itself as node7b: %v; deployment now %s", self.Address, err, f.prop(c.Key, PropDeployment))
	}
}
