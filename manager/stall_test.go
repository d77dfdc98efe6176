package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// shortStalls makes the stall bounds test-sized for one test.
func shortStalls(t *testing.T, stall, answer time.Duration) {
	oldStall, oldAnswer := transferStall, answerWait
	transferStall, answerWait = stall, answer
	t.Cleanup(func() { transferStall, answerWait = oldStall, oldAnswer })
}

// TestTransferOutlastsTheStallBound: a transfer that keeps moving bytes takes as long
// as it takes (here three times the stall bound, where the client's overall timeout
// would have ended it), while one that stops moving them is given up after the stall
// bound, resumable, saying so. The pieces come 5 times as often as the bound, so a
// busy machine's scheduling delays do not read as a stall.
func TestTransferOutlastsTheStallBound(t *testing.T) {
	shortStalls(t, 500*time.Millisecond, time.Second)
	data, digest := testImage(64 << 10)
	var stallAfter atomic.Int64 // bytes after which the server goes silent (-1: never)
	stallAfter.Store(-1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		for off := 0; off < len(data); off += 4 << 10 {
			if n := stallAfter.Load(); n >= 0 && int64(off) >= n {
				<-r.Context().Done()
				return
			}
			w.Write(data[off : off+4<<10])
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond) // 16 pieces: 1.6 s in all
		}
	}))
	defer hs.Close()
	client := hs.Client()
	client.Timeout = 300 * time.Millisecond // the overall bound transfers do without
	c := &repoClient{http: client, streams: 1}
	img := &manifestImage{Role: "overlay", Digest: digest, Size: int64(len(data)), Location: hs.URL + "/overlay"}
	path := filepath.Join(t.TempDir(), "overlay")
	t0 := time.Now()
	if err := c.fetch(context.Background(), img, "", path, nil); err != nil {
		t.Fatalf("a slow, steady transfer: %v", err)
	}
	if d := time.Since(t0); d < 1500*time.Millisecond {
		t.Fatalf("the transfer took %v; the test needs it longer than the bounds", d)
	}
	sameFile(t, path, data)

	os.Remove(path)
	stallAfter.Store(16 << 10)
	t0 = time.Now()
	err := c.fetch(context.Background(), img, "", path, nil)
	if !errors.Is(err, errStalled) || !strings.Contains(err.Error(), "no bytes moved for 500ms") || !strings.Contains(err.Error(), "resumable") {
		t.Fatalf("a stalled transfer: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("the stall was noticed after %v", d)
	}
	if errdefs.Advice(err) != stallAdvice {
		t.Errorf("a stalled fetch says to do %q", errdefs.Advice(err))
	}
	t.Log(err)
	if fi, err := os.Stat(path + ".part"); err != nil || fi.Size() != 16<<10 {
		t.Fatalf("the .part to resume from: %v, %v", fi, err)
	}
}

// TestUploadStalls: an upload the Repository stops reading is given up after the stall
// bound; one it reads at once but answers only after longer than that (storing and
// syncing it) is awaited up to answerWait.
func TestUploadStalls(t *testing.T) {
	shortStalls(t, 150*time.Millisecond, 2*time.Second)
	file := filepath.Join(t.TempDir(), "overlay.qcow2")
	if err := os.WriteFile(file, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	var slowAnswer atomic.Bool
	// (A handler that stopped reading does not see its client go: it waits for this.)
	release := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !slowAnswer.Load() {
			io.CopyN(io.Discard, r.Body, 1<<20) // then reads no more
			<-release
			return
		}
		io.Copy(io.Discard, r.Body)
		time.Sleep(600 * time.Millisecond)
		fmt.Fprint(w, `{"digest":"sha256:ab","size":1}`)
	}))
	defer hs.Close()
	client := hs.Client()
	client.Timeout = 300 * time.Millisecond
	c := &repoClient{http: client}
	rec := &record{Key: "k", Token: "tok", WorkspaceAddress: hs.URL + "/wsrf/services/WorkspaceService"}
	t0 := time.Now()
	_, err := c.upload(context.Background(), rec, "overlay", file)
	if !errors.Is(err, errStalled) || strings.Count(err.Error(), "no bytes moved") != 1 || errdefs.Advice(err) != stallAdvice {
		t.Fatalf("an upload the server stopped reading: %v (advice %q)", err, errdefs.Advice(err))
	}
	t.Log(err)
	if d := time.Since(t0); d > 2*time.Second {
		t.Fatalf("the stall was noticed after %v", d)
	}
	close(release)
	slowAnswer.Store(true)
	if d, err := c.upload(context.Background(), rec, "overlay", file); err != nil || d != "sha256:ab" {
		t.Fatalf("an upload answered after 600 ms: %q, %v", d, err)
	}
}
