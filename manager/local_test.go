package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
)

// dirPool is a co-located image pool: files named by digest in one directory.
type dirPool struct{ dir string }

func (p dirPool) Path(digest string) (string, error) {
	path := filepath.Join(p.dir, digest)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: no %s", errdefs.ErrResourceUnknown, digest)
	}
	return path, nil
}

// countingImages serves data for every GET and counts them.
func countingImages(t *testing.T, data []byte) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(hs.Close)
	return hs, &n
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(fi.Sys().(*syscall.Stat_t).Ino)
}

func localManager(t *testing.T, pool LocalImages, hs *httptest.Server) *Manager {
	// The cache sits beside the pool, on one file system, as in one server's data dir.
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "cache"), 0o700)
	os.Mkdir(filepath.Join(root, "journal"), 0o700)
	return &Manager{cache: &cache{dir: filepath.Join(root, "cache")}, journal: &journal{dir: filepath.Join(root, "journal")},
		repo: &repoClient{http: hs.Client()}, cfg: Config{LocalImages: pool}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		metrics: newMetrics(nil)}
}

// TestStageFromTheColocatedPool: a pool image of this process is linked into the
// cache, checked piece by piece against the manifest's list, and not transferred.
func TestStageFromTheColocatedPool(t *testing.T) {
	data, digest := testImage(3<<20 + 5)
	hs, gets := countingImages(t, data)
	m := localManager(t, nil, hs)
	poolDir := filepath.Join(filepath.Dir(m.cache.dir), "pool")
	os.Mkdir(poolDir, 0o700)
	blob := filepath.Join(poolDir, digest)
	if err := os.WriteFile(blob, data, 0o640); err != nil {
		t.Fatal(err)
	}
	m.cfg.LocalImages = dirPool{poolDir}
	list, err := chunkhash.File(context.Background(), blob, chunkhash.MinChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/images/" + digest, Chunks: list}
	var progressed int64
	path, hit, err := m.stageShared(context.Background(), img, "", "", func(done, _ int64) { progressed = done })
	if err != nil || hit {
		t.Fatalf("stage: hit %v, %v", hit, err)
	}
	if gets.Load() != 0 {
		t.Fatalf("%d HTTP transfers of an image the co-located pool holds", gets.Load())
	}
	if inode(t, path) != inode(t, blob) {
		t.Fatal("the cache entry is a copy, not a link to the pool's file on the same file system")
	}
	if progressed != int64(len(data)) {
		t.Errorf("progress ended at %d", progressed)
	}
	if _, hit, err := m.stageShared(context.Background(), img, "", "", nil); err != nil || !hit {
		t.Fatalf("second stage: hit %v, %v", hit, err)
	}
	if got := counterValue(m.metrics.stagedBytes.WithLabelValues(sourcePool)); got != float64(len(data)) {
		t.Errorf("vws_manager_staged_bytes_total{source=pool} = %v, want %d", got, len(data))
	}
	if counterValue(m.metrics.stagedSeconds.WithLabelValues(sourcePool)) <= 0 || counterValue(m.metrics.cacheHits) != 1 {
		t.Error("the staging time or the cache hit was not counted")
	}

	// The pool's copy edited in place (the cache shares its inode): the next deploy
	// finds the cache entry changed, checks it, and stages the image anew; the bad
	// pool copy is not used either, so the image comes over HTTP, checked.
	f, err := os.OpenFile(blob, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{data[2<<20] ^ 0xff}, 2<<20)
	f.Close()
	later := time.Now().Add(time.Second) // a coarse clock could leave mtime unchanged
	os.Chtimes(blob, later, later)
	path, hit, err = m.stageShared(context.Background(), img, "", "", nil)
	if err != nil || hit {
		t.Fatalf("stage after the pool's copy changed: hit %v, %v", hit, err)
	}
	if gets.Load() != 1 {
		t.Fatalf("%d HTTP transfers after the pool's copy went bad, want 1", gets.Load())
	}
	if got := counterValue(m.metrics.stagedBytes.WithLabelValues(sourceRepository)); got != float64(len(data)) {
		t.Errorf("vws_manager_staged_bytes_total{source=repository} = %v, want %d", got, len(data))
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("the cache holds other bytes than the image")
	}
	if inode(t, path) == inode(t, blob) {
		t.Fatal("the cache still shares the damaged pool file")
	}
	ents, _ := os.ReadDir(m.cache.dir)
	for _, e := range ents {
		if filepath.Ext(e.Name()) == localSuffix {
			t.Fatalf("left behind: %s", e.Name())
		}
	}
}

// TestStageRefusesABadCopyEverywhere: when the pool's copy and the repository's
// transfer both differ from the manifest, the image is an ImageIntegrityFault and
// nothing is cached.
func TestStageRefusesABadCopyEverywhere(t *testing.T) {
	data, digest := testImage(2<<20 + 9)
	bad := bytes.Clone(data)
	bad[12345] ^= 1
	hs, _ := countingImages(t, bad)
	poolDir := t.TempDir()
	os.WriteFile(filepath.Join(poolDir, digest), bad, 0o640)
	m := localManager(t, dirPool{poolDir}, hs)
	good := filepath.Join(t.TempDir(), "good")
	os.WriteFile(good, data, 0o600)
	list, _ := chunkhash.File(context.Background(), good, chunkhash.MinChunkBytes)
	for _, withList := range []bool{true, false} {
		img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/x"}
		if withList {
			img.Chunks = list
		}
		_, _, err := m.stageShared(context.Background(), img, "", "", nil)
		if !errors.Is(err, errdefs.ErrImageIntegrity) {
			t.Fatalf("list %v: %v", withList, err)
		}
		if ents, _ := os.ReadDir(m.cache.dir); len(ents) != 0 {
			t.Fatalf("list %v: the cache keeps %v", withList, ents)
		}
	}
}

// TestCacheEntryChangedInPlaceIsCheckedAgain: without a co-located pool too, a cached
// image edited behind the manager's back is not booted.
func TestCacheEntryChangedInPlaceIsCheckedAgain(t *testing.T) {
	data, digest := testImage(1<<20 + 3)
	hs, gets := countingImages(t, data)
	m := localManager(t, nil, hs)
	img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/x"}
	path, _, err := m.stageShared(context.Background(), img, "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !m.cache.stampValid(digest, img.Size) {
		t.Fatal("a freshly staged image is not stamped as checked")
	}
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte{0}, 100)
	f.Close()
	later := time.Now().Add(time.Second)
	os.Chtimes(path, later, later)
	if m.cache.stampValid(digest, img.Size) {
		t.Fatal("an entry written to since its check still counts as checked")
	}
	if _, hit, err := m.stageShared(context.Background(), img, "", "", nil); err != nil || hit || gets.Load() != 2 {
		t.Fatalf("after the edit: hit %v, %v, %d transfers", hit, err, gets.Load())
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
		t.Fatal("the edited entry is still in use")
	}
	// An entry with no stamp (staged by an earlier vws) is checked once, then trusted.
	os.Remove(path + stampSuffix)
	if _, hit, err := m.stageShared(context.Background(), img, "", "", nil); err != nil || !hit || gets.Load() != 2 {
		t.Fatalf("unstamped entry: hit %v, %v, %d transfers", hit, err, gets.Load())
	}
	if !m.cache.stampValid(digest, img.Size) {
		t.Fatal("the unstamped entry was not stamped after its check")
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
