package repository

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/vws-grid/vws/internal/wsa"
)

// TestWorkspaceFileSuffixRangeOfZeroBytes: GET /workspaces/<key>/files/<digest> with
// "bytes=-0" (unsatisfiable, RFC 9110 §14.1.2) is answered 416 "bytes */size", not 206
// with an impossible Content-Range.
func TestWorkspaceFileSuffixRangeOfZeroBytes(t *testing.T) {
	f := newFixture(t)
	key := f.create("src", "", "")
	mgr := &wsa.EPR{Version: wsa.V200508, Address: "http://host-a:8080/wsrf/services/WorkspaceManagerService"}
	m, err := f.r.CheckOut(context.Background(), key, "host-a", "", mgr, &tester)
	if err != nil {
		t.Fatal(err)
	}
	ov := image(m, "overlay")
	rs := f.do(http.MethodGet, ov.Path, m.Token, nil, "Range", "bytes=-0")
	if rs.code != http.StatusRequestedRangeNotSatisfiable || rs.hdr.Get("Content-Range") != fmt.Sprintf("bytes */%d", ov.Size) {
		t.Errorf("GET overlay Range bytes=-0 = %d, Content-Range %q, %d body bytes; want 416, \"bytes */%d\"",
			rs.code, rs.hdr.Get("Content-Range"), len(rs.body), ov.Size)
	}
}
