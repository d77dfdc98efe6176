package manager

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vws-grid/vws/internal/qcow2"
)

// TestAnUnstampedLayerIsNotTakenForDamaged: a cached layer is re-pointed at the
// cache's base before it is stamped, so its bytes differ from its digest by design. A
// manager that stops between the re-point and the stamp (or a cache whose stamps no
// longer match its files' inodes, e.g. DATA copied to a new disk) must not take the
// intact layer for a damaged one: no "no longer matches its digest" warning to the
// site admin, and no second transfer of it.
func TestAnUnstampedLayerIsNotTakenForDamaged(t *testing.T) {
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
	}
	deploy("ws-1")
	// The stamps are gone (a stop right after the re-point, before the stamp).
	os.Remove(m.cache.path(layer.Digest) + stampSuffix)
	os.Remove(m.cache.path(base.Digest) + stampSuffix)
	deploy("ws-2")
	if strings.Contains(logged.String(), "no longer matches") {
		t.Errorf("an intact cached layer was reported damaged to the site admin:\n%s", logged.String())
	}
	if gets[layer.Digest] != 1 || gets[base.Digest] != 1 {
		t.Errorf("the layer was transferred %d times, the base %d times; want once each", gets[layer.Digest], gets[base.Digest])
	}
}

// TestADeployedWorkspacesLayerSurvivesAFailedDeploy: the same unstamped cached
// layer, while a deployed workspace's overlay stands on it, and the Repository
// unreachable for the next deploys: the intact layer is used as it is, and a damaged
// one is not removed before a checked copy replaces it, so the deployed workspace's
// backing chain stays whole.
func TestADeployedWorkspacesLayerSurvivesAFailedDeploy(t *testing.T) {
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
		n := gets[d]
		mu.Unlock()
		if d == layer.Digest && n > 1 {
			http.Error(w, "repository down", http.StatusServiceUnavailable)
			return
		}
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
	}
	deploy("ws-1")
	// ws-1 is deployed: its record lists the cache entries it stands on.
	if err := m.journal.put(&record{Key: "ws-1", Phase: phaseDeployed, State: stateShutdown, Shared: []string{base.Digest, layer.Digest}}); err != nil {
		t.Fatal(err)
	}
	// The stamps are gone (a stop right after the re-point, before the stamp).
	os.Remove(m.cache.path(layer.Digest) + stampSuffix)
	os.Remove(m.cache.path(base.Digest) + stampSuffix)
	man := &manifest{Images: []manifestImage{base, layer, overlay}}
	if _, err := m.stageFiles(context.Background(), man, &record{Key: "ws-2"}, nil); err != nil {
		t.Errorf("deploy ws-2 with the repository down, every image intact in the cache: %v", err)
	}
	ws1 := filepath.Join(m.workspaceDir("ws-1"), "overlay.qcow2")
	info, err := qcow2.ReadInfo(ws1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(info.BackingFile); err != nil {
		t.Fatalf("deployed workspace ws-1's overlay stands on %s, which a failed deploy of another workspace removed: %v", info.BackingFile, err)
	}
	// Damaged for real (a byte past the header flipped): the deploy that finds it
	// fails with the Repository down, and still removes nothing ws-1 stands on.
	cached := m.cache.path(layer.Digest)
	f, err := os.OpenFile(cached, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if _, err := f.WriteAt([]byte{0xff}, fi.Size()-1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.Remove(cached + stampSuffix)
	if _, err := m.stageFiles(context.Background(), man, &record{Key: "ws-3"}, nil); err == nil {
		t.Fatal("a damaged cached layer was staged with the repository down")
	}
	if _, err := os.Stat(info.BackingFile); err != nil {
		t.Fatalf("a failed deploy removed %s, which deployed workspace ws-1 stands on: %v", info.BackingFile, err)
	}
}
