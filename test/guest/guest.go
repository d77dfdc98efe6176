// Package guest provides the real test guest that vws's boot tests run under
// QEMU through libvirt: Debian's kernel, a busybox initramfs whose /init runs
// the NoCloud "cidata" CD's user-data script with its output on the serial
// console, and a small qcow2 base disk. test/guest/build.sh builds it, cached
// under ${VWS_GUEST_DIR:-<repo>/.cache/guest}.
package guest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// Image is the built test guest.
type Image struct{ Dir, Kernel, Initrd, Disk, KernelVersion string }

var (
	mu    sync.Mutex
	built *Image
)

// Ensure builds the guest image if needed (runs build.sh) and returns its paths;
// it calls t.Skip with a clear message when testing.Short(), or when it is not
// root / libvirt's qemu driver is not reachable (`virsh -c qemu:///system version`
// fails). A failing build is a t.Fatal. Safe for parallel tests and packages:
// build.sh runs once per process and holds a lock while it builds.
// The returned files are shared: never write to them (use a qcow2 overlay of Disk).
func Ensure(t testing.TB) Image {
	t.Helper()
	if testing.Short() {
		t.Skip("guest: skipping a real QEMU guest boot in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("guest: skipping a real QEMU guest boot: needs root (run test/setup.sh, then the tests as root)")
	}
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "version").CombinedOutput(); err != nil {
		t.Skipf("guest: skipping a real QEMU guest boot: libvirt's qemu driver is not reachable "+
			"(`virsh -c qemu:///system version`: %v: %s); run test/setup.sh", err, strings.TrimSpace(string(out)))
	}

	mu.Lock()
	defer mu.Unlock()
	if built != nil {
		return *built
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	dir := os.Getenv("VWS_GUEST_DIR")
	if dir == "" {
		dir = filepath.Join(root, ".cache", "guest")
	}
	cmd := exec.Command("bash", filepath.Join(root, "test", "guest", "build.sh"))
	cmd.Env = append(os.Environ(), "VWS_GUEST_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("guest: test/guest/build.sh: %v\n%s", err, out)
	} else if len(out) > 0 {
		t.Logf("guest: test/guest/build.sh:\n%s", out)
	}
	img := Image{
		Dir:    dir,
		Kernel: filepath.Join(dir, "vmlinuz"),
		Initrd: filepath.Join(dir, "initrd.img"),
		Disk:   filepath.Join(dir, "disk.qcow2"),
	}
	img.KernelVersion, err = manifestValue(filepath.Join(dir, "manifest"), "kernel")
	if err != nil || img.KernelVersion == "" {
		t.Fatalf("guest: no kernel version in %s/manifest: %v", dir, err)
	}
	built = &img
	return img
}

// repoRoot walks up from this source file's directory to the one with go.mod.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", os.ErrNotExist
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", &os.PathError{Op: "find go.mod above", Path: filepath.Dir(file), Err: os.ErrNotExist}
		}
		dir = parent
	}
}

func manifestValue(path, key string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok && k == key {
			return v, nil
		}
	}
	return "", s.Err()
}
