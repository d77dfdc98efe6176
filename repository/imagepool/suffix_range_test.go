package imagepool

import (
	"fmt"
	"net/http"
	"testing"
)

// TestSuffixRangeOfZeroBytesIsUnsatisfiable: "bytes=-0" asks for the last zero
// bytes, which RFC 9110 §14.1.2 calls unsatisfiable: 416, Content-Range "bytes */size"
// (net/http alone answers 206 with the impossible "bytes size-(size-1)/size"); with a
// satisfiable range beside it, that one is served.
func TestSuffixRangeOfZeroBytesIsUnsatisfiable(t *testing.T) {
	tp, hs := serveTestPool(t)
	data := randomBytes(t, 1000)
	data[0] = 0
	img, _ := mustImport(t, tp.Pool, data, Meta{Name: "disk"})
	resp, body := do(t, http.MethodGet, hs.URL+"/images/"+img.Digest, nil, "Range", "bytes=-0")
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(data)) {
		t.Errorf("GET Range bytes=-0 = %d, Content-Range %q, %d body bytes; want 416, \"bytes */%d\"",
			resp.StatusCode, resp.Header.Get("Content-Range"), len(body), len(data))
	}
	resp, body = do(t, http.MethodGet, hs.URL+"/images/"+img.Digest, nil, "Range", "bytes=-0, 10-19")
	if resp.StatusCode != http.StatusPartialContent || string(body) != string(data[10:20]) {
		t.Errorf("GET Range bytes=-0, 10-19 = %d, %d body bytes; want 206 with bytes 10-19", resp.StatusCode, len(body))
	}
}
