package repository

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestCreateSyncsTheWorkspacesDirectory: Create commits a record naming
// workspaces/<key> only once that directory's entry in workspaces/ is on disk too, as
// Clone does: else an OS crash could leave a record naming a directory that is gone.
func TestCreateSyncsTheWorkspacesDirectory(t *testing.T) {
	f := newFixture(t)
	var synced []string
	orig := syncDir
	t.Cleanup(func() { syncDir = orig })
	syncDir = func(dir string) error {
		synced = append(synced, filepath.Clean(dir))
		return orig(dir)
	}
	parent := filepath.Clean(f.r.workspaceDir(""))
	key := f.create("fresh", "", "")
	if !slices.Contains(synced, parent) {
		t.Errorf("Create committed workspace %s without syncing %s (the new directory's entry); synced only %v", key, parent, synced)
	}
}

// TestObsoleteFilesGoOnlyOnceTheCommitIsDurable: the files a commit made obsolete — a
// cloned source's old overlay, a destroyed workspace's directory — are removed only
// after the commit is on disk (SQLite's log synced): an OS crash must not keep the
// removal and lose the commit, leaving a record naming a missing file. When that
// cannot be made sure, they are left to the start-up sweep.
func TestObsoleteFilesGoOnlyOnceTheCommitIsDurable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	orig := makeDurable
	t.Cleanup(func() { f.setMakeDurable(orig) })
	src := f.create("src", "", "")
	old := filepath.Join(f.r.workspaceDir(src), "disk-1.qcow2")
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("precondition: the source's overlay: %v", err)
	}

	// Not durable: the obsolete overlay stays, and the sweep takes it at the next start.
	f.setMakeDurable(func(context.Context, *sql.DB) error { return errors.New("disk gone") })
	if _, err := f.r.Clone(ctx, src, "copy1", "o", time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("the source's old overlay was removed though its replacement's commit was not durable: %v", err)
	}
	f.setMakeDurable(orig)
	f.reopen()
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the start-up sweep left the obsolete overlay: %v", err)
	}

	// Destroy: the directory goes only once the record's removal is durable.
	f.setMakeDurable(func(context.Context, *sql.DB) error { return errors.New("disk gone") })
	victim := f.create("victim", "", "")
	dir := f.r.workspaceDir(victim)
	if err := f.r.Workspaces.Destroy(ctx, victim); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a destroyed workspace's files were removed though the record's removal was not durable: %v", err)
	}
	f.setMakeDurable(orig)
	f.reopen()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the start-up sweep left the destroyed workspace's files: %v", err)
	}
}

// TestLayerGoesOnlyOnceTheDestroyIsDurable: destroying the last workspace standing on
// a frozen layer makes the layer obsolete, as it makes the workspace's directory: it
// too goes only once the record's removal is on disk, or an OS crash could bring back
// a record whose layer is gone. Until then it is left to the start-up sweep.
func TestLayerGoesOnlyOnceTheDestroyIsDurable(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	ctx := context.Background()
	orig := makeDurable
	t.Cleanup(func() { f.setMakeDurable(orig) })
	src := f.create("src", "", "")
	c, err := f.r.Clone(ctx, src, "copy", "o", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	layers := f.chain(c.Key).Layers
	if len(layers) != 1 {
		t.Fatalf("precondition: the clone stands on %d layers, want 1", len(layers))
	}
	layer := f.r.layerPath(layers[0].ID)
	if err := f.r.Workspaces.Destroy(ctx, src); err != nil {
		t.Fatal(err)
	}
	f.setMakeDurable(func(context.Context, *sql.DB) error { return errors.New("disk gone") })
	if err := f.r.Workspaces.Destroy(ctx, c.Key); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(layer); err != nil {
			t.Fatalf("the layer of a destroyed clone was removed though the record's removal was not durable: %v", err)
		}
	}
	f.setMakeDurable(orig)
	f.reopen()
	if _, err := os.Stat(layer); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the start-up sweep left the layer no workspace stands on: %v", err)
	}
}

// setMakeDurable sets the durability hook once the layer collector a destroy started is
// done: the collector reads the hook on its own goroutine, after Destroy has returned.
func (f *fixture) setMakeDurable(fn func(context.Context, *sql.DB) error) {
	f.r.collectDone.Wait()
	makeDurable = fn
}
