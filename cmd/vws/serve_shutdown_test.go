package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freeAddr is a loopback address no one listens on (for a moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeStopsNoStoreUnderARunningRequest: a request still running when the
// shutdown's grace period ends (an image upload, a deploy) is cut short, and vws serve
// returns only once its handler has: the store is not closed under it, and the stop
// is not reported as a bare "context deadline exceeded".
func TestServeStopsNoStoreUnderARunningRequest(t *testing.T) {
	defer func(g time.Duration) { shutdownGrace = g }(shutdownGrace)
	shutdownGrace = 500 * time.Millisecond
	logFile, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer func(f *os.File) { os.Stderr = f }(os.Stderr)
	os.Stderr = logFile // runServe logs there

	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan cliRun, 1)
	go func() {
		done <- vwsRun(t, ctx, "serve", "--insecure", "--role", "factory,repository", "--listen", addr, "--data", t.TempDir())
	}()
	base := "http://" + addr
	waitHealthy(t, base)

	// An upload that trickles in for longer than the grace period.
	body, feed := io.Pipe()
	stopFeeding := make(chan struct{})
	go func() {
		defer feed.Close()
		for i := 0; i < 40; i++ {
			select {
			case <-stopFeeding:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := feed.Write([]byte(strings.Repeat("x", 512))); err != nil {
				return
			}
		}
	}()
	defer close(stopFeeding)
	type result struct {
		status int
		body   string
		err    error
		at     time.Time
	}
	answered := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, base+"/images?name=slow", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- result{err: err, at: time.Now()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- result{status: resp.StatusCode, body: string(b), at: time.Now()}
	}()
	time.Sleep(300 * time.Millisecond)
	cancel() // SIGTERM

	var r cliRun
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("vws serve did not stop")
	}
	returned := time.Now()
	if r.code != 0 {
		t.Errorf("vws serve stopped with exit %d: %s", r.code, r.stderr)
	}
	select {
	case a := <-answered:
		if a.err == nil && a.at.After(returned) {
			t.Errorf("the upload was answered (%d %s) after vws serve returned: its handler outlived the server", a.status, strings.TrimSpace(a.body))
		}
	case <-time.After(10 * time.Second):
		t.Error("the upload was not answered nor cut")
	}
	time.Sleep(200 * time.Millisecond) // what a handler still running would log
	logged, _ := os.ReadFile(logFile.Name())
	if strings.Contains(string(logged), "database is closed") {
		t.Errorf("a request wrote after the database closed:\n%s", logged)
	}
}

// waitHealthy waits up to 10 s for the vws server at base to answer /healthz.
func waitHealthy(t *testing.T, base string) {
	t.Helper()
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if i == 200 {
			t.Fatalf("the server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
