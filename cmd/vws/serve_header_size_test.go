package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesOversizedRequestHeaders: a request's headers are held in memory
// before any handler, outside the SOAP parse budget, per connection: net/http's
// default of 1 MiB each would let a few hundred connections hold hundreds of MiB. No
// client of these services sends more than a few KiB of headers (credentials travel
// in TLS and in the SOAP envelope), so 64 KiB is refused with 431.
func TestServeRefusesOversizedRequestHeaders(t *testing.T) {
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
	defer func() { cancel(); <-done }()
	base := "http://" + addr
	waitHealthy(t, base)
	for _, c := range []struct {
		size int
		want int
	}{{8 << 10, http.StatusOK}, {200 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, err := http.NewRequest(http.MethodGet, base+"/healthz", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Padding", strings.Repeat("a", c.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("a request with %d KiB of headers: %v", c.size>>10, err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("a request with %d KiB of headers: HTTP %d, want %d", c.size>>10, resp.StatusCode, c.want)
		}
	}
}
