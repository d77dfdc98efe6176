// Package tmpfstest mounts small tmpfs file systems for tests that need a disk that
// fills up: the free-space checks of the manager, the repository and the image pool.
package tmpfstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Mount mounts a tmpfs of size ("4m") on dir, which must exist, until the test ends
// (cleanups run last-registered first: register it before what writes there). Not
// root, the test is skipped; as root (as CI runs), a mount that fails fails the test.
func Mount(t testing.TB, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a %s tmpfs on %s: %v: %s", size, dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v: %s; detaching it", dir, err, out)
			exec.Command("umount", "-l", dir).Run()
		}
	})
}

// MountOver is Mount keeping dir's files: they are copied onto the new file system,
// for a test that needs what a directory holds to meet a full disk.
func MountOver(t testing.TB, dir, size string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	saved := map[string][]byte{}
	for _, e := range ents {
		if saved[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	Mount(t, dir, size)
	for name, data := range saved {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}
