package test

// End-to-end tests of a manager whose disk is too small: the real vws binary over
// loopback HTTP, its manager directory on a small tmpfs, and a real QEMU guest.

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dustin/go-humanize"

	"github.com/vws-grid/vws/internal/tmpfstest"
	"github.com/vws-grid/vws/test/guest"
)

// smallManagerDir returns a data directory whose manager directory (DATA/manager,
// the journal, the image cache and the workspaces) is a tmpfs of the given size
// ("8m"), unmounted when the test ends. The rest of the data directory (the store,
// its audit log) stays on the ordinary disk, so that the tmpfs holds only what the
// manager writes.
func smallManagerDir(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	mdir := filepath.Join(dir, "manager")
	if err := os.Mkdir(mdir, 0o700); err != nil {
		t.Fatal(err)
	}
	// Registered before the server and the workspaces: unmounted after they are gone.
	tmpfstest.Mount(t, mdir, size)
	return dir
}

// managerTree lists every file and directory under the manager's directory but its
// boot record.
func managerTree(t *testing.T, s *MgrServer) []string {
	t.Helper()
	var out []string
	filepath.Walk(s.ManagerDir(), func(p string, _ os.FileInfo, err error) error {
		if err == nil && p != s.ManagerDir() {
			rel, _ := filepath.Rel(s.ManagerDir(), p)
			// The reconciler notes the boot it last squared with libvirt after its
			// first round, whenever that comes: not a deploy's doing.
			if rel != "boot_id" {
				out = append(out, rel)
			}
		}
		return nil
	})
	return out
}

var (
	spaceNeedRE = regexp.MustCompile(`needs ([0-9.]+ [KMG]?i?B), but (\S+) has ([0-9.]+ [KMG]?i?B) free, of which the manager keeps ([0-9.]+ [KMG]?i?B) free \(--min-free\)`)
)

// spaceFigures parses the sizes a refusal names: need, dir, free, floor.
func spaceFigures(t *testing.T, stderr string) (need uint64, dir string, free, floor uint64) {
	t.Helper()
	m := spaceNeedRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("the fault does not say what is needed, what is free where, and the floor: %s", stderr)
	}
	parse := func(s string) uint64 {
		n, err := humanize.ParseBytes(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		return n
	}
	return parse(m[1]), m[2], parse(m[3]), parse(m[4])
}

// TestManagerDiskTooSmall: on a host whose disk cannot hold a workspace, the deploy
// is refused before it writes anything, with a fault that says how much is needed,
// what is free where, the floor, and what to do; the workspace is back in the
// repository, unlocked, and the host has nothing of it.
func TestManagerDiskTooSmall(t *testing.T) {
	t.Parallel()
	g := guest.Ensure(t)
	a := StartMgrServer(t, MgrServerOptions{HostName: "space-a"})
	ImportGuest(t, a)
	b := StartMgrServer(t, MgrServerOptions{HostName: "space-small", Roles: []string{"manager"}, Repository: a.URL,
		Dir: smallManagerDir(t, "8m"), Args: []string{"--min-free", "1MiB"}})
	w := CreateWorkspace(t, a, TickerDescription(t))
	before := managerTree(t, b)

	done := Step(t, "deploy on an 8 MiB disk")
	r := a.CLI(t, "deploy", w.EPRFile, "--host", b.URL)
	done()
	WantFault(t, r, "ServiceFault", "not enough free disk space on host space-small", "workspace "+w.Key,
		"nothing was written", "lower the manager's --min-free", "deploy the workspace on another host")
	t.Logf("the refusal: %s", r.stderr)
	need, dir, free, floor := spaceFigures(t, r.stderr)
	var images uint64
	for _, f := range []string{g.Disk, g.Kernel, g.Initrd} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		images += uint64(fi.Size())
	}
	if dir != b.ManagerDir() || floor != 1<<20 || free > 8<<20 || need < images || need > images+8<<20 {
		t.Fatalf("the fault says %d bytes needed, %d free in %s, floor %d; want the guest's %d bytes of images and a little, at most 8 MiB free in %s, floor 1 MiB",
			need, free, dir, floor, images, b.ManagerDir())
	}
	if !strings.Contains(r.stderr, "free at least "+humanize.IBytes(need+floor-free)+" in "+b.ManagerDir()) {
		t.Fatalf("the advice does not say how much to free where: %s", r.stderr)
	}

	WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "")
	if DomainDefined(w.Domain()) {
		t.Fatal("a refused deploy left a libvirt domain")
	}
	if after := managerTree(t, b); !slices.Equal(after, before) {
		t.Fatalf("a refused deploy changed the manager's directory: before %v, after %v", before, after)
	}
	if h := ReadHost(t, b); len(h.Workspaces) > 0 || len(h.Cached) > 0 {
		t.Fatalf("after a refused deploy the host lists %v, caches %v", h.Workspaces, h.Cached)
	}
	// The lock was handed back: the workspace deploys elsewhere.
	a.MustCLI(t, "deploy", w.EPRFile, "--host", a.URL)
	WantWSProps(t, w, "deployment", "deployed", "host", "space-a")
	a.MustCLI(t, "undeploy", w.EPRFile)
}

// TestManagerDiskEvictsAndRefusesSerialize: a deploy that fits only once an earlier,
// unused cached image is gone evicts it and succeeds; a serialize whose saved RAM
// cannot fit is refused before libvirt writes, and the guest runs on untouched.
func TestManagerDiskEvictsAndRefusesSerialize(t *testing.T) {
	t.Parallel()
	guest.Ensure(t)
	a := StartMgrServer(t, MgrServerOptions{HostName: "space-a2"})
	imgs := ImportGuest(t, a)
	// Another base image, which needs no booting: 16 MiB of random bytes, raw.
	other := filepath.Join(t.TempDir(), "other.raw")
	data := make([]byte, 16<<20)
	rand.Read(data)
	if err := os.WriteFile(other, data, 0o644); err != nil {
		t.Fatal(err)
	}
	otherDigest := regexp.MustCompile(`sha256:[0-9a-f]{64}`).FindString(
		a.MustCLI(t, "image", "import", other, "--name", "space-other-disk", "--os", "linux/busybox/1", "--arch", "x86_64").stdout)
	// 32 MiB: room for either workspace (16 MiB and about 15 MiB, with their own
	// files and the 1 MiB floor), not for both, nor for 128 MiB of saved RAM.
	b := StartMgrServer(t, MgrServerOptions{HostName: "space-b", Roles: []string{"manager"}, Repository: a.URL,
		Dir: smallManagerDir(t, "32m"), Args: []string{"--min-free", "1MiB"}})

	done := Step(t, "deploy and undeploy a workspace on another base")
	diskOnly := TickerDescription(t, "guest-disk", "space-other-disk", `  <sw:software>
    <sw:kernel>
      <sw:image><sw:name>guest-kernel</sw:name></sw:image>
      <sw:initrd><sw:name>guest-initrd</sw:name></sw:initrd>
      <sw:cmdline>console=ttyS0 panic=-1 quiet</sw:cmdline>
    </sw:kernel>
  </sw:software>
`, "")
	w1 := CreateWorkspace(t, a, diskOnly)
	a.MustCLI(t, "deploy", w1.EPRFile, "--host", b.URL)
	a.MustCLI(t, "undeploy", w1.EPRFile)
	done()
	if _, ok := ReadHost(t, b).Cached[otherDigest]; !ok {
		t.Fatalf("the other base image is not in B's cache after its workspace left: %v", ReadHost(t, b).Cached)
	}

	done = Step(t, "deploy the guest, evicting the other base")
	w := CreateWorkspace(t, a, TickerDescription(t))
	a.MustCLI(t, "deploy", w.EPRFile, "--host", b.URL, "--state", "running")
	done()
	WantWSProps(t, w, "state", "running", "deployment", "deployed", "host", "space-b")
	cached := ReadHost(t, b).Cached
	if _, ok := cached[otherDigest]; ok {
		t.Fatalf("the unused other base image was not evicted to make room: cache %v", cached)
	}
	for _, d := range []string{imgs.Disk, imgs.Kernel, imgs.Initrd} {
		if _, ok := cached[d]; !ok {
			t.Fatalf("B's cache lacks the guest's %s: %v", d, cached)
		}
	}
	if !strings.Contains(b.Logs(), "made room by evicting unused cached images") {
		t.Fatalf("B's log does not say it made room:\n%s", b.Logs())
	}
	WaitConsole(t, a, w, bootTimeout, "tick 2", hasTicks(2))

	done = Step(t, "serialize 128 MiB of RAM onto what is left")
	r := a.CLI(t, "shutdown", w.EPRFile, "--mode", "serialize")
	done()
	WantFault(t, r, "ServiceFault", "not enough free disk space on host space-b", "serializing workspace "+w.Key,
		"128 MiB of RAM", "nothing was written", "lower the manager's --min-free", "shut the workspace down (Normal) instead of serializing it")
	t.Logf("the refusal: %s", r.stderr)
	if need, dir, free, floor := spaceFigures(t, r.stderr); need != 128<<20 || dir != b.ManagerDir() || free > 32<<20 || floor != 1<<20 {
		t.Fatalf("the fault says %d bytes needed, %d free in %s, floor %d", need, free, dir, floor)
	}
	if st := DomainState(w.Domain()); st != "running" {
		t.Fatalf("after a refused serialize the domain is %q, want running", st)
	}
	WantWSProps(t, w, "state", "running", "deployment", "deployed")
	if files := b.WorkspaceFiles(w.Key); slices.Contains(files, "memory.save") {
		t.Fatalf("a refused serialize left a memory image: %v", files)
	}
	last := guest.LastTick(Console(t, a, w))
	WaitConsole(t, a, w, tickTimeout, "ticks go on after the refused serialize", hasTicks(last+2))

	done = Step(t, "trash and undeploy")
	a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	a.MustCLI(t, "undeploy", w.EPRFile)
	done()
	WantWSProps(t, w, "deployment", "in-repository", "lockHolder", "")
	if DomainDefined(w.Domain()) || b.HasWorkspaceDir(w.Key) {
		t.Fatalf("after undeploy: domain defined %v, B's files %v", DomainDefined(w.Domain()), b.WorkspaceFiles(w.Key))
	}
}
