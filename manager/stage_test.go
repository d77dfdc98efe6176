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
	// The Repository's chain: base (raw) ← layer ← overlay, each backed by a path of
	// the Repository's own.
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
	base := fileImage(t, "base", basePath, "raw", "")
	layer := fileImage(t, "layer", layerPath, "qcow2", base.Digest)
	overlay := fileImage(t, "overlay", overlayPath, "qcow2", layer.Digest)
	byDigest := map[string]string{base.Digest: basePath, layer.Digest: layerPath, overlay.Digest: overlayPath}
	var mu sync.Mutex
	gets := map[string]int{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		mu.Lock()
		gets[d]++
		mu.Unlock()
		http.ServeFile(w, r, byDigest[d])
	}))
	t.Cleanup(hs.Close)
	for _, img := range []*manifestImage{&base, &layer, &overlay} {
		img.Location = hs.URL + "/files/" + img.Digest
	}

	var logged bytes.Buffer
	m := localManager(t, nil, hs)
	m.cfg.Dir = filepath.Dir(m.cache.dir)
	m.log = slog.New(slog.NewTextHandler(&logged, nil))
	deploy := func(key string) {
		t.Helper()
		man := &manifest{Images: []manifestImage{base, layer, overlay}}
		if _, err := m.stageFiles(context.Background(), man, &record{Key: key}, nil); err != nil {
			t.Fatalf("deploy %s: %v", key, err)
		}
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
	if gets[layer.Digest] != 1 || gets[base.Digest] != 1 {
		t.Errorf("three deploys of one clone fetched the layer %d times and the base %d times, want once each", gets[layer.Digest], gets[base.Digest])
	}
	if fi, err := os.Stat(m.cache.path(layer.Digest)); err != nil || !fi.ModTime().Equal(later) {
		t.Errorf("the cached layer was rewritten by a later deploy (%v)", err)
	}
	if !m.cache.stampValid(layer.Digest, layer.Size) {
		t.Error("the cached layer no longer matches its stamp")
	}
	if strings.Contains(logged.String(), "no longer matches") {
		t.Errorf("a deploy reported the cache damaged:\n%s", logged.String())
	}
}

// stampValid reports whether the entry for digest is size bytes and its stamp still
// matches it, whatever it was checked by.
func (c *cache) stampValid(digest string, size int64) bool {
	_, by := c.verified(digest, size, "")
	return by != ""
}
