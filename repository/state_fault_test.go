package repository

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/container/faulttest"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestStateRefusalsNameBothStates: the Repository's refusals of an operation in the
// workspace's state are WorkspaceStateFaults that vws-faults.xsd accepts: each names
// the deployment state the workspace is in and the one the operation would lead to,
// and says what it said before, in its own words.
func TestStateRefusalsNameBothStates(t *testing.T) {
	f, _ := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	const mgr7 = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	create := func(name string) string {
		c, err := f.r.Create(ctx, CreateSpec{Name: name, Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return c.Key
	}
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT3M")); err != nil {
		t.Fatal(err)
	}

	late := create("late")
	m, err := f.r.CheckOut(ctx, late, "host-a", "req-1", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.r.CheckIn(ctx, late, CheckInRequest{Token: m.Token, OverlayDigest: image(m, "overlay").Digest, OverlaySize: -1, MemorySize: -1}); err != nil {
		t.Fatal(err)
	}
	_, lateCopy := f.r.CheckOut(ctx, late, "host-a", "req-1", nil, &tester)
	_, withdrawn := f.r.CheckOut(ctx, late, "host-a", "req-2", nil, nil)

	heard := create("heard")
	m, err = f.r.CheckOut(node7, heard, "node7", "", &wsa.EPR{Version: wsa.V200508, Address: mgr7}, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.r.ReportState(node7, heard, m.Token, "node7", "running", "deployed", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	_, _, notSilent := f.r.Reclaim(admin, heard)

	noRef := create("noref")
	if _, err := f.r.CheckOut(node7, noRef, "node7", "", nil, &tester); err != nil {
		t.Fatal(err)
	}
	_, otherManager := f.r.Disown(node7, noRef, mgr7)

	for _, tt := range []struct {
		name               string
		err                error
		says               string
		current, requested string
	}{
		{"a late copy of a check-out", lateCopy, "late copy", "in-repository", "staging"},
		{"a check-out withdrawn", withdrawn, "it is withdrawn", "in-repository", "staging"},
		{"a reclaim from a host that is heard from", notSilent, "which is not silent", "deployed", "in-repository"},
		{"a disown by a manager it is not checked out to", otherManager, "checked out to the manager at", "staging", "in-repository"},
	} {
		if !strings.Contains(errString(tt.err), tt.says) {
			t.Errorf("%s: %v, want a refusal saying %q", tt.name, tt.err, tt.says)
			continue
		}
		for _, d := range dialect.Dialects {
			el := faulttest.ValidDetail(t, tt.err, d)
			if cur, req := faulttest.States(el); cur != tt.current || req != tt.requested {
				t.Errorf("%s (%s): CurrentState %q, RequestedState %q; want %q, %q", tt.name, d.Name, cur, req, tt.current, tt.requested)
			}
			if desc := el.SelectElement("Description").Text(); !strings.HasPrefix(desc, tt.err.Error()+"; "+errdefs.Advice(tt.err)) {
				t.Errorf("%s (%s): description %q, want the refusal's words and advice", tt.name, d.Name, desc)
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
