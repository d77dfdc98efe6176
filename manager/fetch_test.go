package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
)

// flakyImages serves one image with Range support, cutting the first response off
// after cut bytes, and records the Range header of every request.
type flakyImages struct {
	data   []byte
	cut    int
	mu     sync.Mutex
	ranges []string
	token  string
}

func (s *flakyImages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	first := len(s.ranges) == 0
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.token = r.Header.Get(lockHeader)
	s.mu.Unlock()
	if first {
		// Promise everything, send part, and drop the connection.
		w.Header().Set("Content-Length", fmt.Sprint(len(s.data)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.data[:s.cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(s.data))
}

// listOf is the chunk list of data in 1 MiB pieces.
func listOf(t *testing.T, data []byte) chunkhash.List {
	t.Helper()
	w := chunkhash.NewWriter(chunkhash.MinChunkBytes)
	w.Write(data)
	return w.List()
}

func testImage(size int) ([]byte, string) {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*31 + i/4096)
	}
	sum := sha256.Sum256(data)
	return data, "sha256:" + hex.EncodeToString(sum[:])
}

// TestFetchResumes: a transfer cut off midway leaves a .part file; the next attempt
// asks only for the rest (Range), and the whole is verified against the manifest — by
// its digest, or piece by piece when the manifest lists the pieces (then only whole,
// matching pieces are kept).
func TestFetchResumes(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunk list %v", chunked), func(t *testing.T) { testFetchResumes(t, chunked) })
	}
}

func testFetchResumes(t *testing.T, chunked bool) {
	data, digest := testImage(5<<20 + 333)
	srv := &flakyImages{data: data, cut: 3<<20 + 1000}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c := &repoClient{http: hs.Client()}
	img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/images/" + digest}
	if chunked {
		img.Chunks = listOf(t, data)
	}
	path := filepath.Join(t.TempDir(), "base")

	if err := c.fetch(context.Background(), img, "tok", path, nil); err == nil {
		t.Fatal("a cut-off transfer was taken for a complete one")
	}
	fi, err := os.Stat(path + ".part")
	if err != nil || fi.Size() == 0 || fi.Size() > int64(srv.cut) {
		t.Fatalf("after the cut: .part %v, %v (want part of the %d bytes sent)", fi, err, srv.cut)
	}
	kept := fi.Size()
	if chunked {
		kept = kept / chunkhash.MinChunkBytes * chunkhash.MinChunkBytes
	}
	var progressed int64
	if err := c.fetch(context.Background(), img, "tok", path, func(done, total int64) { progressed = done }); err != nil {
		t.Fatal(err)
	}
	if got := srv.ranges[1]; got != fmt.Sprintf("bytes=%d-", kept) {
		t.Fatalf("the second attempt asked for %q, want the rest after %d bytes", got, kept)
	}
	if progressed != int64(len(data)) {
		t.Errorf("progress ended at %d of %d", progressed, len(data))
	}
	if srv.token != "tok" {
		t.Errorf("the lock token was not sent: %q", srv.token)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, data) {
		t.Fatal("the staged file differs from the image")
	}
	if _, err := os.Stat(path + ".part"); !os.IsNotExist(err) {
		t.Fatalf(".part left behind: %v", err)
	}
}

// TestFetchRefusesAlteredBytes: bytes that do not hash to the manifest's digest (or
// its chunk list) are an ImageIntegrityFault, and nothing is left to be used or
// resumed.
func TestFetchRefusesAlteredBytes(t *testing.T) {
	data, digest := testImage(4<<20 + 7)
	altered := bytes.Clone(data)
	altered[1<<20+4242] ^= 1
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(altered)))
		for off := 0; off < len(altered); off += 64 << 10 {
			if _, err := w.Write(altered[off:min(off+64<<10, len(altered))]); err != nil {
				return
			}
		}
	}))
	defer hs.Close()
	c := &repoClient{http: hs.Client()}
	for _, chunked := range []bool{false, true} {
		img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/images/x"}
		want := digest
		if chunked {
			img.Chunks = listOf(t, data)
			want = "chunk 1"
		}
		path := filepath.Join(t.TempDir(), "base")
		err := c.fetch(context.Background(), img, "", path, nil)
		if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), want) {
			t.Fatalf("chunk list %v: altered bytes: %v", chunked, err)
		}
		for _, p := range []string{path, path + ".part"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("chunk list %v: %s exists after a failed verification", chunked, filepath.Base(p))
			}
		}
	}
}

// TestStageSharedUsesTheCache: a base image already on the host is not transferred
// again, for this workspace or the next.
func TestStageSharedUsesTheCache(t *testing.T) {
	data, digest := testImage(2<<20 + 1)
	var requests int
	var mu sync.Mutex
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(data))
	}))
	defer hs.Close()
	m := &Manager{cache: &cache{dir: t.TempDir(), inflight: map[string]*sync.Mutex{}}, repo: &repoClient{http: hs.Client()}, metrics: newMetrics(nil)}
	img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/images/" + digest}
	for i, wantHit := range []bool{false, true, true} {
		path, hit, err := m.stageShared(context.Background(), img, "", nil)
		if err != nil || hit != wantHit || path != m.cache.path(digest) {
			t.Fatalf("stage %d: %s, hit %v, %v (want hit %v)", i, path, hit, err, wantHit)
		}
	}
	if requests != 1 {
		t.Fatalf("%d transfers for one image", requests)
	}
	if list := m.cache.list(); len(list) != 1 || list[0].Digest != digest || list[0].Size != int64(len(data)) {
		t.Fatalf("cache lists %+v", list)
	}
	// A manifest naming something that is not a digest never reaches the file system.
	bad := *img
	bad.Digest = "sha256:../../etc/passwd"
	if _, _, err := m.stageShared(context.Background(), &bad, "", nil); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("path-like digest: %v", err)
	}
}
