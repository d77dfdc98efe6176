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
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
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
	c := &repoClient{http: hs.Client(), streams: 1} // one GET, resumed from a prefix
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
	c := &repoClient{http: hs.Client(), streams: 1}
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
	m := &Manager{cache: &cache{dir: t.TempDir()}, repo: &repoClient{http: hs.Client()}, metrics: newMetrics(nil)}
	img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/images/" + digest}
	for i, wantHit := range []bool{false, true, true} {
		path, hit, err := m.stageShared(context.Background(), img, "", "", nil)
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
	if _, _, err := m.stageShared(context.Background(), &bad, "", "", nil); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("path-like digest: %v", err)
	}
}

// rangeImages serves one image with Range support and records every request: its
// Range header and lock token. hook, when set, may take over a request (and return
// true).
type rangeImages struct {
	data []byte
	hook func(w http.ResponseWriter, r *http.Request) bool

	mu     sync.Mutex
	ranges []string
	tokens []string
}

func (s *rangeImages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.tokens = append(s.tokens, r.Header.Get(lockHeader))
	hook := s.hook
	s.mu.Unlock()
	if hook != nil && hook(w, r) {
		return
	}
	http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(s.data))
}

// setHook replaces hook; requests of an earlier fetch may still be being served.
func (s *rangeImages) setHook(hook func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// served returns the requests recorded since the last call, sorted, and forgets them.
func (s *rangeImages) served() (ranges, tokens []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ranges, tokens = s.ranges, s.tokens
	s.ranges, s.tokens = nil, nil
	slices.Sort(ranges)
	return ranges, tokens
}

// pieceRanges is the Range header of each listed piece of l, sorted.
func pieceRanges(l chunkhash.List, pieces ...int) []string {
	var out []string
	for _, i := range pieces {
		off := int64(i) * l.ChunkBytes
		out = append(out, fmt.Sprintf("bytes=%d-%d", off, off+min(l.ChunkBytes, l.Size-off)-1))
	}
	slices.Sort(out)
	return out
}

// pieceOf says which piece of l a Range header asks for (-1: not one piece).
func pieceOf(l chunkhash.List, rng string) int {
	for i := range l.Digests {
		if pieceRanges(l, i)[0] == rng {
			return i
		}
	}
	return -1
}

func rangeImage(t *testing.T, size int) (*rangeImages, *httptest.Server, *manifestImage) {
	t.Helper()
	data, digest := testImage(size)
	srv := &rangeImages{data: data}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	img := &manifestImage{Role: "base", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/images/" + digest, Chunks: listOf(t, data)}
	return srv, hs, img
}

func sameFile(t *testing.T, path string, data []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the staged file differs from the image (%v)", err)
	}
	if _, err := os.Stat(path + ".part"); !os.IsNotExist(err) {
		t.Fatalf(".part left behind: %v", err)
	}
}

// TestFetchParallel: an image whose manifest lists its pieces comes in range requests,
// one per piece, several at once, each carrying the lock token; the file is the image,
// progress (told from every stream) climbs to the total, and the metrics count the
// image once.
func TestFetchParallel(t *testing.T) {
	srv, hs, img := rangeImage(t, 9<<20+333) // ten 1 MiB pieces, the last one short
	m := &Manager{repo: &repoClient{http: hs.Client(), streams: 4}, metrics: newMetrics(nil)}
	path := filepath.Join(t.TempDir(), "base")
	var mu sync.Mutex
	var last, calls int64
	progress := func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if done < last || total != img.Size {
			t.Errorf("progress went from %d to %d of %d", last, done, total)
		}
		last = done
		calls++
	}
	if err := m.fetch(context.Background(), img, "tok", path, progress, true); err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, srv.data)
	ranges, tokens := srv.served()
	if want := pieceRanges(img.Chunks, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9); !slices.Equal(ranges, want) {
		t.Fatalf("served %q, want each piece once: %q", ranges, want)
	}
	for _, tok := range tokens {
		if tok != "tok" {
			t.Fatalf("a range request without the lock token: %q", tokens)
		}
	}
	if last != img.Size || calls < 10 {
		t.Errorf("progress ended at %d of %d after %d calls", last, img.Size, calls)
	}
	if got := counterValue(m.metrics.stagedBytes.WithLabelValues(sourceRepository)); got != float64(img.Size) {
		t.Errorf("vws_manager_staged_bytes_total{source=repository} = %v, want %d", got, img.Size)
	}
}

// TestFetchParallelRefusesABadPiece: a piece that differs from the list stops the
// transfer at once (the streams still running are cancelled, the pieces not begun
// never asked for), is named in the ImageIntegrityFault, and nothing is left to be
// used or resumed.
func TestFetchParallelRefusesABadPiece(t *testing.T) {
	srv, hs, img := rangeImage(t, 12<<20)
	bad := bytes.Clone(srv.data)
	bad[2<<20+77] ^= 1 // piece 2
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if pieceOf(img.Chunks, r.Header.Get("Range")) == 2 {
			http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(bad))
			return true
		}
		// Every other piece stalls half-sent until its request is cancelled.
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %s/%d", strings.TrimPrefix(r.Header.Get("Range"), "bytes="), len(srv.data)))
		w.Header().Set("Content-Length", fmt.Sprint(chunkhash.MinChunkBytes))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(make([]byte, chunkhash.MinChunkBytes/2))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return true
	})
	path := filepath.Join(t.TempDir(), "base")
	t0 := time.Now()
	err := (&repoClient{http: hs.Client(), streams: 4}).fetch(context.Background(), img, "", path, nil)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "(chunk 2)") ||
		!strings.Contains(errdefs.Advice(err), "the repository's copy is damaged or was substituted") {
		t.Fatalf("a bad piece: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("the bad piece was refused after %v: the other streams were not cancelled", d)
	}
	// (A request cancelled before it was sent never reaches the server.)
	ranges, _ := srv.served()
	for _, rng := range ranges {
		if pieceOf(img.Chunks, rng) > 3 {
			t.Errorf("served %q: want no more than the first four pieces asked for (one per stream)", ranges)
		}
	}
	for _, p := range []string{path, path + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed verification", filepath.Base(p))
		}
	}
}

// TestFetchResumesPieceWise: a transfer cut off with holes (pieces 0 and 2 done, 1 cut
// midway, 3 not begun) resumes by asking for pieces 1 and 3 only; a piece present in
// full but wrong is asked for again, the matching ones are not.
func TestFetchResumesPieceWise(t *testing.T) {
	srv, hs, img := rangeImage(t, 3<<20+4242) // four pieces
	c := &repoClient{http: hs.Client(), streams: 2}
	path := filepath.Join(t.TempDir(), "base")
	// Two streams: one takes piece 0, then 2, then 3; the other holds piece 1 half-sent
	// until piece 3 is asked for (0 and 2 are written and checked by then), then drops.
	cut := make(chan struct{})
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		switch pieceOf(img.Chunks, r.Header.Get("Range")) {
		case 1:
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", 1<<20, 2<<20-1, len(srv.data)))
			w.Header().Set("Content-Length", fmt.Sprint(1<<20))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(srv.data[1<<20 : 1<<20+300<<10])
			w.(http.Flusher).Flush()
			<-cut
			panic(http.ErrAbortHandler)
		case 3:
			close(cut)
			<-r.Context().Done()
			return true
		}
		return false
	})
	if err := c.fetch(context.Background(), img, "tok", path, nil); err == nil || errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("a cut-off transfer: %v (want a resumable error)", err)
	}
	if ranges, _ := srv.served(); !slices.Equal(ranges, pieceRanges(img.Chunks, 0, 1, 2, 3)) {
		t.Fatalf("first attempt served %q", ranges)
	}
	srv.setHook(nil)
	var first, last int64 = -1, 0
	err := c.fetch(context.Background(), img, "tok", path, func(done, _ int64) {
		if first < 0 {
			first = done
		}
		last = done
	})
	if err != nil {
		t.Fatal(err)
	}
	if ranges, _ := srv.served(); !slices.Equal(ranges, pieceRanges(img.Chunks, 1, 3)) {
		t.Fatalf("the resumed transfer asked for %q, want pieces 1 and 3 only: %q", ranges, pieceRanges(img.Chunks, 1, 3))
	}
	if first != 2<<20 || last != img.Size {
		t.Errorf("progress went from %d to %d, want from the two kept pieces (%d) to %d", first, last, 2<<20, img.Size)
	}
	sameFile(t, path, srv.data)

	// A whole .part with a wrong byte in piece 1 (an earlier run of another vws, a
	// disk error): piece 1 alone is fetched again.
	part := bytes.Clone(srv.data)
	part[1<<20+5] ^= 0x80
	os.Remove(path)
	if err := os.WriteFile(path+".part", part, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.fetch(context.Background(), img, "tok", path, nil); err != nil {
		t.Fatal(err)
	}
	if ranges, _ := srv.served(); !slices.Equal(ranges, pieceRanges(img.Chunks, 1)) {
		t.Fatalf("asked for %q, want piece 1 only", ranges)
	}
	sameFile(t, path, srv.data)
}

// TestFetchFallsBackToOneStream: a server that answers a range request with the whole
// image (200) gets one GET instead, and the image is staged all the same.
func TestFetchFallsBackToOneStream(t *testing.T) {
	srv, hs, img := rangeImage(t, 5<<20+1)
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Length", fmt.Sprint(len(srv.data)))
		w.Write(srv.data)
		return true
	})
	path := filepath.Join(t.TempDir(), "base")
	var last int64
	if err := (&repoClient{http: hs.Client(), streams: 4}).fetch(context.Background(), img, "tok", path, func(done, _ int64) { last = done }); err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, srv.data)
	// (Range requests the client cancelled may reach the handler after the GET.)
	ranges, _ := srv.served()
	if len(ranges) < 2 || ranges[0] != "" || ranges[1] == "" {
		t.Fatalf("requests %q: want range requests and one GET of the whole", ranges)
	}
	if last != img.Size {
		t.Errorf("progress ended at %d of %d", last, img.Size)
	}
}

// TestFetchRefusesAWrongRange: a 206 for other bytes than those asked for is an error
// (kept to resume), never written in the place of the piece; one of a file longer
// than the manifest's image is an ImageIntegrityFault.
func TestFetchRefusesAWrongRange(t *testing.T) {
	srv, hs, img := rangeImage(t, 2<<20)
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Set("Range", "bytes=0-1023")
		return false
	})
	path := filepath.Join(t.TempDir(), "base")
	err := (&repoClient{http: hs.Client(), streams: 4}).fetch(context.Background(), img, "", path, nil)
	if err == nil || errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "Content-Range") {
		t.Fatalf("a wrong range: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("staged from wrong ranges")
	}

	// The right bytes of a longer file: the server's copy is not the manifest's image.
	longer := &rangeImages{data: append(bytes.Clone(srv.data), "and more"...)}
	hs2 := httptest.NewServer(longer)
	defer hs2.Close()
	img2 := *img
	img2.Location = hs2.URL + "/images/" + img.Digest
	err = (&repoClient{http: hs2.Client(), streams: 4}).fetch(context.Background(), &img2, "", path, nil)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), fmt.Sprintf("has %d bytes", len(longer.data))) {
		t.Fatalf("a longer file: %v", err)
	}
	for _, p := range []string{path, path + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a refused image", filepath.Base(p))
		}
	}
}

// BenchmarkFetch stages a 256 MiB image in 32 MiB pieces from a file served over
// loopback HTTP (sendfile, as the Repository serves its pool), with 1 to 8 streams,
// fsync included; "fsync-later" is the cache's staging, which leaves the fsync to the
// background (cachesync.go), beside cp of the same file.
func BenchmarkFetch(b *testing.B) {
	const size = 256 << 20
	dir := b.TempDir()
	data, digest := testImage(size)
	src := filepath.Join(dir, "image")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	w := chunkhash.NewWriter(chunkhash.DefaultChunkBytes)
	w.Write(data)
	data = nil
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, src)
	}))
	defer hs.Close()
	img := &manifestImage{Role: "base", Digest: digest, Size: size, Location: hs.URL + "/image", Chunks: w.List()}
	run := func(name string, streams int, durable bool) {
		b.Run(name, func(b *testing.B) {
			c := &repoClient{http: hs.Client(), streams: streams}
			b.SetBytes(size)
			path := filepath.Join(dir, "staged")
			for b.Loop() {
				if err := c.fetchTo(context.Background(), img, "", path, nil, durable); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				syncAndRemove(b, path) // neither the blocks' freeing nor their writeback is the next round's
				b.StartTimer()
			}
		})
	}
	for _, streams := range []int{1, 2, 4, 8} {
		run(fmt.Sprintf("streams=%d", streams), streams, true)
	}
	run("streams=4/fsync-later", 4, false)
	b.Run("cp", func(b *testing.B) {
		b.SetBytes(size)
		path := filepath.Join(dir, "copied")
		for b.Loop() {
			if out, err := exec.Command("cp", src, path).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v: %s", err, out)
			}
			b.StopTimer()
			syncAndRemove(b, path)
			b.StartTimer()
		}
	})
}

func syncAndRemove(b *testing.B, path string) {
	if err := fsutil.SyncFile(path); err != nil {
		b.Fatal(err)
	}
	os.Remove(path)
}

// TestFetchParallelCancelled: a deploy cancelled before or during the transfer never
// leaves a staged file, however far the streams got.
func TestFetchParallelCancelled(t *testing.T) {
	srv, hs, img := rangeImage(t, 4<<20)
	c := &repoClient{http: hs.Client(), streams: 2}
	path := filepath.Join(t.TempDir(), "base")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.fetch(ctx, img, "", path, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before it began: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	err := c.fetch(ctx, img, "", path, func(done, _ int64) {
		if done >= 1<<20 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled midway: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("a cancelled transfer was staged")
	}
	if err := c.fetch(context.Background(), img, "", path, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, srv.data)
}

// TestSpansOf: missing pieces go in runs of consecutive ones, no longer than a share
// that keeps an image at about streams×spansPerStream requests.
func TestSpansOf(t *testing.T) {
	seq := func(from, to int) []int {
		var out []int
		for i := from; i < to; i++ {
			out = append(out, i)
		}
		return out
	}
	for _, tc := range []struct {
		missing []int
		streams int
		want    []span
	}{
		{seq(0, 4), 4, []span{{0, 1}, {1, 1}, {2, 1}, {3, 1}}},
		{seq(0, 16), 4, func() (s []span) {
			for i := range 16 {
				s = append(s, span{i, 1})
			}
			return
		}()},
		{seq(0, 40), 2, []span{{0, 5}, {5, 5}, {10, 5}, {15, 5}, {20, 5}, {25, 5}, {30, 5}, {35, 5}}},
		{[]int{1, 3}, 2, []span{{1, 1}, {3, 1}}},
		{append(seq(0, 10), seq(20, 30)...), 1, []span{{0, 5}, {5, 5}, {20, 5}, {25, 5}}},
		{[]int{0, 1, 2, 7}, 1, []span{{0, 1}, {1, 1}, {2, 1}, {7, 1}}},
		{seq(0, 3200), 4, func() (s []span) {
			for i := 0; i < 3200; i += 200 {
				s = append(s, span{i, 200})
			}
			return
		}()},
	} {
		if got := spansOf(tc.missing, tc.streams); !slices.Equal(got, tc.want) {
			t.Errorf("spansOf(%d missing, %d streams) = %v, want %v", len(tc.missing), tc.streams, got, tc.want)
		}
	}
}

// TestFetchLargeImageInRuns: an image of many pieces comes in runs of pieces, one
// range request each (a request is an audit record at the Repository), every piece
// still checked on its own: a bad byte is refused naming its piece, and a resumed
// transfer asks only for the runs of pieces it lacks.
func TestFetchLargeImageInRuns(t *testing.T) {
	srv, hs, img := rangeImage(t, 40<<20) // forty 1 MiB pieces
	c := &repoClient{http: hs.Client(), streams: 2}
	path := filepath.Join(t.TempDir(), "base")
	if err := c.fetch(context.Background(), img, "tok", path, nil); err != nil {
		t.Fatal(err)
	}
	sameFile(t, path, srv.data)
	runs := func(firsts ...int) []string {
		var out []string
		for _, i := range firsts {
			out = append(out, fmt.Sprintf("bytes=%d-%d", i<<20, (i+5)<<20-1))
		}
		slices.Sort(out)
		return out
	}
	if ranges, _ := srv.served(); !slices.Equal(ranges, runs(0, 5, 10, 15, 20, 25, 30, 35)) {
		t.Fatalf("served %q, want eight runs of five pieces", ranges)
	}

	bad := bytes.Clone(srv.data)
	bad[13<<20+99] ^= 1
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.ServeContent(w, r, "image", time.Time{}, bytes.NewReader(bad))
		return true
	})
	os.Remove(path)
	err := c.fetch(context.Background(), img, "", path, nil)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "(chunk 13)") {
		t.Fatalf("a bad byte in piece 13: %v", err)
	}
	for _, p := range []string{path, path + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed verification", filepath.Base(p))
		}
	}
	srv.setHook(nil)
	srv.served()

	// A .part holding all but pieces 10–19: those ten alone are asked for, in runs of
	// two (ten pieces for two streams, four runs each at most).
	part := bytes.Clone(srv.data)
	clear(part[10<<20 : 20<<20])
	if err := os.WriteFile(path+".part", part, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.fetch(context.Background(), img, "", path, nil); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 10; i < 20; i += 2 {
		want = append(want, fmt.Sprintf("bytes=%d-%d", i<<20, (i+2)<<20-1))
	}
	slices.Sort(want)
	if ranges, _ := srv.served(); !slices.Equal(ranges, want) {
		t.Fatalf("the resumed transfer asked for %q, want %q", ranges, want)
	}
	sameFile(t, path, srv.data)
}

// TestFetchOfAnImageGoneIsResourceUnknown: a 404 from the Repository (the workspace
// destroyed while being deployed) tells the caller the resource is gone, on either
// path (one GET, or pieces), rather than that the manager failed.
func TestFetchOfAnImageGoneIsResourceUnknown(t *testing.T) {
	srv, hs, img := rangeImage(t, 2<<20)
	srv.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "no workspace ws-1 (destroyed)", http.StatusNotFound)
		return true
	})
	for _, streams := range []int{1, 4} {
		path := filepath.Join(t.TempDir(), "base")
		err := (&repoClient{http: hs.Client(), streams: streams}).fetch(context.Background(), img, "", path, nil)
		if !errors.Is(err, errdefs.ErrResourceUnknown) || !strings.Contains(err.Error(), "destroyed") || !strings.Contains(errdefs.Advice(err), "nothing was deployed") {
			t.Errorf("%d streams: %v", streams, err)
		}
	}
}
