package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/qcow2"
)

func fileImage(t *testing.T, role, path, format, backing string) manifestImage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return manifestImage{Role: role, Digest: "sha256:" + hex.EncodeToString(sum[:]), Format: format, Backing: backing, Size: int64(len(data))}
}

// TestClonedLayerStaysACacheHit: a clone's frozen layer, staged once, is used as it is
// by every later deploy of the clone: not transferred again, not rewritten, and
// standing on the cache's copy of the base.
func TestClonedLayerStaysACacheHit(t *testing.T) {
	c := newLayerChain(t, nil)
	m, base, layer, gets := c.m, c.base, c.layer, c.gets
	deploy := func(key string) {
		t.Helper()
		c.deploy(t, key)
		cached := m.cache.path(layer.Digest)
		if info, err := qcow2.ReadInfo(cached); err != nil || info.BackingFile != m.cache.path(base.Digest) || info.BackingFormat != "raw" {
			t.Fatalf("deploy %s: the cached layer stands on %+v (%v), not the cache's base", key, info, err)
		}
		if info, err := qcow2.ReadInfo(filepath.Join(m.workspaceDir(key), "overlay.qcow2")); err != nil || info.BackingFile != cached {
			t.Fatalf("deploy %s: the overlay stands on %+v (%v), not the cached layer", key, info, err)
		}
	}
	deploy("ws-1")
	fi, err := os.Stat(m.cache.path(layer.Digest))
	if err != nil {
		t.Fatal(err)
	}
	later := fi.ModTime()
	time.Sleep(10 * time.Millisecond) // a rewrite would show in the modification time
	deploy("ws-2")
	deploy("ws-3")
	if gets(layer.Digest) != 1 || gets(base.Digest) != 1 {
		t.Errorf("three deploys of one clone fetched the layer %d times and the base %d times, want once each", gets(layer.Digest), gets(base.Digest))
	}
	if fi, err := os.Stat(m.cache.path(layer.Digest)); err != nil || !fi.ModTime().Equal(later) {
		t.Errorf("the cached layer was rewritten by a later deploy (%v)", err)
	}
	if !m.cache.stampValid(layer.Digest, layer.Size) {
		t.Error("the cached layer no longer matches its stamp")
	}
	if strings.Contains(c.logged.String(), "no longer matches") {
		t.Errorf("a deploy reported the cache damaged:\n%s", c.logged.String())
	}
}

// layerChain is a Repository's clone chain — base (raw) ← layer ← overlay, each backed
// by a path of the Repository's own — served over HTTP, and a manager to stage it.
type layerChain struct {
	base, layer, overlay manifestImage
	m                    *Manager
	logged               *bytes.Buffer
	mu                   sync.Mutex
	served               map[string]int
}

// newLayerChain serves the chain; down, when set, says whether the n-th GET (from 1)
// of a digest is answered 503.
func newLayerChain(t *testing.T, down func(digest string, n int) bool) *layerChain {
	t.Helper()
	repo := t.TempDir()
	basePath, layerPath, overlayPath := filepath.Join(repo, "base.img"), filepath.Join(repo, "layer.qcow2"), filepath.Join(repo, "disk-1.qcow2")
	if err := os.WriteFile(basePath, bytes.Repeat([]byte{0x11}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := qcow2.CreateOverlay(layerPath, basePath, "raw", 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := qcow2.CreateOverlay(overlayPath, layerPath, "qcow2", 1<<20); err != nil {
		t.Fatal(err)
	}
	c := &layerChain{served: map[string]int{}, logged: &bytes.Buffer{}}
	c.base = fileImage(t, "base", basePath, "raw", "")
	c.layer = fileImage(t, "layer", layerPath, "qcow2", c.base.Digest)
	c.overlay = fileImage(t, "overlay", overlayPath, "qcow2", c.layer.Digest)
	byDigest := map[string]string{c.base.Digest: basePath, c.layer.Digest: layerPath, c.overlay.Digest: overlayPath}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		c.mu.Lock()
		c.served[d]++
		n := c.served[d]
		c.mu.Unlock()
		if down != nil && down(d, n) {
			http.Error(w, "repository down", http.StatusServiceUnavailable)
			return
		}
		http.ServeFile(w, r, byDigest[d])
	}))
	t.Cleanup(hs.Close)
	for _, img := range []*manifestImage{&c.base, &c.layer, &c.overlay} {
		img.Location = hs.URL + "/files/" + img.Digest
	}
	c.m = localManager(t, nil, hs)
	c.m.cfg.Dir = filepath.Dir(c.m.cache.dir)
	c.m.log = slog.New(slog.NewTextHandler(c.logged, nil))
	return c
}

// gets is how many times digest was asked for.
func (c *layerChain) gets(digest string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.served[digest]
}

func (c *layerChain) manifest() *manifest {
	return &manifest{Images: []manifestImage{c.base, c.layer, c.overlay}}
}

// stage stages the chain for workspace key, as its deploy does.
func (c *layerChain) stage(key string) error {
	_, err := c.m.stageFiles(context.Background(), c.manifest(), &record{Key: key}, nil)
	return err
}

// deploy stages the chain for workspace key, which must succeed.
func (c *layerChain) deploy(t *testing.T, key string) {
	t.Helper()
	if err := c.stage(key); err != nil {
		t.Fatalf("deploy %s: %v", key, err)
	}
}

// stampValid reports whether the entry for digest is size bytes and its stamp still
// matches it, whatever it was checked by.
func (c *cache) stampValid(digest string, size int64) bool {
	_, by := c.verified(digest, size, "")
	return by != ""
}
