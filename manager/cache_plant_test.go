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
	"testing"
	"time"
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
