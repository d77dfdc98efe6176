package repository

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/tmpfstest"
)

// onSmallFileSystem moves a workspace's directory onto a tmpfs of size bytes
// (mounting needs root, as CI runs), so its uploads meet a full disk.
func onSmallFileSystem(t *testing.T, dir string, size string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	saved := map[string][]byte{}
	for _, e := range ents {
		if saved[e.Name()], err = os.ReadFile(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	tmpfstest.Mount(t, dir, size)
	for name, data := range saved {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUploadToAFullStorage: an upload the repository's storage has no room for is
// answered 507 with what to do, refused before reading when its length is declared,
// and leaves nothing behind, so the space is still there for one that fits.
func TestUploadToAFullStorage(t *testing.T) {
	f := newFixture(t)
	key := f.create("full", "", "")
	m, err := f.r.CheckOut(context.Background(), key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	onSmallFileSystem(t, f.r.workspaceDir(key), "2m")
	before := strings.Join(f.files(key), ",")
	ram := bytes.Repeat([]byte("RAM!"), 1<<20) // 4 MiB

	check := func(what string, rs resp, mention string) {
		t.Helper()
		if rs.code != http.StatusInsufficientStorage {
			t.Fatalf("%s: HTTP %d %s; want 507", what, rs.code, rs.body)
		}
		for _, want := range []string{"no room", mention, "nothing was", "site administrator must free space"} {
			if !strings.Contains(string(rs.body), want) {
				t.Errorf("%s: the answer %q does not say %q", what, rs.body, want)
			}
		}
		if got := strings.Join(f.files(key), ","); got != before {
			t.Errorf("%s: the workspace's files are %s, were %s", what, got, before)
		}
		ents, _ := os.ReadDir(f.r.workspaceDir(key))
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), uploadPrefix) {
				t.Errorf("%s: left %s behind", what, e.Name())
			}
		}
	}
	// Content-Length declared: refused before a byte is read.
	_, rs := f.upload(key, "memory", m.Token, ram)
	check("declared length", rs, "nothing was read")
	// Streamed without a length: the disk fills up on the way.
	rs = f.do(http.MethodPut, "/workspaces/"+key+"/memory", m.Token, io.MultiReader(bytes.NewReader(ram)))
	check("streamed", rs, "filled up after")

	small := []byte("a small memory image")
	if res, rs := f.upload(key, "memory", m.Token, small, SHA256Header, sha(small)); rs.code != http.StatusOK || res.Size != int64(len(small)) {
		t.Fatalf("an upload that fits after the refused ones: HTTP %d %s", rs.code, rs.body)
	}
}
