package imagepool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/tmpfstest"
)

func serveTestPool(t *testing.T) (*testPool, *httptest.Server) {
	t.Helper()
	tp := openTestPool(t)
	mux := http.NewServeMux()
	mux.Handle("/images", tp.Pool)
	mux.Handle("/images/", tp.Pool)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return tp, hs
}

func do(t *testing.T, method, u string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestHTTPImportAndList(t *testing.T) {
	_, hs := serveTestPool(t)
	data := randomBytes(t, 3*chunkSize+7)
	data[0] = 0
	q := url.Values{"name": {"deb12"}, "os": {"linux/debian/12"}, "kernel": {"6.1.0-18-amd64"}, "arch": {"x86_64"}, "lib": {"glibc=2.36", "openmpi"}}
	resp, body := do(t, http.MethodPut, hs.URL+"/images?"+q.Encode(), bytes.NewReader(data))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
	var res ImportResult
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("PUT answer %s: %v", body, err)
	}
	if res.Digest != digestOf(data) || !res.Stored || res.Deduplicated || res.Name != "deb12" || res.Format != "raw" ||
		strings.Join(res.Libraries, " ") != "glibc=2.36 openmpi" {
		t.Errorf("PUT answer = %+v", res)
	}
	if loc := resp.Header.Get("Location"); loc != "/images/"+res.Digest {
		t.Errorf("Location = %q", loc)
	}

	// The same bytes under another name: deduplicated, streamed with chunked encoding.
	resp, body = do(t, http.MethodPut, hs.URL+"/images?name=copy", io.MultiReader(bytes.NewReader(data)))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("second PUT = %d %s", resp.StatusCode, body)
	}
	res = ImportResult{}
	json.Unmarshal(body, &res)
	if res.Stored || !res.Deduplicated || res.Digest != digestOf(data) {
		t.Errorf("second PUT answer = %+v, want deduplicated", res)
	}

	resp, body = do(t, http.MethodGet, hs.URL+"/images", nil)
	var list ImageList
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &list) != nil {
		t.Fatalf("GET /images = %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if len(list.Images) != 2 || list.Images[0].Name != "copy" || list.Images[1].Name != "deb12" {
		t.Errorf("list = %+v", list)
	}
}

func TestHTTPImportErrors(t *testing.T) {
	tp, hs := serveTestPool(t)
	mustImport(t, tp.Pool, []byte("taken"), Meta{Name: "taken"})
	tests := []struct {
		query  string
		body   string
		status int
		says   string
	}{
		{"name=taken", "other", http.StatusConflict, "already taken by sha256:"},
		{"name=..%2Fx", "x", http.StatusBadRequest, "not valid"},
		{"name=" + strings.Repeat("n", 65), "x", http.StatusBadRequest, "limit is 64"},
		{"", "x", http.StatusBadRequest, "needs ?name="},
		{"name=a&name=b", "x", http.StatusBadRequest, "give it once"},
		{"name=x&library=glibc", "x", http.StatusBadRequest, "unknown parameter"},
		{"name=x&arch=amd64", "x", http.StatusBadRequest, "x86_64"},
		{"name=x&os=debian", "x", http.StatusBadRequest, "family"},
		{"name=x", "", http.StatusBadRequest, "empty"},
		{"name=x", "\x1f\x8b\x08\x00 not a disk", http.StatusBadRequest, "gunzip"},
	}
	for _, tt := range tests {
		resp, body := do(t, http.MethodPut, hs.URL+"/images?"+tt.query, strings.NewReader(tt.body))
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.says) || bytes.Count(body, []byte("\n")) != 1 {
			t.Errorf("PUT ?%s = %d %q; want %d, one line saying %q", tt.query, resp.StatusCode, body, tt.status, tt.says)
		}
	}
	if files := poolFiles(t, tp.Pool); len(files) != 1 {
		t.Errorf("refused imports left files: %v", files)
	}
}

func TestHTTPDownload(t *testing.T) {
	tp, hs := serveTestPool(t)
	data := randomBytes(t, 1<<20+333)
	data[0] = 0
	img, _ := mustImport(t, tp.Pool, data, Meta{Name: "disk"})
	u := hs.URL + "/images/" + img.Digest
	etag := `"` + img.Digest + `"`
	size := len(data)

	resp, body := do(t, http.MethodGet, u, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET = %d, %d bytes", resp.StatusCode, len(body))
	}
	for k, want := range map[string]string{"ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream",
		"Content-Length": fmt.Sprint(size)} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if rd := resp.Header.Get("Repr-Digest"); !strings.HasPrefix(rd, "sha-256=:") {
		t.Errorf("Repr-Digest = %q", rd)
	}
	// The bare hex names the same blob.
	if resp, body := do(t, http.MethodGet, hs.URL+"/images/"+strings.TrimPrefix(img.Digest, "sha256:"), nil); resp.StatusCode != 200 || !bytes.Equal(body, data) {
		t.Errorf("GET by bare hex = %d", resp.StatusCode)
	}

	resp, body = do(t, http.MethodHead, u, nil)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Length") != fmt.Sprint(size) || resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD = %d, %d body bytes, headers %v", resp.StatusCode, len(body), resp.Header)
	}

	ranges := []struct {
		hdr    []string
		status int
		want   []byte
		cr     string
	}{
		{[]string{"Range", "bytes=0-9"}, 206, data[:10], fmt.Sprintf("bytes 0-9/%d", size)},
		{[]string{"Range", "bytes=-100"}, 206, data[size-100:], fmt.Sprintf("bytes %d-%d/%d", size-100, size-1, size)},
		{[]string{"Range", fmt.Sprintf("bytes=%d-", size-5)}, 206, data[size-5:], fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size)},
		{[]string{"Range", "bytes=10-19", "If-Range", etag}, 206, data[10:20], fmt.Sprintf("bytes 10-19/%d", size)},
		{[]string{"Range", "bytes=10-19", "If-Range", `"sha256:0000"`}, 200, data, ""},
		{[]string{"Range", fmt.Sprintf("bytes=%d-", size)}, 416, nil, fmt.Sprintf("bytes */%d", size)},
		{[]string{"If-None-Match", etag}, 304, nil, ""},
	}
	for _, tt := range ranges {
		resp, body := do(t, http.MethodGet, u, nil, tt.hdr...)
		if resp.StatusCode != tt.status || (tt.want != nil && !bytes.Equal(body, tt.want)) || resp.Header.Get("Content-Range") != tt.cr {
			t.Errorf("GET %v = %d, %d bytes, Content-Range %q; want %d, %d bytes, %q",
				tt.hdr, resp.StatusCode, len(body), resp.Header.Get("Content-Range"), tt.status, len(tt.want), tt.cr)
		}
	}

	// A resumed transfer: half, then the rest guarded by the ETag, hashes to the digest.
	half := size / 2
	resp, first := do(t, http.MethodGet, u, nil, "Range", fmt.Sprintf("bytes=0-%d", half-1))
	if resp.StatusCode != 206 || len(first) != half {
		t.Fatalf("first half: %d, %d bytes", resp.StatusCode, len(first))
	}
	resp, rest := do(t, http.MethodGet, u, nil, "Range", fmt.Sprintf("bytes=%d-", half), "If-Range", resp.Header.Get("ETag"))
	if resp.StatusCode != 206 {
		t.Fatalf("rest: %d", resp.StatusCode)
	}
	sum := sha256.Sum256(append(first, rest...))
	if got := fmt.Sprintf("sha256:%x", sum); got != img.Digest {
		t.Errorf("resumed download hashes to %s, want %s", got, img.Digest)
	}
}

func TestHTTPBadRefs(t *testing.T) {
	tp, hs := serveTestPool(t)
	img, _ := mustImport(t, tp.Pool, []byte("named"), Meta{Name: "named"})
	tests := []struct {
		path   string
		status int
		says   string
	}{
		{"/images/sha256:zz", 400, "malformed digest"},
		{"/images/" + strings.Repeat("0", 63), 400, "malformed digest"},
		{"/images/SHA256:" + strings.Repeat("0", 64), 400, "malformed digest"},
		{"/images/" + digestOf([]byte("unknown")), 404, "no image with digest"},
		{"/images/named", 400, "/images/" + img.Digest},
		{"/images/a/b", 400, "malformed digest"},
	}
	for _, tt := range tests {
		resp, body := do(t, http.MethodGet, hs.URL+tt.path, nil)
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.says) {
			t.Errorf("GET %s = %d %q; want %d saying %q", tt.path, resp.StatusCode, body, tt.status, tt.says)
		}
	}
	// Path traversal straight into the handler (a mux would clean the path first).
	for _, p := range []string{"/images/../x", "/images/../../etc/passwd", "/images/..%2Fx"} {
		for _, m := range []string{http.MethodGet, http.MethodDelete} {
			req := httptest.NewRequest(m, "http://vws"+strings.ReplaceAll(p, "%2F", "/"), nil)
			rec := httptest.NewRecorder()
			tp.ServeHTTP(rec, req)
			if rec.Code != 400 {
				t.Errorf("%s %s = %d %q; want 400", m, p, rec.Code, rec.Body)
			}
		}
	}
	resp, _ := do(t, http.MethodPost, hs.URL+"/images", strings.NewReader("x"))
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Errorf("POST /images = %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, _ = do(t, http.MethodPut, hs.URL+"/images/"+img.Digest, strings.NewReader("x"))
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT /images/<digest> = %d", resp.StatusCode)
	}
}

func TestHTTPRemove(t *testing.T) {
	tp, hs := serveTestPool(t)
	img, _ := mustImport(t, tp.Pool, []byte("to remove"), Meta{Name: "gone"})
	tp.SetInUse(func(_ context.Context, d string) ([]string, error) {
		if d == img.Digest {
			return []string{"ws"}, nil
		}
		return nil, nil
	})
	resp, body := do(t, http.MethodDelete, hs.URL+"/images/gone", nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "used by workspaces") {
		t.Errorf("DELETE of an image in use = %d %q", resp.StatusCode, body)
	}
	tp.SetInUse(nil)
	resp, body = do(t, http.MethodDelete, hs.URL+"/images/gone", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE = %d %q", resp.StatusCode, body)
	}
	resp, body = do(t, http.MethodDelete, hs.URL+"/images/gone", nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "no image named") {
		t.Errorf("second DELETE = %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, http.MethodGet, hs.URL+"/images/"+img.Digest, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a removed blob = %d", resp.StatusCode)
	}
	resp, body = do(t, http.MethodDelete, hs.URL+"/images/"+img.Digest, nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "not a digest") {
		t.Errorf("DELETE by digest = %d %q", resp.StatusCode, body)
	}
}

// TestHTTPImportIntoAFullStorage: an import the pool's file system has no room for is
// answered 507 with what to do, refused before reading when its length is declared,
// and leaves nothing behind, so the space is still there for one that fits.
func TestHTTPImportIntoAFullStorage(t *testing.T) {
	tp, hs := serveTestPool(t)
	tmpfstest.Mount(t, tp.Dir(), "2m")
	big := randomBytes(t, 4<<20)
	big[0] = 0
	for _, tt := range []struct {
		what, says string
		body       io.Reader
	}{
		{"declared length", "nothing was read", bytes.NewReader(big)},
		{"streamed", "filled up during the import", io.MultiReader(bytes.NewReader(big))},
	} {
		resp, body := do(t, http.MethodPut, hs.URL+"/images?name=big", tt.body)
		for _, want := range []string{"no room", tt.says, "free space in the repository's data directory"} {
			if resp.StatusCode != http.StatusInsufficientStorage || !strings.Contains(string(body), want) {
				t.Errorf("%s: %d %q; want 507 saying %q", tt.what, resp.StatusCode, body, want)
			}
		}
		if files := poolFiles(t, tp.Pool); len(files) != 0 {
			t.Errorf("%s: the refused import left files: %v", tt.what, files)
		}
	}
	small := randomBytes(t, 64<<10)
	small[0] = 0
	if resp, body := do(t, http.MethodPut, hs.URL+"/images?name=small", bytes.NewReader(small)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("an import that fits after the refused ones: %d %s", resp.StatusCode, body)
	}
}

type brokenBody struct{ left int }

func (b *brokenBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.ErrUnexpectedEOF // the client went away mid-way
	}
	n := min(len(p), b.left)
	b.left -= n
	return n, nil
}

// TestHTTPImportCutOffIsLogged: an import the client broke off is said in the log,
// not only answered (to nobody).
func TestHTTPImportCutOffIsLogged(t *testing.T) {
	tp := openTestPool(t)
	req := httptest.NewRequest(http.MethodPut, "/images?name=halfway", &brokenBody{left: 64 << 10})
	rec := httptest.NewRecorder()
	tp.Pool.ServeHTTP(rec, req)
	if rec.Code/100 == 2 {
		t.Fatalf("a broken-off import answered %d", rec.Code)
	}
	if logs := tp.logs.String(); !strings.Contains(logs, "image import not done") || !strings.Contains(logs, "name=halfway") {
		t.Fatalf("the log does not say the import was not done:\n%s", logs)
	}
}
