package repository

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
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

// TestOnlyTheNewestUploadIsKept: a host that uploads memory images again and again
// while it holds the lock keeps one on the repository's disk, the newest, which is
// the one it checks in with; an earlier one is gone and cannot be checked in.
func TestOnlyTheNewestUploadIsKept(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("many", "", "")
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	checkIn := func(memory UploadResult) error {
		_, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: image(m, "overlay").Digest,
			MemoryDigest: memory.Digest, State: "paused", OverlaySize: -1, MemorySize: memory.Size})
		return err
	}
	var uploads []UploadResult
	for i := range 5 {
		res, rs := f.upload(key, "memory", m.Token, bytes.Repeat([]byte{byte('a' + i)}, 64<<10))
		if rs.code != http.StatusOK {
			t.Fatalf("upload %d: HTTP %d %s", i, rs.code, rs.body)
		}
		uploads = append(uploads, res)
	}
	var pending []string
	for _, name := range f.files(key) {
		if strings.HasPrefix(name, "pending-") {
			pending = append(pending, name)
		}
	}
	newest := uploads[len(uploads)-1]
	if want := pendingMemoryName(newest.Digest); len(pending) != 1 || pending[0] != want {
		t.Fatalf("after 5 memory uploads the workspace holds %v, want only %s", pending, want)
	}
	if err := checkIn(uploads[0]); !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "has not been uploaded") {
		t.Fatalf("check-in with a superseded upload: %v", err)
	}
	if err := checkIn(newest); err != nil {
		t.Fatalf("check-in with the newest upload: %v", err)
	}
}
