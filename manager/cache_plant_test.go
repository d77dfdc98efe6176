package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/qcow2"
)

// TestAnotherPieceListDoesNotReplaceTheImageADeployedWorkspaceUses: an entry staged
// and checked by one Repository's piece list, under a workspace deployed here, is D's
// bytes. A later manifest naming D with the piece list of other bytes must not put
// those bytes under D: the deployed workspace would boot on them, its stamp intact.
func TestAnotherPieceListDoesNotReplaceTheImageADeployedWorkspaceUses(t *testing.T) {
	good, _ := testImage(3<<20 + 7)
	altered := bytes.Clone(good)
	for i := range altered[:1<<20] {
		altered[i] ^= 0x5a
	}
	for name, evil := range map[string][]byte{
		"bytes of its size":     altered,
		"bytes of another size": append(bytes.Clone(good), blob(1<<20, 'x')...),
	} {
		t.Run(name, func(t *testing.T) { plantUnderDeployed(t, good, evil) })
	}
}

func plantUnderDeployed(t *testing.T, good, evil []byte) {
	sum := sha256.Sum256(good)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data := good
		if strings.HasPrefix(r.URL.Path, "/evil/") {
			data = evil
		}
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(hs.Close)
	m := localManager(t, nil, hs)
	m.repo.streams = 4

	// One Repository's workspace is deployed on D, staged with D's own pieces.
	first := &manifestImage{Role: "base", Digest: digest, Size: int64(len(good)),
		Location: hs.URL + "/good/" + digest, Chunks: listOf(t, good)}
	if _, _, err := m.stageShared(context.Background(), first, "", "", nil); err != nil {
		t.Fatal(err)
	}
	m.cache.unpin([]string{digest})
	rec := &record{Key: "ws-1", Phase: phaseDeployed, State: stateShutdown, Shared: []string{digest}}
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}

	// Another Repository's manifest names D with the piece list of other bytes.
	second := &manifestImage{Role: "base", Digest: digest, Size: int64(len(evil)),
		Location: hs.URL + "/evil/" + digest, Chunks: listOf(t, evil)}
	_, _, err := m.stageShared(context.Background(), second, "", "", nil)
	m.cache.unpin([]string{digest})
	t.Logf("staging D with another image's piece list: err=%v", err)

	got, rerr := os.ReadFile(m.cache.path(digest))
	if rerr != nil {
		t.Fatal(rerr)
	}
	sum = sha256.Sum256(got)
	if gotDigest := "sha256:" + hex.EncodeToString(sum[:]); gotDigest != digest {
		berr := m.bootable(context.Background(), rec)
		t.Fatalf("the cache entry for %s under deployed workspace ws-1 now has digest %s (bytes another manifest's piece list vouched for); Start's check before a boot says %v", digest[:19], gotDigest[:19], berr)
	}
}

// TestAnotherManifestDoesNotRepointACachedLayer: a cached layer stands on the cache's
// copy of the image its Repository's manifest put below it, and a workspace deployed
// here reads through it. Another manifest that names the same layer on another image
// must not re-point the shared entry: the deployed workspace's disk would then read
// that image's bytes wherever its own layers hold none.
func TestAnotherManifestDoesNotRepointACachedLayer(t *testing.T) {
	c := newLayerChain(t, nil)
	c.deploy(t, "ws-1")
	m := c.m
	if err := m.journal.put(&record{Key: "ws-1", Phase: phaseDeployed, State: stateShutdown, Shared: []string{c.base.Digest, c.layer.Digest}}); err != nil {
		t.Fatal(err)
	}
	otherPath := filepath.Join(t.TempDir(), "other.img")
	if err := os.WriteFile(otherPath, bytes.Repeat([]byte{0x22}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	other := fileImage(t, "base", otherPath, "raw", "")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, otherPath) }))
	t.Cleanup(hs.Close)
	other.Location = hs.URL + "/files/" + other.Digest
	layer := c.layer
	layer.Backing = other.Digest
	man := &manifest{Images: []manifestImage{other, layer, c.overlay}}
	_, err := m.stageFiles(context.Background(), man, &record{Key: "ws-2"}, nil)
	t.Logf("staging the layer on another image: err=%v", err)

	info, rerr := qcow2.ReadInfo(m.cache.path(c.layer.Digest))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if info.BackingFile != m.cache.path(c.base.Digest) {
		t.Fatalf("the cached layer under deployed workspace ws-1 now stands on %s, not on its base %s", info.BackingFile, m.cache.path(c.base.Digest))
	}
	if !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Errorf("the manifest naming the layer on another image: %v, want an ImageIntegrityFault", err)
	}
}

// TestAStandaloneImageIsNotTakenForALayer: a qcow2 base in the cache has no image
// below it. A manifest that names its digest as a layer must not give the shared
// entry a backing file: every workspace standing on that base would read another
// image's bytes wherever the base holds none.
func TestAStandaloneImageIsNotTakenForALayer(t *testing.T) {
	c := newLayerChain(t, nil)
	m := c.m
	dir := t.TempDir()
	qbase := filepath.Join(dir, "base.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", qbase, "1M").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	standalone := fileImage(t, "base", qbase, "qcow2", "")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, qbase) }))
	t.Cleanup(hs.Close)
	standalone.Location = hs.URL + "/files/" + standalone.Digest
	if _, _, err := m.stageShared(context.Background(), &standalone, "", "", nil); err != nil {
		t.Fatal(err)
	}
	m.cache.unpin([]string{standalone.Digest})

	asLayer := standalone
	asLayer.Role, asLayer.Backing = "layer", c.base.Digest
	overlay := c.overlay
	overlay.Backing = asLayer.Digest
	man := &manifest{Images: []manifestImage{c.base, asLayer, overlay}}
	_, err = m.stageFiles(context.Background(), man, &record{Key: "ws-2"}, nil)
	t.Logf("staging a standalone image as a layer: err=%v", err)

	info, rerr := qcow2.ReadInfo(m.cache.path(standalone.Digest))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if info.BackingFile != "" {
		t.Fatalf("the cached standalone image %s now stands on %s", standalone.Digest[:19], info.BackingFile)
	}
	if !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Errorf("the manifest naming a standalone image a layer: %v, want an ImageIntegrityFault", err)
	}
}
