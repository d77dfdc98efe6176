package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestACacheEntryIsItsDigestsWhoeverAsks: the host cache is keyed by an image's
// whole-file digest and shared by every workspace (of every Repository this host
// serves). An entry staged under digest D must be D's bytes: a later deploy whose
// manifest names D, with D's true piece list, must get D's bytes, whatever piece list
// an earlier manifest naming D came with.
func TestACacheEntryIsItsDigestsWhoeverAsks(t *testing.T) {
	good, digest := testImage(3<<20 + 7)
	evil := bytes.Clone(good)
	for i := range evil[:1<<20] {
		evil[i] ^= 0x5a
	}
	var goodGets, evilGets atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data := good
		if strings.HasPrefix(r.URL.Path, "/evil/") {
			evilGets.Add(1)
			data = evil
		} else {
			goodGets.Add(1)
		}
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(hs.Close)
	m := localManager(t, nil, hs)
	m.repo.streams = 4

	// One Repository's manifest names D (an image another Repository's workspaces
	// use) with the piece list of other bytes of the same size.
	first := &manifestImage{Role: "base", Digest: digest, Size: int64(len(good)),
		Location: hs.URL + "/evil/" + digest, Chunks: listOf(t, evil)}
	_, _, ferr := m.stageShared(context.Background(), first, "", "", nil)
	m.cache.unpin([]string{digest})
	t.Logf("staging D with another image's piece list: err=%v", ferr)

	// Another workspace's manifest names D, with D's own pieces.
	second := &manifestImage{Role: "base", Digest: digest, Size: int64(len(good)),
		Location: hs.URL + "/good/" + digest, Chunks: listOf(t, good)}
	path, hit, err := m.stageShared(context.Background(), second, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(got)
	if gotDigest := "sha256:" + hex.EncodeToString(sum[:]); gotDigest != digest {
		t.Fatalf("the cache entry for %s that a deploy was handed (cache hit %v) has digest %s: bytes other than the image its manifest names", digest[:19], hit, gotDigest[:19])
	}
}

// TestTheStalePartSweepSparesAPinnedDeploy: a .part file a deploy in flight is
// about to resume (pinned by pinManifest, counted as already there by deployNeed and
// its room reserved on that basis) stays until that deploy takes its lock, however
// old: the hourly sweep spares it, as eviction does.
func TestTheStalePartSweepSparesAPinnedDeploy(t *testing.T) {
	c := &cache{dir: t.TempDir()}
	digest := "sha256:" + strings.Repeat("ab", 32)
	p := c.path(digest) + ".part"
	if err := os.WriteFile(p, blob(1<<20, 'x'), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-partKeep - time.Minute)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	c.pin(digest) // a deploy retried now: pinManifest, then deployNeed counts the .part
	dropped := c.dropStaleParts(time.Now())
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the sweep removed %q, the .part a pinned deploy in flight is about to resume: %v", dropped, err)
	}
}

// TestTwoDeploysOfOneBaseFetchItOnce: two deploys of workspaces sharing one base image, at
// once: one transfer, both handed the verified entry.
func TestTwoDeploysOfOneBaseFetchItOnce(t *testing.T) {
	data, digest := testImage(6<<20 + 3)
	var gets atomic.Int32
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		<-release
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(hs.Close)
	m := localManager(t, nil, hs)
	m.repo.streams = 1
	img := manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/i/" + digest, Chunks: listOf(t, data)}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			im := img
			_, _, errs[i] = m.stageShared(context.Background(), &im, "", "", nil)
		})
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := gets.Load(); n != 1 {
		t.Fatalf("%d transfers", n)
	}
	sameFile(t, m.cache.path(digest), data)
	if !m.cache.stampValid(digest, img.Size) || len(m.cache.pinned()) != 1 || m.cache.pins[digest] != 2 {
		t.Fatalf("verified %v pins %v", m.cache.stampValid(digest, img.Size), m.cache.pins)
	}
}

// TestAFailedTransferKeepsTheCacheWithinBudget: --cache-max bounds the bytes the host
// cache alone holds, interrupted transfers' .part files included, those no deploy is
// resuming going first. A deploy whose transfer fails ends with its .part in the cache:
// the cache must not stay past its bound (until some later deploy happens to miss the
// cache, or for a day) with bytes no deploy is resuming.
func TestAFailedTransferKeepsTheCacheWithinBudget(t *testing.T) {
	const mib = 1 << 20
	hs, imgs := images(t, blob(2*mib, 'a'))
	m := evictingManager(t, hs, 3*mib)
	stageDone(t, m, imgs[0]) // 2 MiB cached, unused: within 3 MiB

	data := blob(2*mib, 'c')
	sum := sha256.Sum256(data)
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Promise everything, send 1.5 MiB, drop the connection.
		w.Header().Set("Content-Length", "2097152")
		w.WriteHeader(http.StatusOK)
		w.Write(data[:3*mib/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(cut.Close)
	m.repo.http = cut.Client()
	img := &manifestImage{Role: "base", Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: 2 * mib, Location: cut.URL + "/c"}
	m.cache.pin(img.Digest) // the deploy's pinManifest
	if _, _, err := m.stageShared(context.Background(), img, "", "", nil); err == nil {
		t.Fatal("a cut-off transfer staged")
	}
	m.cache.unpin([]string{img.Digest}) // the deploy failed and ended

	var own int64
	for _, p := range m.cache.parts() {
		own += p.Size
	}
	for _, c := range m.cache.list() {
		own += c.Size
	}
	if own > m.cfg.CacheMaxBytes {
		t.Fatalf("after the failed deploy ended the host cache holds %d bytes (.part files %v), past --cache-max %d, with nothing in use", own, m.cache.parts(), m.cfg.CacheMaxBytes)
	}
}

// TestConcurrentStagingAndEviction: deploys staging and re-using images at once
// under a tight budget never lose an image while they hold it, and race-free.
func TestConcurrentStagingAndEviction(t *testing.T) {
	const mib = 1 << 20
	hs, imgs := images(t, blob(2*mib, 'a'), blob(2*mib, 'b'), blob(2*mib, 'c'))
	m := evictingManager(t, hs, 3*mib)
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 8 {
				img := *imgs[(g+i)%3]
				path, _, err := m.stageShared(context.Background(), &img, "", "", nil)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := os.ReadFile(path); err != nil || len(got) != int(img.Size) {
					t.Errorf("a pinned image went while its deploy held it: %v", err)
				}
				m.cache.unpin([]string{img.Digest})
				m.cache.dropStaleParts(time.Now())
			}
		})
	}
	wg.Wait()
	if len(m.cache.pinned()) != 0 {
		t.Fatalf("pins left: %v", m.cache.pins)
	}
}
