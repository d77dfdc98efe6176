package repository

import (
	"context"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// managerRefAddress is the address of workspace key's vw:managerReference.
func (f *fixture) managerRefAddress(key string) string {
	f.t.Helper()
	var addr string
	f.r.Workspaces.View(context.Background(), key, func(s *wsrf.Snapshot) error {
		if ref := s.Property(PropManagerRef); ref != nil {
			if epr, err := wsa.ParseEPR(ref); err == nil {
				addr = epr.Address
			}
		}
		return nil
	})
	return addr
}

// TestMovedHostRepointsItsWorkspaces: a host that moved to a new manager address with
// its records (same name and certificate, a new --public-url) announces from there
// that it holds its workspaces: their vw:managerReference must name the new address,
// or clients keep calling a manager that is no longer there. Not while an
// announcement from the old address listing them is still valid (a second machine
// under the same name and credential may still run them there).
func TestMovedHostRepointsItsWorkspaces(t *testing.T) {
	f, advance := newClockedFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	const oldMgr = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	const newMgr = "https://node7:9443/wsrf/services/WorkspaceManagerService"
	c := runningOnNode7(t, f, node7, "moved", oldMgr)
	announce := func(address string, keys ...string) []string { return announceFrom(t, f, node7, address, keys...) }
	announce(oldMgr, c.Key)
	if got := announce(newMgr, c.Key); len(got) != 0 {
		t.Fatalf("the moved host holding the workspace is told %v not held", got)
	}
	if got := f.managerRefAddress(c.Key); got != oldMgr {
		t.Fatalf("managerReference %s while the old address's announcement listing it is valid, want %s", got, oldMgr)
	}
	advance(3*time.Minute + time.Second) // the old address's announcement has expired unrenewed
	announce(newMgr, c.Key)
	if got := f.managerRefAddress(c.Key); got != newMgr {
		t.Fatalf("managerReference %s after the host moved to %s and announced it holds the workspace", got, newMgr)
	}
	if got := f.prop(c.Key, PropDeployment); got != "deployed" {
		t.Fatalf("deployment %q after the re-pointing, want deployed", got)
	}
	// The new address now holds it as the old one did: another machine announcing
	// from the old address meanwhile is not told it is not held.
	advance(time.Minute)
	if got := announce(oldMgr); len(got) != 0 {
		t.Fatalf("the old address is told %v not held while the new address's announcement listing it is valid", got)
	}
}

// TestAnotherIdentityDoesNotRepoint: a host under another name or credential that
// claims to hold a workspace does not draw its managerReference.
func TestAnotherIdentityDoesNotRepoint(t *testing.T) {
	f, advance := newClockedFixture(t)
	node7 := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/node7"})
	other := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=host/other"})
	const oldMgr = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	const otherMgr = "https://node7:9443/wsrf/services/WorkspaceManagerService"
	c := runningOnNode7(t, f, node7, "stays", oldMgr)
	advance(time.Second)
	req := announcementHolding(t, c.Key)
	req.Payload.FindElement(".//Address").SetText(otherMgr)
	req.Payload.FindElement(".//HostName").SetText("node8")
	if _, err := f.r.announceHost(other, req); err != nil {
		t.Fatal(err)
	}
	if got := f.managerRefAddress(c.Key); got != oldMgr {
		t.Fatalf("managerReference %s after another host claimed the workspace, want %s", got, oldMgr)
	}
}
