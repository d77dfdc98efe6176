package repository

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// announcementHolding is goodHost's announcement listing keys as what it holds.
func announcementHolding(t *testing.T, keys ...string) *container.Request {
	t.Helper()
	req := announcement(t, goodHost, "PT3M")
	holds := req.Payload.CreateElement("repo:Holds")
	holds.CreateAttr("xmlns:vw", vwsns.Workspace)
	for _, k := range keys {
		holds.CreateElement("vw:WorkspaceKey").SetText(k)
	}
	return req
}

func notHeldIn(resp *etree.Element) []string {
	var keys []string
	for _, el := range resp.SelectElements("NotHeld") {
		keys = append(keys, el.Text())
	}
	return keys
}

// TestDisown: a manager's announcement that lists what it holds is answered with the
// workspaces checked out to it that it does not list; only that manager may then
// disown one, which takes it back into the repository as it was checked out.
func TestDisown(t *testing.T) {
	f, _ := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	node8 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node8"})
	const mgr7 = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	const mgr8 = "https://node8:8443/wsrf/services/WorkspaceManagerService"
	create := func(name string) string {
		c, err := f.r.Create(ctx, CreateSpec{Name: name, Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return c.Key
	}
	checkOut := func(who context.Context, key, host, mgr string) *Manifest {
		var ref *wsa.EPR
		if mgr != "" {
			ref = &wsa.EPR{Version: wsa.V200508, Address: mgr}
		}
		m, err := f.r.CheckOut(who, key, host, "", ref, &tester)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	held, lost, staging, elsewhere, noRef, home := create("held"), create("lost"), create("staging"), create("elsewhere"), create("noref"), create("home")
	checkOut(node7, held, "node7", mgr7)
	m := checkOut(node7, lost, "node7", mgr7)
	if _, _, _, err := f.r.ReportState(node7, lost, m.Token, "node7", "running", "deployed", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	checkOut(node7, staging, "node7", mgr7)
	checkOut(node8, elsewhere, "node8", mgr8)
	checkOut(node7, noRef, "node7", "")
	_ = home // stays in the repository

	resp, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M"))
	if err != nil {
		t.Fatal(err)
	}
	if got := notHeldIn(resp); len(got) != 0 {
		t.Fatalf("an announcement without Holds was answered NotHeld %v: a manager that does not say what it holds loses nothing", got)
	}
	resp, err = f.r.announceHost(node7, announcementHolding(t, held, "some-other-repositorys-key"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{lost, staging}
	slices.Sort(want)
	if got := notHeldIn(resp); !slices.Equal(got, want) {
		t.Fatalf("NotHeld %v, want %v (checked out to node7's manager, not held; not the one on node8, nor the one checked out without a manager address, nor the one in the repository)", got, want)
	}

	disown := func(who context.Context, key, mgr string) (string, error) {
		return f.r.Disown(who, key, mgr)
	}
	if _, err := disown(node8, lost, mgr7); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("node8 disowning node7's workspace: %v, want an authorization fault", err)
	}
	if _, err := disown(node7, elsewhere, mgr7); !errors.Is(err, errdefs.ErrAuthorization) && !errors.Is(err, errdefs.ErrState) {
		t.Fatalf("node7 disowning node8's workspace: %v", err)
	}
	if _, err := disown(node7, noRef, mgr7); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "checked out to the manager at a manager that gave no address") {
		t.Fatalf("disowning a workspace checked out without a manager address: %v", err)
	}
	if _, err := disown(node7, home, mgr7); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "in-repository") {
		t.Fatalf("disowning a workspace in the repository: %v", err)
	}
	for _, key := range []string{lost, elsewhere, noRef} {
		if d := f.prop(key, PropDeployment); d == "in-repository" {
			t.Fatalf("a refused Disown took %s back", key)
		}
	}

	state, err := disown(node7, lost, mgr7)
	if err != nil || state != "shutdown" {
		t.Fatalf("node7's manager disowning a workspace it lost: %q, %v", state, err)
	}
	for q, want := range map[wsa.QName]string{PropDeployment: "in-repository", PropState: "shutdown", PropLockHolder: "", PropHost: "", PropManagerRef: ""} {
		if got := f.prop(lost, q); got != want {
			t.Errorf("after Disown, %s is %q, want %q", q.Local, got, want)
		}
	}
	if d := f.prop(lost, PropStateDetail); !strings.Contains(d, "from host node7, whose manager at "+mgr7+" no longer holds a record of it") || !strings.Contains(d, "is lost") {
		t.Errorf("after Disown, stateDetail is %q", d)
	}
	if _, _, _, err := f.r.ReportState(node7, lost, m.Token, "node7", "running", "deployed", "", time.Time{}); err == nil {
		t.Fatal("a report with the disowned check-out's lock was taken")
	}
	if _, err := disown(node7, lost, mgr7); !errors.Is(err, errdefs.ErrState) {
		t.Fatalf("a second Disown: %v", err)
	}
	resp, err = f.r.announceHost(node7, announcementHolding(t, held))
	if err != nil {
		t.Fatal(err)
	}
	if got := notHeldIn(resp); !slices.Equal(got, []string{staging}) {
		t.Fatalf("after the disown, NotHeld %v, want only %s", got, staging)
	}
	checkOut(node8, lost, "node8", mgr8) // back in the repository, it deploys again

	for _, tc := range []struct{ name, holds, says string }{
		{"a repeated key", `<vw:WorkspaceKey>a</vw:WorkspaceKey><vw:WorkspaceKey>a</vw:WorkspaceKey>`, `repeated key "a"`},
		{"an empty key", `<vw:WorkspaceKey> </vw:WorkspaceKey>`, "empty"},
		{"another element", `<vw:Key>a</vw:Key>`, "not only vw:WorkspaceKey"},
	} {
		req := announcement(t, goodHost, "PT3M")
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<repo:Holds xmlns:repo="` + vwsns.Repository + `" xmlns:vw="` + vwsns.Workspace + `">` + tc.holds + `</repo:Holds>`); err != nil {
			t.Fatal(err)
		}
		req.Payload.AddChild(doc.Root())
		if _, err := f.r.announceHost(node7, req); !errors.Is(err, errdefs.ErrBadRequest) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s in Holds: %v, want a client fault saying %q", tc.name, err, tc.says)
		}
	}
}

// TestReaskKeepsTheManagerReference: a manager that lost the answer to its CheckOut
// asks again without its reference (the reconciler's re-ask): the lock it gets back
// is still its manager's, and the workspace says so, so that the manager can still
// disown it should it lose its record of it.
func TestReaskKeepsTheManagerReference(t *testing.T) {
	f, _ := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	const mgr7 = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	c, err := f.r.Create(ctx, CreateSpec{Name: "reasked", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.r.CheckOut(node7, c.Key, "node7", "req-1", &wsa.EPR{Version: wsa.V200508, Address: mgr7}, &tester)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.r.CheckOut(node7, c.Key, "node7", "req-1", nil, nil)
	if err != nil || again.Token != m.Token {
		t.Fatalf("asked again: %v", err)
	}
	var mgr string
	f.r.Workspaces.View(ctx, c.Key, func(s *wsrf.Snapshot) error { mgr = managerAddressOf(s); return nil })
	if mgr != mgr7 {
		t.Fatalf("after the re-ask, the workspace checked out to node7's manager names manager %q, want %s", mgr, mgr7)
	}
	if state, err := f.r.Disown(node7, c.Key, mgr7); err != nil || state != "shutdown" {
		t.Fatalf("node7's manager disowning the workspace it asked again for: %q, %v", state, err)
	}
}
