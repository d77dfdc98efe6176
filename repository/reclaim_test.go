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

// TestReclaim: a workspace on a host that is heard from is not reclaimed, and nothing
// changes; once the host is silent, Reclaim hands it back as it was checked out, says
// so, and the host's lock no longer opens it.
func TestReclaim(t *testing.T) {
	f, advance := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	admin := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=admin"})
	if _, err := f.r.announceHost(node7, announcement(t, goodHost, "PT10S")); err != nil {
		t.Fatal(err)
	}
	c, err := f.r.Create(ctx, CreateSpec{Name: "stranded", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.r.CheckOut(node7, c.Key, "node7", "", &wsa.EPR{Version: wsa.V200508, Address: "https://node7:8443/wsrf/services/WorkspaceManagerService"}, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.r.ReportState(node7, c.Key, m.Token, "node7", "running", "deployed", "", time.Time{}); err != nil {
		t.Fatal(err)
	}

	if _, _, err := f.r.Reclaim(admin, c.Key); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "which is not silent") {
		t.Fatalf("Reclaim from a host that is heard from: %v", err)
	}
	if d, h := f.prop(c.Key, PropDeployment), f.prop(c.Key, PropLockHolder); d != "deployed" || h == "" {
		t.Fatalf("a refused Reclaim left the workspace %s, lock holder %q", d, h)
	}

	advance(11 * time.Second)
	state, host, err := f.r.Reclaim(admin, c.Key)
	if err != nil || state != "shutdown" || host != "node7" {
		t.Fatalf("Reclaim from silent node7: %q, %q, %v", state, host, err)
	}
	for q, want := range map[wsa.QName]string{PropDeployment: "in-repository", PropState: "shutdown", PropLockHolder: "", PropHost: "", PropHostSilentSince: ""} {
		if got := f.prop(c.Key, q); got != want {
			t.Errorf("after Reclaim, %s is %q, want %q", q.Local, got, want)
		}
	}
	if d := f.prop(c.Key, PropStateDetail); !strings.Contains(d, "reclaimed from silent host node7 by /O=Grid/CN=admin") || !strings.Contains(d, "is lost") {
		t.Errorf("after Reclaim, stateDetail is %q", d)
	}
	if _, _, _, err := f.r.ReportState(node7, c.Key, m.Token, "node7", "running", "deployed", "", time.Time{}); !errors.Is(err, errdefs.ErrLocked) && !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("node7 reporting with its old lock after the reclaim: %v", err)
	}
	if d := f.prop(c.Key, PropDeployment); d != "in-repository" {
		t.Fatalf("node7's refused report left the workspace %s", d)
	}
	if _, _, err := f.r.Reclaim(admin, c.Key); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "in-repository") {
		t.Fatalf("Reclaim of a workspace in the repository: %v", err)
	}
	// Back in the repository, it deploys again.
	if _, err := f.r.CheckOut(node7, c.Key, "node7", "", nil, &tester); err != nil {
		t.Fatalf("check-out after the reclaim: %v", err)
	}
}
