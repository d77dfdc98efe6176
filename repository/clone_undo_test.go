package repository

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/policy"
)

// failingStore fails PutResource for one key while armed, and may call a hook first.
type failingStore struct {
	wsrf.Store
	mu         sync.Mutex
	failOn     string
	failDelete bool // every DeleteResource fails
	before     func(key string)
}

func (s *failingStore) DeleteResource(ctx context.Context, service, key string) error {
	s.mu.Lock()
	fail := s.failDelete
	s.mu.Unlock()
	if fail {
		return errors.New("injected: the row could not be deleted")
	}
	return s.Store.DeleteResource(ctx, service, key)
}

func (s *failingStore) PutResource(ctx context.Context, service string, r wsrf.StoredResource) error {
	s.mu.Lock()
	fail, hook := s.failOn == r.Key, s.before
	s.mu.Unlock()
	if hook != nil {
		hook(r.Key)
	}
	if fail {
		return errors.New("injected: the source's row could not be written")
	}
	return s.Store.PutResource(ctx, service, r)
}

// openFailing starts f's repository on a failingStore, under rules.
func (f *fixture) openFailing(rules string) *failingStore {
	f.t.Helper()
	st := &failingStore{Store: f.db}
	var pol Policy
	if rules != "" {
		parsed, err := policy.Parse(strings.NewReader(rules), "rules")
		if err != nil {
			f.t.Fatal(err)
		}
		pol = fixedPolicy{parsed}
	}
	signer, err := manifestsig.LoadOrCreate(filepath.Join(f.dir, "keys"), "test repository")
	if err != nil {
		f.t.Fatal(err)
	}
	f.r.Close()
	r, err := New(context.Background(), Config{Dir: f.dir, Store: st, DB: f.db.SQL(), Pool: f.pool, Signer: signer, Policy: pol,
		Now: f.now, Validator: f.validator, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.t.Fatal(err)
	}
	f.r = r
	f.pool.SetInUse(r.InUse)
	f.t.Cleanup(r.Close)
	return st
}

// TestUndoneCloneReleasesItsQuotaOnce: a Clone whose clone row was committed but
// whose source row was not is undone by destroying the clone, which gives the clone's
// workspace back to the owner's quota; the reservation is not released a second time,
// so the count stays true and the quota holds.
func TestUndoneCloneReleasesItsQuotaOnce(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	st := f.openFailing("allow * *\nquota /O=Grid/CN=alice workspaces=2\n")
	src := f.mustCreateFor(alice, "src", 0)
	scope := "dn:" + alice.DN
	if got := f.r.ledger.Usage(scope).Workspaces; got != 1 {
		t.Fatalf("precondition: alice holds %d workspaces in the ledger, want 1", got)
	}
	st.mu.Lock()
	st.failOn = src
	st.mu.Unlock()
	ctx := identity.With(context.Background(), alice)
	if _, err := f.r.Clone(ctx, src, "copy", alice.DN, time.Now().Add(30*time.Minute)); err == nil {
		t.Fatal("precondition: the clone was to fail on the source's row")
	}
	st.mu.Lock()
	st.failOn = ""
	st.mu.Unlock()
	n := 0
	f.r.Workspaces.Range(func(*wsrf.Snapshot) bool { n++; return true })
	if got := f.r.ledger.Usage(scope).Workspaces; got != n {
		t.Errorf("after a failed, undone clone alice holds %d workspaces, but the ledger counts %d", n, got)
	}
	// Consequence: the quota of 2 lets alice hold 3.
	_, err1 := f.createFor(alice, "second", 30*time.Minute, 0)
	_, err2 := f.createFor(alice, "third", 30*time.Minute, 0)
	if err1 == nil && err2 == nil {
		t.Errorf("quota workspaces=2, yet alice now holds 3 workspaces")
	}
}

// cloneWhoseUndoFailed clones alice's workspace src as "copy" with the source's row
// failing to be written and the clone's destroy failing too, so the undo leaves the
// clone's record; then the store works again.
func cloneWhoseUndoFailed(t *testing.T) (f *fixture, src string) {
	t.Helper()
	needQemu(t)
	f = newFixture(t)
	st := f.openFailing("")
	src = f.mustCreateFor(alice, "src", 0)
	st.mu.Lock()
	st.failOn, st.failDelete = src, true
	st.mu.Unlock()
	ctx := identity.With(context.Background(), alice)
	if _, err := f.r.Clone(ctx, src, "copy", alice.DN, time.Now().Add(30*time.Minute)); err == nil {
		t.Fatal("precondition: the clone was to fail on the source's row")
	}
	st.mu.Lock()
	st.failOn, st.failDelete = "", false
	st.mu.Unlock()
	return f, src
}

// TestCloneLeftByAFailedUndoKeepsItsLayer: when the clone's row was written, the
// source's was not, and destroying the clone fails too, the clone's record stays —
// and so does the frozen layer it stands on.
func TestCloneLeftByAFailedUndoKeepsItsLayer(t *testing.T) {
	f, src := cloneWhoseUndoFailed(t)
	var layers []string
	f.r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		if s.Key == src {
			return true
		}
		chain, err := decodeChain(s.Private)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range chain.Layers {
			layers = append(layers, f.r.layerPath(l.ID))
		}
		return true
	})
	if len(layers) == 0 {
		t.Fatal("precondition: no clone record stayed, or it stands on no layer")
	}
	for _, l := range layers {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("the clone's record stayed, but its layer is gone: %v", err)
		}
	}
}

// TestCloneLeftByAFailedUndoKeepsItsName: the clone whose undo failed keeps its
// record, so it keeps its name too: names are unique, and a second workspace must not
// be made under the name of one that exists.
func TestCloneLeftByAFailedUndoKeepsItsName(t *testing.T) {
	f, _ := cloneWhoseUndoFailed(t)
	var named []string
	f.r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		if text(s, PropName) == "copy" {
			named = append(named, s.Key)
		}
		return true
	})
	if len(named) != 1 {
		t.Fatalf("precondition: %d workspaces named copy after the failed undo, want the clone's record alone", len(named))
	}
	if key, err := f.createFor(alice, "copy", 30*time.Minute, 0); err == nil {
		t.Errorf("the clone %s named copy stayed, yet a Create named copy made a second one, %s", named[0], key)
	}
}

// TestUndoneCloneKeepsALayerAnotherStandsOn: once the clone's row is written, the
// clone is a workspace like any other (listed, so clonable) before its source's row
// is; a clone of it made in that moment stands on the same frozen layer. Undoing the
// first clone when its source's row fails must not remove that layer from under it.
func TestUndoneCloneKeepsALayerAnotherStandsOn(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	st := f.openFailing("")
	src := f.mustCreateFor(alice, "src", 0)
	ctx := identity.With(context.Background(), alice)
	var grand *Created
	var grandErr error
	st.mu.Lock()
	st.failOn = src
	st.before = func(key string) {
		if key != src || grand != nil || grandErr != nil {
			return
		}
		f.r.namesMu.Lock()
		clone := f.r.names["copy"]
		f.r.namesMu.Unlock()
		grand, grandErr = f.r.Clone(ctx, clone, "grand", alice.DN, time.Now().Add(30*time.Minute))
	}
	st.mu.Unlock()
	if _, err := f.r.Clone(ctx, src, "copy", alice.DN, time.Now().Add(30*time.Minute)); err == nil {
		t.Fatal("precondition: the clone was to fail on the source's row")
	}
	st.mu.Lock()
	st.failOn, st.before = "", nil
	st.mu.Unlock()
	if grandErr != nil || grand == nil {
		t.Fatalf("precondition: cloning the clone before its source's row was written: %v", grandErr)
	}
	for _, l := range f.chain(grand.Key).Layers {
		if _, err := os.Stat(f.r.layerPath(l.ID)); err != nil {
			t.Errorf("undoing the first clone removed the layer its own clone %s stands on: %v", grand.Key, err)
		}
	}
}
