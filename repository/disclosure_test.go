package repository

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/policy"
)

// openWithRules starts the repository again on f's data under the rules file text.
func (f *fixture) openWithRules(text string) {
	f.t.Helper()
	parsed, err := policy.Parse(strings.NewReader(text), "rules")
	if err != nil {
		f.t.Fatal(err)
	}
	signer, err := manifestsig.LoadOrCreate(filepath.Join(f.dir, "keys"), "test repository")
	if err != nil {
		f.t.Fatal(err)
	}
	f.r.Close()
	r, err := New(context.Background(), Config{Dir: f.dir, Store: f.db, DB: f.db.SQL(), Pool: f.pool, Signer: signer, Policy: fixedPolicy{parsed},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.t.Fatal(err)
	}
	f.r = r
	f.pool.SetInUse(r.InUse)
	f.t.Cleanup(r.Close)
}

// userRules let everyone create, inspect and manage their own workspaces, and only
// the admin everyone's.
const userRules = "allow admin /O=Grid/CN=admin\nallow create *\nallow inspect *\nallow manage *\n"

// A taken name is refused without the key of the workspace that has it, unless the
// caller may inspect that workspace: a key is a handle on another user's workspace.
func TestTakenNameNamesTheKeyOnlyToWhoMayInspect(t *testing.T) {
	f := newFixture(t)
	f.openWithRules(userRules)
	alicews := f.mustCreateFor(alice, "alicews", 0)
	bobws := f.mustCreateFor(bob, "bobws", 0)
	admin := identity.Identity{DN: "/O=Grid/CN=admin"}
	for _, c := range []struct {
		who     identity.Identity
		clone   bool
		showKey bool
	}{
		{alice, false, true}, {admin, false, true}, {bob, false, false}, {bob, true, false}, {alice, true, true},
	} {
		var err error
		if c.clone { // bob clones his own workspace under alice's workspace's name
			src := bobws
			if c.who.DN == alice.DN {
				src = alicews
			}
			_, err = f.r.Clone(identity.With(context.Background(), c.who), src, "alicews", c.who.DN, time.Now().Add(time.Hour))
		} else {
			_, err = f.createFor(c.who, "alicews", time.Hour, 0)
		}
		if err == nil || !strings.Contains(err.Error(), `a workspace named "alicews" already exists`) {
			t.Fatalf("%s (clone %v) took a taken name: %v", c.who.DN, c.clone, err)
		}
		if strings.Contains(err.Error(), alicews) != c.showKey {
			t.Errorf("%s (clone %v): %v (want the key shown: %v)", c.who.DN, c.clone, err, c.showKey)
		}
	}
}
