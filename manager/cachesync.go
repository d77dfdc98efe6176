package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/qcow2"
)

// A shared image staged from the Repository is used as soon as it is checked, and
// written to disk in the background once the deploys in flight are done: its fsync
// took about half of a staging (BenchmarkFetch: 390 MB/s with it, 780 without), and
// a Deploy need not wait for it.
// What the host holds in its page cache is what was checked, for as long as the host
// runs; a crash of the manager alone loses nothing. Only a host that goes down before
// the fsync may lose bytes, so the entry's stamp names the boot it is good for
// ("unsynced:<boot ID>") until the fsync is done. After a restart of the host such an
// entry is synced and checked again before anything uses it (recheckUnsynced).
// Without a boot ID to tell restarts apart, every entry is synced before use.

// canDeferSync reports whether an entry staged now may be used before it is on disk.
func (c *cache) canDeferSync() bool { return c.boot != "" }

// beginUnsynced counts a copy of digest whose fsync is yet to come: until endUnsynced,
// every stamp written for digest says so.
func (c *cache) beginUnsynced(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unsynced == nil {
		c.unsynced = map[string]int{}
	}
	c.unsynced[digest]++
}

func (c *cache) endUnsynced(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unsynced[digest]--; c.unsynced[digest] <= 0 {
		delete(c.unsynced, digest)
	}
}

// unsyncedBoot is what a stamp written now for digest names as the boot its bytes are
// good for: "" when they are on disk.
func (c *cache) unsyncedBoot(digest string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unsynced[digest] > 0 {
		return c.boot
	}
	return ""
}

// syncStaged writes a cache entry to disk (a test holds it back, or fails it).
var syncStaged = (*os.File).Sync

// syncPath writes the entry at path, and its directory entry, to disk.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syncStaged(f); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// backgroundSyncs runs the fsyncs of staged entries, and lets Close wait for them.
// An fsync waits while deploys are in flight, up to maxSyncDelay: on ext4 (data=ordered)
// their own small fsyncs (journal records, the overlay) would otherwise wait for the
// hundreds of megabytes being written out.
type backgroundSyncs struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	busy   int
	idle   chan struct{} // closed while busy is 0
}

// maxSyncDelay bounds how long deploys in flight hold an fsync back: how long a host
// that goes down may lose a staged image it would otherwise have kept.
const maxSyncDelay = 10 * time.Second

// hold marks a deploy in flight until release is called.
func (b *backgroundSyncs) hold() (release func()) {
	b.mu.Lock()
	if b.busy == 0 {
		b.idle = make(chan struct{})
	}
	b.busy++
	b.mu.Unlock()
	return sync.OnceFunc(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.busy--; b.busy == 0 {
			close(b.idle)
		}
	})
}

// waitIdle waits until no deploy is in flight, at most max, or until stop.
func (b *backgroundSyncs) waitIdle(max time.Duration, stop <-chan struct{}) {
	b.mu.Lock()
	idle := b.idle
	busy := b.busy > 0
	b.mu.Unlock()
	if !busy {
		return
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-stop:
	}
}

// start runs fn in the background, or now once closed.
func (b *backgroundSyncs) start(fn func()) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		fn()
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

func (b *backgroundSyncs) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}

// syncLater writes the entry for digest (counted by beginUnsynced) to disk in the
// background, then stamps it as on disk if it is still the file that was synced.
func (m *Manager) syncLater(digest string) {
	m.syncs.start(func() {
		m.syncs.waitIdle(maxSyncDelay, m.stop)
		err := m.cache.syncEntry(digest, m.stop)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			// The stamp keeps saying "unsynced": good on this boot, checked again after a restart.
			m.log.Warn("write a staged image to disk", "digest", digest, "err", err)
		}
	})
}

func (c *cache) syncEntry(digest string, stop <-chan struct{}) error {
	path := c.path(digest)
	f, err := os.Open(path)
	if err != nil {
		c.endUnsynced(digest)
		return err
	}
	defer f.Close()
	syncErr := syncStaged(f)
	if syncErr == nil {
		syncErr = fsutil.SyncDir(c.dir)
	}
	c.endUnsynced(digest)
	fi, err := f.Stat()
	if err != nil {
		return errors.Join(syncErr, err)
	}
	// Under the digest's lock no staging replaces the file or its stamp meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	unlock, err := c.inflight.lockCtx(ctx, digest, "syncing it")
	if err != nil {
		return errors.Join(syncErr, err)
	}
	defer unlock()
	if syncErr != nil {
		// What the kernel failed to write may be gone from the page cache too: not the
		// checked bytes any more, on this boot either. Dropped, unless a copy staged
		// since replaced it: a running guest keeps its open file, a workspace deployed
		// on it does not boot again (bootable), a deploy fetches it anew.
		if cur, err := os.Stat(path); err == nil && os.SameFile(cur, fi) {
			c.drop(digest)
		}
		return syncErr
	}
	got, err := os.ReadFile(path + stampSuffix)
	if err != nil {
		return err
	}
	by, boot, ok := parseStamp(string(got))
	if !ok || boot == "" || string(got) != stampText(fi, by, boot) {
		return nil // on disk already, or the stamp is of another file now
	}
	if c.unsyncedBoot(digest) != "" {
		return nil // another copy was staged since, and waits for its own fsync
	}
	return fsutil.WriteFileAtomic(path+stampSuffix, []byte(stampText(fi, by, "")), 0o644)
}

// recheckUnsynced runs once at start, before any deploy. An entry stamped unsynced on
// this boot is synced in the background, as staging would have. Every one stamped
// unsynced under another boot (the host went down before its fsync was done) is
// synced and checked against its digest. One that passes is stamped as on disk; one
// that fails loses its stamp, and is dropped unless workspaces are deployed on it.
func (m *Manager) recheckUnsynced(ctx context.Context) {
	ents, _ := os.ReadDir(m.cache.dir)
	for _, e := range ents {
		hexDigest, ok := strings.CutSuffix(e.Name(), stampSuffix)
		if !ok || !digestRE.MatchString("sha256:"+hexDigest) {
			continue
		}
		got, err := os.ReadFile(filepath.Join(m.cache.dir, e.Name()))
		if err != nil {
			continue
		}
		by, boot, ok := parseStamp(string(got))
		if !ok || boot == "" {
			continue
		}
		digest := "sha256:" + hexDigest
		if boot == m.cache.boot {
			// The manager alone restarted before the fsync: the page cache still
			// holds the checked bytes; write them out now.
			m.cache.beginUnsynced(digest)
			m.syncLater(digest)
			continue
		}
		err = m.cache.recheck(ctx, digest, by)
		if err == nil {
			m.log.Info("a cached image staged before the host restarted is intact on disk", "digest", digest)
			continue
		}
		if m.usedByDeployed(digest) {
			// Kept for the workspaces deployed on it, unstamped: they do not boot on
			// it (bootable), and a deploy stages a checked copy over it.
			m.log.Warn("a cached image staged just before the host went down is damaged: workspaces deployed on it cannot start until deployed again", "digest", digest, "err", err)
			os.Remove(m.cache.path(digest) + stampSuffix)
		} else {
			m.log.Warn("a cached image staged just before the host went down is damaged: dropped", "digest", digest, "err", err)
			m.cache.drop(digest)
		}
	}
}

// recheck syncs the entry for digest and checks it against the digest (a layer with
// its header as fetched, and re-pointed into the cache), then stamps it as on disk.
func (c *cache) recheck(ctx context.Context, digest, by string) error {
	path := c.path(digest)
	// What the page cache holds goes to disk first: then the check is of what the disk keeps.
	if err := syncPath(path); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	img := &manifestImage{Role: "cached", Digest: digest, Size: fi.Size()}
	if _, err := os.Stat(path + originSuffix); err == nil {
		if err := verifyRepointed(ctx, path, img); err != nil {
			return err
		}
		info, err := qcow2.ReadInfo(path)
		if err != nil {
			return err
		}
		if filepath.Dir(info.BackingFile) != c.dir {
			return fmt.Errorf("the layer's header no longer points into the cache (backing file %q): its re-pointing was lost", info.BackingFile)
		}
	} else if err := verifyImage(ctx, path, img); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path+stampSuffix, []byte(stampText(fi, by, "")), 0o644)
}

// bootable refuses to boot rec on a shared image whose cache entry is not its digest
// on this host's disk: damaged, lost with a host that went down before its fsync
// (recheckUnsynced unstamped it), or dropped when its write failed. An entry whose
// stamp merely no longer matches (one of an earlier vws, a data directory copied to
// another disk: another inode) is checked again rather than refused. The workspace's
// own files are intact; a new deploy stages the image again.
func (m *Manager) bootable(ctx context.Context, rec *record) error {
	for _, d := range rec.Shared {
		if m.cache.intact(d) {
			continue
		}
		err := m.recheckForBoot(ctx, d)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errdefs.WithAdvice(fmt.Errorf("%w: the cached image %s under workspace %s is not that image on this host's disk (%w): nothing was started",
			errdefs.ErrImageIntegrity, d, rec.Key, err), "undeploy the workspace (its own changes and saved RAM are handed back) and deploy it again: the image is staged anew")
	}
	return nil
}

// recheckForBoot checks the entry for digest against its digest, under its lock.
func (m *Manager) recheckForBoot(ctx context.Context, digest string) error {
	unlock, err := m.cache.inflight.lockCtx(ctx, digest, "checking it before a boot")
	if err != nil {
		return err
	}
	defer unlock()
	if m.cache.intact(digest) { // checked meanwhile
		return nil
	}
	return m.cache.recheck(ctx, digest, checkedWhole)
}
