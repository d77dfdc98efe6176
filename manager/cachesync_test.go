package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// hookSync makes fn write cache entries to disk until the test ends.
func hookSync(t *testing.T, fn func(*os.File) error) {
	old := syncStaged
	syncStaged = fn
	t.Cleanup(func() { syncStaged = old })
}

// stagingManager is a manager on a host whose boot ID is known (boot-1), and the
// image of size bytes that its repository serves, with its piece list.
func stagingManager(t *testing.T, size int) (*Manager, *manifestImage, []byte, *atomic.Int32) {
	data, digest := testImage(size)
	hs, gets := countingImages(t, data)
	m := localManager(t, nil, hs)
	m.repo.streams = 2
	m.cache.boot = "boot-1"
	img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/images/" + digest, Chunks: listOf(t, data)}
	return m, img, data, gets
}

// TestAStagedImageIsUsedBeforeItsFsync: a base image staged from the Repository is
// handed to the deploy once checked, while its fsync runs in the background; until
// that is done its stamp is good for this boot only (a host restart may have lost the
// bytes), and then for good. A Close waits for the fsync.
func TestAStagedImageIsUsedBeforeItsFsync(t *testing.T) {
	m, img, data, _ := stagingManager(t, 3<<20+11)
	digest := img.Digest
	release := make(chan struct{})
	synced := make(chan struct{})
	hookSync(t, func(f *os.File) error {
		<-release
		defer close(synced)
		return f.Sync()
	})

	path, hit, err := m.stageShared(context.Background(), img, "", "", nil)
	if err != nil || hit {
		t.Fatalf("stage: hit %v, %v", hit, err)
	}
	sameFile(t, path, data)
	stamp := func() string {
		b, err := os.ReadFile(path + stampSuffix)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if s := stamp(); !strings.HasSuffix(s, " unsynced:boot-1\n") {
		t.Fatalf("staged before its fsync, the stamp says %q", s)
	}
	if ok, _ := m.cache.verified(digest, img.Size, checkedBy(img)); !ok {
		t.Fatal("on the boot it was staged on, an entry awaiting its fsync is not taken as checked")
	}
	restarted := &cache{dir: m.cache.dir, boot: "boot-2"}
	if ok, _ := restarted.verified(digest, img.Size, checkedBy(img)); ok {
		t.Fatal("after a host restart, an entry that was not on disk is taken as checked without reading it")
	}

	// Another deploy's cache hit meanwhile stamps it again: still not on disk.
	if _, hit, err := m.stageShared(context.Background(), img, "", "", nil); err != nil || !hit {
		t.Fatalf("second stage: hit %v, %v", hit, err)
	}
	if s := stamp(); !strings.HasSuffix(s, " unsynced:boot-1\n") {
		t.Fatalf("re-stamped before the fsync, the stamp says %q", s)
	}

	close(release)
	<-synced
	m.syncs.close()
	if s := stamp(); strings.Contains(s, "unsynced") || len(strings.Fields(s)) != 4 {
		t.Fatalf("after its fsync the stamp says %q", s)
	}
	if ok, _ := restarted.verified(digest, img.Size, checkedBy(img)); !ok {
		t.Fatal("an entry on disk is not taken as checked after a host restart")
	}
	if len(m.cache.unsynced) != 0 {
		t.Fatalf("fsyncs still counted: %v", m.cache.unsynced)
	}
}

// TestWithoutABootIDStagingSyncsFirst: where the host's boot ID is unknown, a restart
// could not be told apart, so a staged image is on disk before it is used.
func TestWithoutABootIDStagingSyncsFirst(t *testing.T) {
	m, img, _, _ := stagingManager(t, 1<<20+3)
	m.cache.boot = ""
	var staging, late atomic.Bool
	hookSync(t, func(f *os.File) error {
		if !staging.Load() {
			late.Store(true)
		}
		return f.Sync()
	})
	staging.Store(true)
	path, _, err := m.stageShared(context.Background(), img, "", "", nil)
	staging.Store(false)
	if err != nil {
		t.Fatal(err)
	}
	m.syncs.close()
	b, _ := os.ReadFile(path + stampSuffix)
	if late.Load() || strings.Contains(string(b), "unsynced") {
		t.Fatalf("without a boot ID: an fsync ran after the staging (%v), stamp %q", late.Load(), b)
	}
}

// TestEntriesUnsyncedAtAHostCrashAreCheckedAtStart: the host went down with cache
// entries whose fsync had not finished. At the next start each is checked again: one
// whose bytes survived is stamped as on disk; a damaged one is dropped, or, under a
// deployed workspace, kept unstamped: that workspace does not boot on it, and is told
// to deploy again, while one on the intact image boots; an entry unsynced on the
// current boot (the manager alone restarted) is trusted without reading it, and
// synced.
func TestEntriesUnsyncedAtAHostCrashAreCheckedAtStart(t *testing.T) {
	hs, _ := countingImages(t, nil)
	m := localManager(t, nil, hs)
	m.cache.boot = "boot-2"
	put := func(data []byte, digest, boot string) {
		t.Helper()
		p := m.cache.path(digest)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+stampSuffix, []byte(stampText(fi, checkedWhole, boot)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	intact, intactDigest := testImage(1<<20 + 1)
	put(intact, intactDigest, "boot-1")
	lost, lostDigest := testImage(2<<20 + 1)
	damaged := append(make([]byte, 1<<20), lost[1<<20:]...) // its first MiB never reached the disk
	put(damaged, lostDigest, "boot-1")
	unused, unusedDigest := testImage(1<<20 + 7)
	put(append(make([]byte, 4096), unused[4096:]...), unusedDigest, "boot-1")
	current, currentDigest := testImage(1<<20 + 9)
	put(append(make([]byte, 4096), current[4096:]...), currentDigest, "boot-2") // unsynced on this boot: trusted

	for key, d := range map[string]string{"ws-intact": intactDigest, "ws-lost": lostDigest} {
		if err := m.journal.put(&record{Key: key, Phase: phaseDeployed, State: stateShutdown, Shared: []string{d}}); err != nil {
			t.Fatal(err)
		}
	}
	m.recheckUnsynced(context.Background())

	if ok, _ := m.cache.verified(intactDigest, int64(len(intact)), checkedWhole); !ok {
		t.Error("the intact entry is not stamped checked")
	}
	if b, _ := os.ReadFile(m.cache.path(intactDigest) + stampSuffix); strings.Contains(string(b), "unsynced") {
		t.Errorf("the intact entry, synced and checked, is stamped %q", b)
	}
	if _, err := os.Stat(m.cache.path(lostDigest) + stampSuffix); !os.IsNotExist(err) {
		t.Error("the damaged entry keeps its stamp")
	}
	if _, err := os.Stat(m.cache.path(lostDigest)); err != nil {
		t.Error("the damaged entry under a deployed workspace was removed, not kept unstamped for it until a checked copy replaces it")
	}
	if _, err := os.Stat(m.cache.path(unusedDigest)); !os.IsNotExist(err) {
		t.Error("a damaged entry nothing uses was kept")
	}
	m.syncs.close()
	if ok, _ := m.cache.verified(currentDigest, int64(len(current)), checkedWhole); !ok {
		t.Error("an entry unsynced on the current boot lost its stamp")
	}
	if b, _ := os.ReadFile(m.cache.path(currentDigest) + stampSuffix); strings.Contains(string(b), "unsynced") {
		t.Errorf("an entry unsynced on the current boot (the manager alone restarted) was not synced: stamped %q", b)
	}
	for key, want := range map[string]bool{"ws-intact": true, "ws-lost": false} {
		r, err := m.journal.get(key)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != stateShutdown {
			t.Errorf("%s: the restart check changed its state to %s (%q)", key, r.State, r.Detail)
		}
		err = m.bootable(context.Background(), r)
		if want != (err == nil) || !want && (!errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(errdefs.Advice(err), "deploy it again")) {
			t.Errorf("%s may boot: %v (advice %q)", key, err, errdefs.Advice(err))
		}
	}
}

// TestNoBootOnADamagedCachedImage: a workspace whose shared image changed on this
// host's disk since it was checked (or lost its stamp at a restart check) is not
// booted on it, neither started nor restored, and its state stays as it was.
func TestNoBootOnADamagedCachedImage(t *testing.T) {
	ctx := context.Background()
	for _, hot := range []bool{false, true} {
		key := "ws-cold"
		state := stateShutdown
		if hot {
			key, state = "ws-hot", statePaused
		}
		m, _, rec := crashManager(t, key, state, hot)
		if err := os.MkdirAll(m.cache.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		data, digest := testImage(1 << 20)
		p := m.cache.path(digest)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := m.cache.stamp(digest, checkedWhole); err != nil {
			t.Fatal(err)
		}
		rec.Shared = []string{digest}
		if err := m.bootable(context.Background(), rec); err != nil {
			t.Fatalf("hot %v: an intact entry refused: %v", hot, err)
		}
		var err error
		data[7] ^= 1
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Second) // the write's own mtime may fall in the stamp's clock tick
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
		if hot {
			err = m.restore(ctx, rec, false)
		} else {
			err = m.start(ctx, rec)
		}
		if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "nothing was started") {
			t.Errorf("hot %v: booted on a changed base image: %v", hot, err)
		}
		if r, _ := m.journal.get(key); r.State != state || r.Hot != hot {
			t.Errorf("hot %v: after the refusal the record says %s (hot %v)", hot, r.State, r.Hot)
		}
	}
}

// TestBackgroundFsyncWaitsForDeploysInFlight: a staged image's fsync waits while a
// deploy is in flight (its own small fsyncs would wait for the image's bytes), but no
// longer than the bound, and not once the manager stops.
func TestBackgroundFsyncWaitsForDeploysInFlight(t *testing.T) {
	var b backgroundSyncs
	b.waitIdle(time.Hour, nil) // nothing in flight: at once
	release := b.hold()
	second := b.hold()
	began := make(chan struct{})
	go func() {
		b.waitIdle(time.Hour, nil)
		close(began)
	}()
	release()
	release() // once only
	select {
	case <-began:
		t.Fatal("the fsync began while a deploy was still in flight")
	case <-time.After(50 * time.Millisecond):
	}
	second()
	select {
	case <-began:
	case <-time.After(5 * time.Second):
		t.Fatal("the fsync did not begin once the deploys were done")
	}

	defer b.hold()()
	t0 := time.Now()
	b.waitIdle(20*time.Millisecond, nil)
	if d := time.Since(t0); d < 20*time.Millisecond {
		t.Fatalf("held back %v, not up to its bound", d)
	}
	stop := make(chan struct{})
	close(stop)
	b.waitIdle(time.Hour, stop) // a stopping manager syncs now
}

// TestAFailedBackgroundFsyncDropsTheEntry: the write-back of a staged image failed
// (EIO): the page cache may no longer hold the checked bytes either, so the entry is
// dropped, a workspace deployed on it does not boot, and the next deploy fetches it.
func TestAFailedBackgroundFsyncDropsTheEntry(t *testing.T) {
	m, img, _, gets := stagingManager(t, 3<<20+11)
	digest := img.Digest
	failing := true
	hookSync(t, func(f *os.File) error {
		if failing {
			return &os.PathError{Op: "sync", Path: f.Name(), Err: syscall.EIO}
		}
		return f.Sync()
	})

	if _, _, err := m.stageShared(context.Background(), img, "", "", nil); err != nil {
		t.Fatal(err)
	}
	m.syncs.close() // the background fsync has run, and failed
	if ok, _ := m.cache.verified(digest, img.Size, checkedBy(img)); ok {
		t.Error("after its fsync failed with EIO, the entry is still used on its stamp alone")
	}
	if err := m.bootable(context.Background(), &record{Key: "ws", Shared: []string{digest}}); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Errorf("after its fsync failed with EIO, a workspace boots on the entry: %v", err)
	}
	failing = false
	before := gets.Load()
	m.syncs = backgroundSyncs{}
	_, hit, err := m.stageShared(context.Background(), img, "", "", nil)
	m.syncs.close()
	if err != nil || hit || gets.Load() == before {
		t.Fatalf("the next deploy: hit %v, %d more GETs, %v; want it fetched anew", hit, gets.Load()-before, err)
	}
}

// TestAStaleStampIsCheckedAgainBeforeABoot: a stamp that no longer matches an intact
// entry — written by an earlier vws (3 fields), or of another inode after the data
// directory was copied — is no damage: the entry is checked again, and boots.
func TestAStaleStampIsCheckedAgainBeforeABoot(t *testing.T) {
	for _, how := range []string{"stamp of an earlier vws", "data directory copied", "tampered"} {
		t.Run(how, func(t *testing.T) {
			hs, _ := countingImages(t, nil)
			m := localManager(t, nil, hs)
			data, digest := testImage(1<<20 + 5)
			p := m.cache.path(digest)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := m.cache.stamp(digest, checkedWhole); err != nil {
				t.Fatal(err)
			}
			fi, _ := os.Stat(p)
			switch how {
			case "stamp of an earlier vws":
				st := fi.Sys().(*syscall.Stat_t)
				if err := os.WriteFile(p+stampSuffix, fmt.Appendf(nil, "%d %d %d\n", st.Ino, fi.Size(), fi.ModTime().UnixNano()), 0o644); err != nil {
					t.Fatal(err)
				}
			case "data directory copied": // cp -a: same bytes, same mtime, another inode
				tmp := p + ".copy"
				if err := os.WriteFile(tmp, data, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(tmp, time.Now(), fi.ModTime()); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
			case "tampered":
				data[9] ^= 1
				if err := os.WriteFile(p, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := m.bootable(context.Background(), &record{Key: "ws", Phase: phaseDeployed, State: stateShutdown, Shared: []string{digest}})
			if how == "tampered" {
				if !errors.Is(err, errdefs.ErrImageIntegrity) {
					t.Fatalf("booted on a tampered entry: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("the cached image is byte for byte its digest, yet the workspace may not boot: %v", err)
			}
			if !m.cache.intact(digest) {
				t.Error("checked again, the entry was not stamped")
			}
		})
	}
}

// TestARecheckedEntryIsStampedOnDiskOnlyOnceSynced: an entry found without a stamp (a
// manager killed between a transfer's rename and its stamp, the bytes perhaps only in
// the page cache) and checked again is synced before a stamp says it is on disk.
func TestARecheckedEntryIsStampedOnDiskOnlyOnceSynced(t *testing.T) {
	m, img, data, _ := stagingManager(t, 2<<20+3)
	digest := img.Digest
	synced := false
	hookSync(t, func(f *os.File) error { synced = true; return f.Sync() })
	p := m.cache.path(digest)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, hit, err := m.stageShared(context.Background(), img, "", "", nil); err != nil || !hit {
		t.Fatalf("stage: hit %v, %v", hit, err)
	}
	m.syncs.close()
	b, err := os.ReadFile(p + stampSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), unsyncedPrefix) && !synced {
		t.Errorf("stamped %q (on disk) though nothing synced the entry", b)
	}
}
