package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// images serves any number of images at /<digest>.
func images(t *testing.T, blobs ...[]byte) (*httptest.Server, []*manifestImage) {
	byDigest := map[string][]byte{}
	var imgs []*manifestImage
	for _, b := range blobs {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		byDigest[d] = b
		imgs = append(imgs, &manifestImage{Role: "base", Digest: d, Size: int64(len(b))})
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(byDigest[strings.TrimPrefix(r.URL.Path, "/")]))
	}))
	t.Cleanup(hs.Close)
	for _, img := range imgs {
		img.Location = hs.URL + "/" + img.Digest
	}
	return hs, imgs
}

func blob(n int, fill byte) []byte { return bytes.Repeat([]byte{fill}, n) }

// evictingManager has a journal and a cache with a budget of budget bytes.
func evictingManager(t *testing.T, hs *httptest.Server, budget int64) *Manager {
	m := localManager(t, nil, hs)
	m.cfg.CacheMaxBytes = budget
	m.journal = &journal{dir: filepath.Join(filepath.Dir(m.cache.dir), "journal")}
	os.MkdirAll(m.journal.dir, 0o700)
	return m
}

func cached(m *Manager) map[string]bool {
	out := map[string]bool{}
	for _, c := range m.cache.list() {
		out[c.Digest] = true
	}
	return out
}

// stageDone stages img as a deploy would and ends that deploy (unpins it).
func stageDone(t *testing.T, m *Manager, img *manifestImage) {
	t.Helper()
	if _, _, err := m.stageShared(context.Background(), img, "", "", nil); err != nil {
		t.Fatal(err)
	}
	m.cache.unpin([]string{img.Digest})
}

// TestCacheEvictsLeastRecentlyUsed: over its budget, the cache drops the images used
// longest ago that no deployment uses; the images deployments list, and those of a
// deploy in flight, stay.
func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	const mib = 1 << 20
	hs, imgs := images(t, blob(2*mib, 'a'), blob(2*mib, 'b'), blob(2*mib, 'c'), blob(2*mib, 'd'))
	a, b, c, d := imgs[0], imgs[1], imgs[2], imgs[3]
	m := evictingManager(t, hs, 5*mib)

	stageDone(t, m, a)
	time.Sleep(10 * time.Millisecond) // distinct last-use times
	stageDone(t, m, b)
	time.Sleep(10 * time.Millisecond)
	stageDone(t, m, a) // a hit: a is now the most recently used
	time.Sleep(10 * time.Millisecond)
	stageDone(t, m, c) // 6 MiB > 5: b, used longest ago, goes
	if got := cached(m); !got[a.Digest] || got[b.Digest] || !got[c.Digest] {
		t.Fatalf("after staging c: cache %v, want a and c (b least recently used)", got)
	}
	if n := counterValue(m.metrics.cacheEvictions); n != 1 {
		t.Errorf("evictions counted: %v", n)
	}

	// a is used by a deployed workspace (its journal record), c by a deploy in flight.
	if err := m.journal.put(&record{Key: "ws1", Phase: phaseDeployed, State: stateShutdown, Shared: []string{a.Digest}}); err != nil {
		t.Fatal(err)
	}
	m.cache.pin(c.Digest)
	stageDone(t, m, d) // 6 MiB again, but a and c are in use: nothing can go
	if got := cached(m); !got[a.Digest] || !got[c.Digest] || !got[d.Digest] {
		t.Fatalf("images in use were evicted: cache %v", got)
	}
	// The deploy in flight ends: c may go now (the next staging evicts it).
	m.cache.unpin([]string{c.Digest})
	m.evictCache()
	if got := cached(m); !got[a.Digest] || got[c.Digest] || !got[d.Digest] {
		t.Fatalf("after the deploy ended: cache %v, want a (deployed) and d (newest)", got)
	}
	// A record from an earlier vws (no Shared list): nothing is evicted.
	if err := m.journal.put(&record{Key: "ws2", Phase: phaseDeployed, State: stateShutdown}); err != nil {
		t.Fatal(err)
	}
	stageDone(t, m, b)
	if got := cached(m); !got[b.Digest] || !got[d.Digest] || !got[a.Digest] {
		t.Fatalf("evicted although a deployment's images are unknown: %v", got)
	}
}

// TestCacheDoesNotCountPoolLinks: entries that are hard links to the co-located
// pool's files use no space of their own; they are neither counted nor evicted.
func TestCacheDoesNotCountPoolLinks(t *testing.T) {
	const mib = 1 << 20
	hs, imgs := images(t, blob(3*mib, 'p'), blob(3*mib, 'q'))
	m := evictingManager(t, hs, 4*mib)
	poolDir := filepath.Join(filepath.Dir(m.cache.dir), "pool")
	os.Mkdir(poolDir, 0o700)
	os.WriteFile(filepath.Join(poolDir, imgs[0].Digest), blob(3*mib, 'p'), 0o640)
	m.cfg.LocalImages = dirPool{poolDir}
	stageDone(t, m, imgs[0]) // linked from the pool
	stageDone(t, m, imgs[1]) // transferred: 3 MiB of the cache's own, within 4
	if got := cached(m); !got[imgs[0].Digest] || !got[imgs[1].Digest] {
		t.Fatalf("cache %v: a linked entry was counted against the budget", got)
	}
}

// TestDropStaleParts: an interrupted transfer's .part file waits partKeep for a deploy
// to resume it, then goes; one whose transfer is in flight (its digest locked) stays
// however old, and nothing but .part files is touched.
func TestDropStaleParts(t *testing.T) {
	c := &cache{dir: t.TempDir()}
	now := time.Now()
	hexOf := func(b byte) string { return strings.Repeat(string("0123456789abcdef"[b]), 64) }
	write := func(name string, age time.Duration) {
		p := filepath.Join(c.dir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	write(hexOf(1)+".part", time.Hour)          // recent: a retry resumes it
	write(hexOf(2)+".part", partKeep+time.Hour) // stale
	write(hexOf(3)+".part", partKeep+time.Hour) // stale, but its transfer is in flight
	write(hexOf(4), partKeep+time.Hour)         // an old cache entry, not a .part
	unlock := c.inflight.lock("sha256:" + hexOf(3))
	got := c.dropStaleParts(now)
	unlock()
	if len(got) != 1 || got[0] != hexOf(2)+".part" {
		t.Fatalf("dropped %q, want only the stale .part no transfer holds", got)
	}
	for _, name := range []string{hexOf(1) + ".part", hexOf(3) + ".part", hexOf(4)} {
		if _, err := os.Stat(filepath.Join(c.dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := c.dropStaleParts(now); len(got) != 1 || got[0] != hexOf(3)+".part" {
		t.Fatalf("once its transfer ended, dropped %q", got)
	}
}

// TestInterruptedTransfersCountAndGoFirst: the .part files of interrupted transfers
// count against the cache's budget and are removed before any cached image, except
// one a transfer in flight writes or a deploy in flight is about to resume; making
// room for a deploy removes them too.
func TestInterruptedTransfersCountAndGoFirst(t *testing.T) {
	const mib = 1 << 20
	hs, imgs := images(t, blob(2*mib, 'a'))
	m := evictingManager(t, hs, 3*mib)
	stageDone(t, m, imgs[0])
	part := func(fill byte, n int) string {
		t.Helper()
		digest := "sha256:" + strings.Repeat(string(fill), 64)
		if err := os.WriteFile(m.cache.path(digest)+".part", blob(n, fill), 0o644); err != nil {
			t.Fatal(err)
		}
		return digest
	}
	stale, resumed, writing := part('1', 2*mib), part('2', mib/2), part('3', mib/2)
	m.cache.pin(resumed)
	unlock := m.cache.inflight.lock(writing)
	m.evictCache()
	unlock()
	has := func(path string) bool { _, err := os.Stat(path); return err == nil }
	if has(m.cache.path(stale) + ".part") {
		t.Error("an interrupted transfer no deploy resumes outlived the budget")
	}
	if !has(m.cache.path(resumed)+".part") || !has(m.cache.path(writing)+".part") {
		t.Error("a transfer a deploy resumes or writes was removed")
	}
	if !cached(m)[imgs[0].Digest] {
		t.Error("a cached image went although removing the interrupted transfer was enough")
	}

	// Making room for a deploy: the .part goes before the refusal.
	m.cache.unpin([]string{resumed})
	m.cfg.CacheMaxBytes = 0
	m.cfg.MinFreeBytes = -1
	m.freeBytes = func(string) (int64, error) {
		if has(m.cache.path(resumed) + ".part") {
			return 0, nil
		}
		return mib, nil
	}
	if err := m.ensureRoom(spaceNeed{cache: mib / 2}, "workspace w", "elsewhere"); err != nil {
		t.Fatalf("a deploy that fits once an idle .part is removed: %v", err)
	}
	if has(m.cache.path(resumed) + ".part") {
		t.Error("the idle .part is still there")
	}
}
