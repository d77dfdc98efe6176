package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestOversizeAnswerIsRefusedCheaply: a server's components call each other with a
// Client of the default bound (a Manager its Repositories), so a misbehaving or
// compromised peer answering without end, or with a huge body of empty elements (a
// parsed one keeps ~30 bytes of tree per byte), must cost the caller no more than a
// bound fitting vws's largest legitimate answers: the call fails soon, naming the
// peer and the bound, having read little.
func TestOversizeAnswerIsRefusedCheaply(t *testing.T) {
	const head = `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x>`
	chunk := []byte(strings.Repeat("<a/>", 1<<14))
	for _, tc := range []struct {
		name     string
		declared bool // a Content-Length header announces the huge length
		size     int  // the envelope is complete after this many bytes of elements
	}{{"endless", false, 1 << 30}, {"endless, declared", true, 1 << 30}, {"complete, 24 MiB", false, 24 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/xml")
				if tc.declared {
					w.Header().Set("Content-Length", strconv.Itoa(1<<30))
				}
				if _, err := w.Write([]byte(head)); err != nil {
					return
				}
				for sent := 0; sent < tc.size; sent += len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
				_, _ = w.Write([]byte(`</x></s:Body></s:Envelope>`))
			}))
			defer peer.Close()
			c := &client.Client{HTTP: peer.Client()} // as manager.New builds its Repository client
			addr := peer.URL + "/wsrf/services/WorkspaceService"

			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := c.Call(context.Background(), &wsa.EPR{Version: wsa.V200508, Address: addr}, "urn:test", etree.NewElement("x"))
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc

			if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), strconv.Itoa(client.DefaultMaxResponseBytes)) {
				t.Fatalf("got %v after allocating %d MiB, want the answer refused, naming the peer and the bound (%d bytes)", err, alloc>>20, client.DefaultMaxResponseBytes)
			}
			if took > 20*time.Second {
				t.Errorf("the refusal took %s", took)
			}
			// Loose: the bytes read once and a buffer's growth, far below a 64 MiB
			// read, or the gigabytes of a parse.
			if alloc > 64<<20 {
				t.Fatalf("the call allocated %d MiB for an answer it refused (bound %d MiB)", alloc>>20, client.DefaultMaxResponseBytes>>20)
			}
			t.Logf("refused in %s: %v", took.Round(time.Millisecond), err)
		})
	}
}
