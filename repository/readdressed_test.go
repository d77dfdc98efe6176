package repository

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestReinstalledUnderANewAddressGivesBack: a host reinstalled under another manager
// address but its old name and certificate announces itself at once, so its name never
// goes silent and Reclaim stays refused: the workspaces it lost with its records must
// be named NotHeld to it, and its Disown from the new address taken, or they could not
// be had back while the host runs. Another host, or an address the caller does not
// announce under that name, still cannot.
func TestReinstalledUnderANewAddressGivesBack(t *testing.T) {
	f, _ := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	node8 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node8"})
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	const oldMgr = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	const newMgr = "https://node7:9443/wsrf/services/WorkspaceManagerService"
	c := runningOnNode7(t, f, node7, "lost", oldMgr)
	// Reinstalled: same name and certificate, a new port, no records.
	req := announcementHolding(t)
	req.Payload.FindElement(".//Address").SetText(newMgr)
	resp, err := f.r.announceHost(node7, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.Reclaim(admin, c.Key); !errors.Is(err, errdefs.ErrState) {
		t.Fatalf("reclaim from a host announcing itself: %v", err)
	}
	if got := notHeldIn(resp); !slices.Equal(got, []string{c.Key}) {
		t.Fatalf("NotHeld %v to node7 reinstalled at %s, want %s, checked out under its name at %s", got, newMgr, c.Key, oldMgr)
	}
	if _, err := f.r.Disown(node8, c.Key, "https://node8:8443/wsrf/services/WorkspaceManagerService"); err == nil {
		t.Fatal("node8 disowned node7's workspace")
	}
	if _, err := f.r.Disown(node7, c.Key, "https://node7:7443/wsrf/services/WorkspaceManagerService"); !errors.Is(err, errdefs.ErrState) {
		t.Fatalf("node7 disowning from an address it does not announce: %v", err)
	}
	if state, err := f.r.Disown(node7, c.Key, newMgr); err != nil || state != "shutdown" {
		t.Fatalf("node7 reinstalled at %s disowning the workspace it lost: %q, %v", newMgr, state, err)
	}
	if d := f.prop(c.Key, PropDeployment); d != "in-repository" || !strings.Contains(f.prop(c.Key, PropStateDetail), "no longer holds a record") {
		t.Fatalf("after the disown: deployment %q, detail %q", d, f.prop(c.Key, PropStateDetail))
	}
}

// TestReplacementBesideTheOldMachineIsToldNothing: a replacement started under the
// old machine's name and credential while the old machine still runs (each
// announcement replacing the other's) must not be told the old machine's workspaces
// are not held, or it would disown them while their guests run on: only once the old
// machine's last announcement listing them has expired unrenewed.
func TestReplacementBesideTheOldMachineIsToldNothing(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	const oldMgr = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	const newMgr = "https://node7:9443/wsrf/services/WorkspaceManagerService"
	c := runningOnNode7(t, f, node7, "running", oldMgr)
	announce := func(address string, keys ...string) []string { return announceFrom(t, f, node7, address, keys...) }
	if got := announce(oldMgr, c.Key); len(got) != 0 {
		t.Fatalf("the old machine holding the workspace is told %v", got)
	}
	if got := announce(newMgr); len(got) != 0 {
		t.Fatalf("a replacement beside the old machine, which still runs the workspace, is told %v not held", got)
	}
	advance(2 * time.Minute)
	if got := announce(newMgr); len(got) != 0 {
		t.Fatalf("told %v before the old machine's announcement expired", got)
	}
	advance(time.Minute + time.Second) // the old machine's announcement, unrenewed, has expired
	if got := announce(newMgr); !slices.Equal(got, []string{c.Key}) {
		t.Fatalf("NotHeld %v once the old machine is gone, want %s", got, c.Key)
	}
}

// runningOnNode7 creates workspace name and has node7 check it out at manager address
// mgr and report it running there.
func runningOnNode7(t *testing.T, f *fixture, node7 context.Context, name, mgr string) *Created {
	t.Helper()
	c, err := f.r.Create(context.Background(), CreateSpec{Name: name, Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.r.CheckOut(node7, c.Key, "node7", "", &wsa.EPR{Version: wsa.V200508, Address: mgr}, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.r.ReportState(node7, c.Key, m.Token, "node7", "running", "deployed", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	return c
}

// announceFrom announces node7's host from manager address, listing keys held (valid
// for PT3M), as who, and returns the keys the answer says are not held.
func announceFrom(t *testing.T, f *fixture, who context.Context, address string, keys ...string) []string {
	t.Helper()
	req := announcementHolding(t, keys...)
	req.Payload.FindElement(".//Address").SetText(address)
	resp, err := f.r.announceHost(who, req)
	if err != nil {
		t.Fatal(err)
	}
	return notHeldIn(resp)
}
