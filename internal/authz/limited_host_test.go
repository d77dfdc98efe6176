package authz

import (
	"context"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/policy"
)

// TestLimitedHostProxyMayNotActAsHost: a limited proxy of a host certificate (what a
// host hands to a data mover) may not register workspaces, check them out or disown
// them: every host operation changes state.
func TestLimitedHostProxyMayNotActAsHost(t *testing.T) {
	rs, err := policy.Parse(strings.NewReader("allow host /O=Grid/OU=vws/CN=host/*\n"), "rules")
	if err != nil {
		t.Fatal(err)
	}
	a := &Authorizer{Policy: rules{rs}, Audit: &decisions{}, Owners: owners{"w1": {alice, "one", ""}}}
	ctx := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=vws/CN=host/node1", Proxy: true, Limited: true})
	for _, op := range []struct{ service, op, key string }{
		{vwsns.RepositoryService, "RegisterWorkspace", ""},
		{vwsns.WorkspaceService, "CheckOut", "w1"},
		{vwsns.WorkspaceService, "Disown", "w1"},
	} {
		if err := a.Authorize(ctx, request(op.service, op.op, op.key)); err == nil {
			t.Errorf("ATTACK SUCCEEDED: a limited proxy of a host may %s %s", op.op, op.key)
		}
	}
}
