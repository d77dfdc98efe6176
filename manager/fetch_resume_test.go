package manager

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
)

// TestOneStreamResumeChecksContentRange: the one-stream (resumed) transfer, like the
// parallel one (TestFetchRefusesAWrongRange), refuses a 206 for other bytes than it
// asked for: the server answers "bytes=N-" with bytes 0-…, and the answer is refused
// as resumable, its good .part kept — not written in place, then blamed on the
// repository's copy with the .part discarded.
func TestOneStreamResumeChecksContentRange(t *testing.T) {
	// Random bytes: testImage repeats every MiB, so its pieces are all alike.
	data := make([]byte, 5<<20+1)
	rand.Read(data)
	sum := sha256.Sum256(data)
	srv := &rangeImages{data: data}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	img := &manifestImage{Role: "base", Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(data)), Location: hs.URL + "/images/x", Chunks: listOf(t, data)}
	path := filepath.Join(t.TempDir(), "base")
	// An earlier attempt left the first two pieces, both good.
	if err := os.WriteFile(path+".part", srv.data[:2*chunkhash.MinChunkBytes], 0o644); err != nil {
		t.Fatal(err)
	}
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Set("Range", "bytes=0-") // a proxy or server answering another range
		return false
	})
	err := (&repoClient{http: hs.Client(), streams: 1}).fetch(context.Background(), img, "", path, nil)
	if err == nil {
		t.Fatal("staged from a wrong range")
	}
	if errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Errorf("a 206 with Content-Range other than asked for was written in place and blamed on the repository's copy: %v", err)
	}
	if fi, serr := os.Stat(path + ".part"); serr != nil || fi.Size() < 2*chunkhash.MinChunkBytes {
		t.Errorf("the two good pieces of the .part were not kept to resume: %v %v", fi, serr)
	}
}

// TestWholeHashResumeWithADamagedPrefixStartsOver: an image without a piece list
// (layer, overlay, memory) resumes from whatever its .part holds, unchecked; when the
// whole then does not match its digest, the prefix may be what is damaged, so the
// image is fetched once more from its start — and staged, the repository serving
// the right bytes — rather than the deploy failing on the repository's copy.
func TestWholeHashResumeWithADamagedPrefixStartsOver(t *testing.T) {
	srv, hs, img := rangeImage(t, 3<<20+5)
	img.Chunks = chunkhash.List{} // no piece list: one GET hashed whole
	img.Role = "layer"
	path := filepath.Join(t.TempDir(), "layer")
	bad := append([]byte(nil), srv.data[:1<<20]...)
	bad[4242] ^= 0xff // a damaged byte in what an earlier attempt left
	if err := os.WriteFile(path+".part", bad, 0o644); err != nil {
		t.Fatal(err)
	}
	err := (&repoClient{http: hs.Client(), streams: 1}).fetch(context.Background(), img, "", path, nil)
	if err != nil {
		t.Fatalf("the repository serves the right bytes, yet the resumed fetch fails: %v", err)
	}
	sameFile(t, path, srv.data)
}
