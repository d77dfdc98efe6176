package manager

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// spaceManager is a manager whose data directory is a temp dir, with a journal, and
// whose file system holds capacity bytes: free space is capacity less what the data
// directory holds (an injected statfs, so that a small disk can be had without a
// mount).
func spaceManager(t *testing.T, blobs ...[]byte) (*Manager, []*manifestImage, int64) {
	t.Helper()
	hs, imgs := images(t, blobs...)
	m := evictingManager(t, hs, 0)
	m.cfg.Dir = filepath.Dir(m.cache.dir)
	m.cfg.Host = "small-host"
	if err := os.MkdirAll(m.workspacesRoot(), 0o700); err != nil {
		t.Fatal(err)
	}
	const capacity = 20 << 20
	m.freeBytes = func(string) (int64, error) { return capacity - duOf(t, m.cfg.Dir), nil }
	return m, imgs, capacity
}

// duOf is the bytes the regular files under dir hold.
func duOf(t *testing.T, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeployNeed: a deploy is charged for the shared images the cache lacks (once
// each, less what a resumable transfer holds), nothing for those it holds or the
// co-located pool hard-links, and in full for its overlay, saved RAM and own files.
func TestDeployNeed(t *testing.T) {
	const mib = 1 << 20
	m, imgs, _ := spaceManager(t, blob(3*mib, 'b'), blob(2*mib, 'k'), blob(1*mib, 'i'), blob(4*mib, 'l'))
	base, kernel, initrd, layer := imgs[0], imgs[1], imgs[2], imgs[3]
	stageDone(t, m, base) // held by the cache

	poolDir := filepath.Join(m.cfg.Dir, "pool") // same file system as the cache
	os.Mkdir(poolDir, 0o700)
	if err := os.WriteFile(filepath.Join(poolDir, initrd.Digest), blob(1*mib, 'i'), 0o640); err != nil {
		t.Fatal(err)
	}
	m.cfg.LocalImages = dirPool{poolDir}

	// An interrupted transfer of the layer holds its first MiB.
	if err := os.WriteFile(m.cache.path(layer.Digest)+".part", blob(1*mib, 'l'), 0o644); err != nil {
		t.Fatal(err)
	}
	man := &manifest{Images: []manifestImage{
		{Role: "base", Digest: base.Digest, Size: base.Size},
		{Role: "kernel", Digest: kernel.Digest, Size: kernel.Size},
		{Role: "initrd", Digest: initrd.Digest, Size: initrd.Size},
		{Role: "layer", Digest: layer.Digest, Size: layer.Size},
		{Role: "layer", Digest: kernel.Digest, Size: kernel.Size}, // listed twice: staged once
		{Role: "overlay", Digest: "sha256:" + strings.Repeat("0", 64), Size: 5 * mib},
		{Role: "memory", Digest: "sha256:" + strings.Repeat("1", 64), Size: 7 * mib},
	}}
	got := m.deployNeed(man)
	want := spaceNeed{cache: kernel.Size + layer.Size - 1*mib, workspace: 5*mib + 7*mib + ownFilesSlack}
	if got.cacheTotal() != want.cache || got.workspace != want.workspace || len(got.images) != 2 {
		t.Fatalf("need %+v, want %+v in two images", got, want)
	}

	// A pool on another file system is copied, not linked: the image costs its size.
	if other := "/dev/shm"; !sameFileSystem(other, m.cache.dir) {
		otherPool, err := os.MkdirTemp(other, "pool")
		if err != nil {
			t.Skipf("no second file system to put a pool on: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(otherPool) })
		if err := os.WriteFile(filepath.Join(otherPool, initrd.Digest), blob(1*mib, 'i'), 0o640); err != nil {
			t.Fatal(err)
		}
		m.cfg.LocalImages = dirPool{otherPool}
		if got := m.deployNeed(man); got.cacheTotal() != want.cache+initrd.Size {
			t.Fatalf("a pool on another file system: cache need %d, want %d", got.cacheTotal(), want.cache+initrd.Size)
		}
	}
}

// TestEnsureRoomEvictsUnusedImages: short of room, the least recently used cached
// images that no deployment and no deploy in flight uses are evicted, just enough of
// them; if that is not enough, the refusal says how much is needed, what is free
// where, the floor, and what to do, and images in use are still there.
func TestEnsureRoomEvictsUnusedImages(t *testing.T) {
	const mib = 1 << 20
	m, imgs, capacity := spaceManager(t, blob(3*mib, '1'), blob(3*mib, '2'), blob(3*mib, 'd'), blob(3*mib, 'p'))
	old1, old2, deployed, inFlight := imgs[0], imgs[1], imgs[2], imgs[3]
	m.cfg.MinFreeBytes = 2 * mib
	for _, img := range imgs {
		stageDone(t, m, img)
		time.Sleep(10 * time.Millisecond) // distinct last-use times: old1 oldest
	}
	if err := m.journal.put(&record{Key: "ws1", Phase: phaseDeployed, State: stateShutdown, Shared: []string{deployed.Digest}}); err != nil {
		t.Fatal(err)
	}
	m.cache.pin(inFlight.Digest)
	free := func() int64 { f, _ := m.freeSpace(m.cfg.Dir); return f }
	if f := free(); f > capacity-12*mib || f < capacity-13*mib {
		t.Fatalf("free %d: the injected file system does not count the cache", f)
	}

	// Fits as it is: nothing goes.
	if err := m.ensureRoom(spaceNeed{cache: free() - 2*mib}, "workspace fits", "deploy it elsewhere"); err != nil {
		t.Fatalf("a need that leaves exactly the floor was refused: %v", err)
	}
	if got := cached(m); len(got) != 4 {
		t.Fatalf("evicted although it fitted: %v", got)
	}

	// 2 MiB short: old1 (least recently used) is enough.
	if err := m.ensureRoom(spaceNeed{cache: 1 * mib, workspace: free() - 1*mib}, "workspace short", "deploy it elsewhere"); err != nil {
		t.Fatalf("refused although evicting old1 makes room: %v", err)
	}
	if got := cached(m); got[old1.Digest] || !got[old2.Digest] || !got[deployed.Digest] || !got[inFlight.Digest] {
		t.Fatalf("after making 2 MiB of room: cache %v, want old1 evicted and only it", got)
	}

	// More than evicting everything unused frees: refused, old2 gone, images in use kept.
	need := free() + 2*mib // with old2 (3 MiB) gone, still 1 MiB short of the floor
	err := m.ensureRoom(spaceNeed{cache: need}, "workspace huge", "deploy it elsewhere")
	if !errors.Is(err, errNoRoom) {
		t.Fatalf("want errNoRoom, got %v", err)
	}
	if got := cached(m); got[old2.Digest] || !got[deployed.Digest] || !got[inFlight.Digest] {
		t.Fatalf("after a refusal: cache %v, want old2 evicted and the images in use kept", got)
	}
	t.Logf("refusal: %v; advice: %s", err, errdefs.Advice(err))
	freeNow := free()
	for _, s := range []string{"workspace huge", "small-host", ibytes(need), ibytes(freeNow), "2.0 MiB", "--min-free",
		ibytes(need+2*mib-freeNow) + " short", m.cfg.Dir, "nothing was written"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("the refusal does not mention %q: %v", s, err)
		}
	}
	advice := errdefs.Advice(err)
	for _, s := range []string{"free at least " + ibytes(need+2*mib-freeNow) + " in " + m.cfg.Dir, "lower the manager's --min-free", "deploy it elsewhere"} {
		if !strings.Contains(advice, s) {
			t.Errorf("the advice does not say %q: %q", s, advice)
		}
	}
	if n := counterValue(m.metrics.cacheEvictions); n != 2 {
		t.Errorf("evictions counted: %v, want 2", n)
	}
}

// TestEnsureRoomFloor: free − need ≥ floor, with the default floor when none is
// configured and none when it is negative.
func TestEnsureRoomFloor(t *testing.T) {
	m, _, _ := spaceManager(t)
	m.freeBytes = func(string) (int64, error) { return 5 << 30, nil }
	for _, tc := range []struct {
		minFree, need int64
		ok            bool
	}{
		{0, 4 << 30, true}, // the default 1 GiB floor, exactly kept
		{0, 4<<30 + 1, false},
		{-1, 5 << 30, true}, // no floor
		{-1, 5<<30 + 1, false},
		{100, 5<<30 - 100, true},
		{100, 5<<30 - 99, false},
	} {
		m.cfg.MinFreeBytes = tc.minFree
		err := m.ensureRoom(spaceNeed{workspace: tc.need}, "ws", "elsewhere")
		if (err == nil) != tc.ok {
			t.Errorf("floor %d, need %d: %v, want ok %v", tc.minFree, tc.need, err, tc.ok)
		}
	}
}

// TestAdviseOnFullDisk: a write that hit a full disk after all says what to do;
// other errors and the pre-flight refusal pass unchanged.
func TestAdviseOnFullDisk(t *testing.T) {
	m, _, _ := spaceManager(t)
	full := fmt.Errorf("stage base image: %w", &os.PathError{Op: "write", Path: "/x.part", Err: syscall.ENOSPC})
	libvirtFull := errors.New("save vws-k: libvirt: operation failed: /x/memory.save: No space left on device")
	for _, err := range []error{full, libvirtFull} {
		got := m.adviseOnFullDisk(err, "deploy it elsewhere")
		if a := errdefs.Advice(got); !strings.Contains(a, "free space in "+m.cfg.Dir) || !strings.Contains(a, "deploy it elsewhere") {
			t.Errorf("%v: advice %q", err, a)
		}
		if !strings.Contains(got.Error(), "free now") || !errors.Is(got, err) {
			t.Errorf("%v became %v", err, got)
		}
	}
	other := errors.New("connection refused")
	refused := errdefs.WithAdvice(fmt.Errorf("%w: ...", errNoRoom), "x")
	for _, err := range []error{other, refused, nil} {
		if got := m.adviseOnFullDisk(err, "y"); got != err {
			t.Errorf("%v changed to %v", err, got)
		}
	}
}

// TestReserveRoomCountsOperationsUnderWay: room granted to a deploy under way is taken
// for the next check until that deploy ends, so two racing for the same free space
// are not both let through; the refusal says how much is promised to others.
func TestReserveRoomCountsOperationsUnderWay(t *testing.T) {
	m, _, _ := spaceManager(t)
	m.cfg.MinFreeBytes = -1
	m.freeBytes = func(string) (int64, error) { return 10 << 30, nil }
	releaseA, err := m.reserveRoom("deploy a", spaceNeed{cache: 4 << 30, workspace: 2 << 30}, "workspace a", "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.reserveRoom("deploy b", spaceNeed{cache: 5 << 30}, "workspace b", "elsewhere"); !errors.Is(err, errNoRoom) ||
		!strings.Contains(err.Error(), "6.0 GiB of it promised to deploys or serializes under way") {
		t.Fatalf("a second deploy that fits only without the first: %v", err)
	}
	releaseC, err := m.reserveRoom("serialize c", spaceNeed{workspace: 4 << 30}, "serializing c", "elsewhere")
	if err != nil {
		t.Fatalf("what still fits beside the first: %v", err)
	}
	releaseA()
	releaseC()
	if _, err := m.reserveRoom("deploy b", spaceNeed{cache: 5 << 30}, "workspace b", "elsewhere"); err != nil {
		t.Fatalf("once the others ended: %v", err)
	}
}

// TestDeploysOfOneImageReserveItOnce: deploys in flight that stage the same shared
// image write it once (the second waits for the first's transfer, then finds it
// cached), so the second is not refused for room only the first needs; another
// image still counts in full.
func TestDeploysOfOneImageReserveItOnce(t *testing.T) {
	m, _, _ := spaceManager(t)
	m.cfg.MinFreeBytes = -1
	m.freeBytes = func(string) (int64, error) { return 10 << 30, nil }
	base := "sha256:" + strings.Repeat("b", 64)
	need := func(digest string) spaceNeed {
		return spaceNeed{workspace: 1 << 30, images: map[string]int64{digest: 6 << 30}}
	}
	releaseA, err := m.reserveRoom("deploy a", need(base), "workspace a", "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	releaseB, err := m.reserveRoom("deploy b", need(base), "workspace b", "elsewhere")
	if err != nil {
		t.Fatalf("a second deploy of the image the first is staging: %v", err)
	}
	other := "sha256:" + strings.Repeat("c", 64)
	if _, err := m.reserveRoom("deploy c", need(other), "workspace c", "elsewhere"); !errors.Is(err, errNoRoom) ||
		!strings.Contains(err.Error(), "8.0 GiB of it promised") {
		t.Fatalf("a deploy of another image that does not fit beside them: %v", err)
	}
	releaseA()
	if _, err := m.reserveRoom("deploy c", need(other), "workspace c", "elsewhere"); !errors.Is(err, errNoRoom) {
		t.Fatalf("the image still promised to deploy b was let go with deploy a: %v", err)
	}
	releaseB()
	if _, err := m.reserveRoom("deploy c", need(other), "workspace c", "elsewhere"); err != nil {
		t.Fatalf("once both ended: %v", err)
	}
}
