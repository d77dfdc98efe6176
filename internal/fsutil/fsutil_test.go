package fsutil

import (
	"os"
	"path/filepath"
	"testing"
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
