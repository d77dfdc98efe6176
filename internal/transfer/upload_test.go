package transfer

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestStallGuard: a body that keeps moving may take longer than the stall bound; one
// that stops is cut off after it; a long answer to a request without a body is not.
func TestStallGuard(t *testing.T) {
	const stall = 300 * time.Millisecond
	hs := httptest.NewServer(StallGuard(stall, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, fmt.Sprintf("after %d bytes: %v", n, err), http.StatusBadRequest)
			return
		}
		if r.Method == http.MethodGet {
			select { // a long download's first byte
			case <-time.After(3 * stall):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "%d bytes", n)
	})))
	defer hs.Close()

	// Ten pieces, each sent just inside the bound: three times the bound in all.
	pr, pw := io.Pipe()
	go func() {
		for range 10 {
			time.Sleep(stall * 3 / 10)
			pw.Write([]byte("0123456789"))
		}
		pw.Close()
	}()
	resp, err := http.Post(hs.URL, "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "100 bytes" {
		t.Fatalf("a slow upload that keeps moving: %q", got)
	}

	resp, err = http.Get(hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != "0 bytes" {
		t.Fatalf("a request without a body answered after three times the bound: %q", got)
	}

	conn, err := net.Dial("tcp", hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789") // and then nothing
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	t0 := time.Now()
	answer, _ := io.ReadAll(conn)
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("a stalled upload held its connection %s with a %s stall bound", d, stall)
	}
	if !strings.Contains(string(answer), "after 10 bytes") || !strings.Contains(string(answer), "timeout") {
		t.Errorf("the answer to a stalled upload: %q", answer)
	}
}

// TestLimitRanges: a GET of a few ranges is served as net/http serves it; one of
// thousands is refused before any work.
func TestLimitRanges(t *testing.T) {
	served := 0
	hs := httptest.NewServer(LimitRanges(MaxRanges, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		http.ServeContent(w, r, "image", time.Time{}, strings.NewReader(strings.Repeat("x", 1<<20)))
	})))
	defer hs.Close()
	get := func(rng string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, hs.URL, nil)
		req.Header.Set("Range", rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("bytes=0-99,200-299"); code != http.StatusPartialContent || served != 1 {
		t.Fatalf("two ranges: HTTP %d, served %d", code, served)
	}
	parts := make([]string, 5000)
	for i := range parts {
		parts[i] = fmt.Sprintf("%d-%d", i, i)
	}
	code, body := get("bytes=" + strings.Join(parts, ","))
	if code != http.StatusRequestedRangeNotSatisfiable || served != 1 || !strings.Contains(body, "5000 ranges") {
		t.Fatalf("5,000 ranges: HTTP %d, served %d: %s", code, served, body)
	}
}
