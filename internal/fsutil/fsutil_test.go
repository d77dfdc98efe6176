package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vws-grid/vws/internal/tmpfstest"
)

func TestFileDigest(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("abc"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, n, err := FileDigest(p)
	// sha256("abc"), as sha256sum prints it.
	if err != nil || n != 3 || d != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("FileDigest = %s, %d, %v", d, n, err)
	}
	if _, _, err := FileDigest(p + ".missing"); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v", err)
	}
	if err := SyncDir(filepath.Dir(p)); err != nil {
		t.Fatal(err)
	}
}

func TestFreeBytes(t *testing.T) {
	dir := t.TempDir()
	free, err := FreeBytes(dir)
	if err != nil || free <= 0 {
		t.Fatalf("FreeBytes(%s) = %d, %v", dir, free, err)
	}
	if _, err := FreeBytes(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FreeBytes of a missing path: %v, want a not-exist error", err)
	}
}

// TestFreeBytesOfASmallFileSystem counts on a tmpfs of known size (mounting needs
// root, as CI runs).
func TestFreeBytesOfASmallFileSystem(t *testing.T) {
	dir := t.TempDir()
	tmpfstest.Mount(t, dir, "4m")
	if free, err := FreeBytes(dir); err != nil || free != 4<<20 {
		t.Fatalf("an empty 4 MiB tmpfs: FreeBytes = %d, %v; want %d", free, err, 4<<20)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if free, err := FreeBytes(dir); err != nil || free != 3<<20 {
		t.Fatalf("after writing 1 MiB: FreeBytes = %d, %v; want %d", free, err, 3<<20)
	}
}

// TestSyncFile: a file and its directory entry are synced; a missing file is an error
// (a save image that is not there cannot be made durable).
func TestSyncFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "memory.save")
	if err := os.WriteFile(path, []byte("RAM"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := SyncFile(path); err != nil {
		t.Fatal(err)
	}
	if err := SyncFile(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sync of a missing file: %v", err)
	}
}
