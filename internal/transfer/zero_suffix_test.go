package transfer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestServeContentZeroSuffixSpellings: a suffix range of zero bytes is unsatisfiable
// however its zero is written ("-00", "- 0", "-+0" parse as 0 in net/http just as
// "-0" does), never a 206 with the impossible Content-Range "bytes N-(N-1)/N".
func TestServeContentZeroSuffixSpellings(t *testing.T) {
	const data = "0123456789"
	for _, rng := range []string{"bytes=-0", "bytes=-00", "bytes=- 0", "bytes=-+0", "bytes=-0000"} {
		t.Run(rng, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Range", rng)
			rec := httptest.NewRecorder()
			ServeContent(rec, req, time.Time{}, strings.NewReader(data), int64(len(data)))
			if rec.Code != http.StatusRequestedRangeNotSatisfiable || rec.Header().Get("Content-Range") != fmt.Sprintf("bytes */%d", len(data)) {
				t.Errorf("Range %q = %d, Content-Range %q; want 416, \"bytes */%d\"", rng, rec.Code, rec.Header().Get("Content-Range"), len(data))
			}
		})
	}
}
