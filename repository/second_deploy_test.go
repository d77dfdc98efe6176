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

// TestSecondCheckOutUnderOneHostNameIsLocked: two managers under one host name and
// credential (a replacement machine started beside the old one) each deploy the
// workspace. The second check-out, under its own RequestID, is another deploy, not
// the first one asking again: it must meet the first one's lock, or both machines
// stage and run the workspace with one lock between them. The first manager asking
// again under its RequestID still gets its lock back.
func TestSecondCheckOutUnderOneHostNameIsLocked(t *testing.T) {
	f, _ := newClockedFixture(t)
	ctx := context.Background()
	node7 := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=host/node7"})
	const oldMgr = "https://node7:8443/wsrf/services/WorkspaceManagerService"
	const newMgr = "https://node7:9443/wsrf/services/WorkspaceManagerService"
	c, err := f.r.Create(ctx, CreateSpec{Name: "twice", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: f.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.r.CheckOut(node7, c.Key, "node7", "deploy-1", &wsa.EPR{Version: wsa.V200508, Address: oldMgr}, &tester)
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.r.CheckOut(node7, c.Key, "node7", "deploy-2", &wsa.EPR{Version: wsa.V200508, Address: newMgr}, &tester)
	if !errors.Is(err, errdefs.ErrLocked) || !strings.Contains(err.Error(), "node7") {
		token := ""
		if second != nil {
			token = second.Token
		}
		t.Fatalf("a second deploy under the same host name while the first stages: %v (token %q, the first's %q)", err, token, m.Token)
	}
	if got := f.managerRefAddress(c.Key); got != oldMgr {
		t.Fatalf("after the refused second check-out the workspace names manager %s, want %s", got, oldMgr)
	}
	again, err := f.r.CheckOut(node7, c.Key, "node7", "deploy-1", nil, nil)
	if err != nil || again.Token != m.Token {
		t.Fatalf("the first manager asking again: %v", err)
	}
}
