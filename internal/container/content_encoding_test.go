package container_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
)

// TestCompressedRequestIsRefusedSayingWhy: the container reads no Content-Encoding, so
// a gzip-compressed envelope was parsed as XML and refused as "illegal character code
// U+001F" — true of the bytes, and no help to the caller. It is refused with HTTP 415
// (RFC 9110 §15.5.16) naming the encoding, and nothing runs.
func TestCompressedRequestIsRefusedSayingWhy(t *testing.T) {
	s := startWSAServer(t)
	d := dialect.WSRF12
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(envelope(d, s.getRP(t, d), "Version")))
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.url, &gz)
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if n := s.calls.Load(); n != 0 {
		t.Fatalf("the handler ran %d time(s)", n)
	}
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(answer), "gzip") {
		t.Errorf("HTTP %d %q; want 415 saying the gzip encoding is not accepted", resp.StatusCode, answer)
	}
}
