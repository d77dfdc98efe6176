package repository

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
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

// A CheckOut for a user who may not manage the workspace is refused as such before
// anything is said of its state: bob deploying alice's workspace must not learn that
// it is deployed, nor on which host.
func TestCheckOutRefusesTheUserBeforeTellingTheState(t *testing.T) {
	f := newFixture(t)
	f.openWithRules(userRules)
	key := f.mustCreateFor(alice, "alicews", 0)
	hostA := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=vws/CN=host/a.example.org"})
	hostB := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=vws/CN=host/b.example.org"})
	if _, err := f.r.CheckOut(hostA, key, "a.example.org", "a-1", nil, &alice); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.CheckOut(hostB, key, "b.example.org", "b-1", nil, &bob)
	if !errors.Is(err, errdefs.ErrAuthorization) || errors.Is(err, errdefs.ErrLocked) {
		t.Fatalf("bob's check-out of alice's deployed workspace: %v", err)
	}
	for _, leak := range []string{"a.example.org", "checked out", "staging"} {
		if strings.Contains(err.Error(), leak) || strings.Contains(errdefs.Advice(err), leak) {
			t.Errorf("bob's refusal tells %q: %v; %s", leak, err, errdefs.Advice(err))
		}
	}
	// Nor may bob have the lock handed back by asking as its holder would.
	if _, err := f.r.CheckOut(hostA, key, "a.example.org", "a-1", nil, &bob); !errors.Is(err, errdefs.ErrAuthorization) {
		t.Fatalf("bob asking again for alice's check-out: %v", err)
	}
	// Alice may manage it: she is told where it is.
	if _, err := f.r.CheckOut(hostB, key, "b.example.org", "b-2", nil, &alice); !errors.Is(err, errdefs.ErrLocked) || !strings.Contains(err.Error(), "a.example.org") {
		t.Fatalf("alice's second check-out: %v", err)
	}
	// The holder asking again, for her, gets its lock back.
	if _, err := f.r.CheckOut(hostA, key, "a.example.org", "a-1", nil, &alice); err != nil {
		t.Fatalf("asked again: %v", err)
	}
}
