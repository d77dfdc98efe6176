package repository

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/vws-grid/vws/internal/wsrf"
)

// lostCommit is a store whose armed write commits and then fails all the same, as
// a database does whose answer to a commit is lost: the SQLite driver answers the
// context's error when the context ends while its statement runs, committed or not,
// and a PostgreSQL connection can drop after the server committed.
type lostCommit struct {
	wsrf.Store
	mu    sync.Mutex
	armed bool
}

func (s *lostCommit) PutResource(ctx context.Context, service string, r wsrf.StoredResource) error {
	s.mu.Lock()
	armed := s.armed
	s.armed = false
	s.mu.Unlock()
	if err := s.Store.PutResource(ctx, service, r); err != nil || !armed {
		return err
	}
	return context.Canceled
}

// A check-in whose commit was made but answered with an error keeps the overlay it
// adopted: the record may name it. After a restart the workspace continues on the
// uploaded overlay, rather than on a file the failed check-in removed (and with its
// previous overlay and the upload swept away as no longer named: nothing left).
func TestCheckInWhoseCommitAnswerIsLostKeepsTheAdoptedOverlay(t *testing.T) {
	needQemu(t)
	ctx := context.Background()
	f := newFixture(t)
	lost := &lostCommit{Store: f.db}
	f.store = lost
	f.reopen()
	key := f.create("lost", "", "")
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	changed := f.managerOverlay(key, m.Token, m, "write -P 0xab 0 64k")
	up, rs := f.upload(key, "overlay", m.Token, changed)
	if rs.code != http.StatusOK {
		t.Fatalf("upload: %d %s", rs.code, rs.body)
	}
	lost.mu.Lock()
	lost.armed = true
	lost.mu.Unlock()
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: up.Digest, OverlaySize: up.Size, MemorySize: -1}); err == nil {
		t.Fatal("the check-in whose commit answered an error succeeded")
	}

	f.reopen() // the record as the database holds it: checked in, on the upload
	c := f.chain(key)
	if c.Lock != "" || c.OverlayDigest != up.Digest {
		t.Fatalf("the database did not keep the check-in: lock %q, overlay %s", c.Lock, c.OverlayDigest)
	}
	if d, _, err := fileDigest(filepath.Join(f.r.workspaceDir(key), c.Overlay)); err != nil || d != up.Digest {
		t.Fatalf("the overlay the record names, %s: %s %v; files left: %v", c.Overlay, d, err, f.files(key))
	}
	if st := f.prop(key, PropState); st != "shutdown" {
		t.Fatalf("state after the restart: %s, want shutdown", st)
	}
	if _, err := os.Stat(filepath.Join(f.r.workspaceDir(key), pendingOverlayName(up.Digest))); !os.IsNotExist(err) {
		t.Errorf("the adopted upload's pending file is still there after the restart: %v", err)
	}
	if _, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester); err != nil {
		t.Fatalf("check-out after the restart: %v", err)
	}
}
