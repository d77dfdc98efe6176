package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/tmpfstest"
)

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
	tmpfstest.MountOver(t, f.r.workspaceDir(key), "2m")
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

// fillUp fills the file system holding dir until it has no room left; the returned
// func gives the room back.
func fillUp(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := fh.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// wantStorageFull fails unless err says, each once, that the repository's storage is
// full, where, that nothing was created, and what to do.
func wantStorageFull(t *testing.T, what string, err error, dir, again string) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrCreation) {
		t.Fatalf("%s: want a creation failure, got %v", what, err)
	}
	text := err.Error() + "; " + errdefs.Advice(err)
	for _, want := range []string{"workspace creation failed", "the repository's storage is full", dir, "nothing was created",
		"the site administrator must free space there, then " + again} {
		if n := strings.Count(text, want); n != 1 {
			t.Errorf("%s: %q says %q %d times, want once", what, text, want, n)
		}
	}
	for _, not := range []string{"no space left", "database or disk is full", "retry, and report"} {
		if strings.Contains(text, not) {
			t.Errorf("%s: %q says %q", what, text, not)
		}
	}
}

// TestCreateAndCloneOnAFullStorage: a Create or Clone the repository's storage has no
// room for says so, where, and who can make room, and leaves nothing behind: no
// record, no file, the source as it was, the name and quota free for when there is
// room again.
func TestCreateAndCloneOnAFullStorage(t *testing.T) {
	needQemu(t)
	dir := t.TempDir()
	tmpfstest.Mount(t, dir, "24m") // before the fixture, so it is unmounted after it closes
	f := newFixtureIn(t, dir)
	ctx := context.Background()
	src := f.create("src", "", "")
	before := f.storeState()
	free := fillUp(t, dir)

	spec := CreateSpec{Name: "new", Owner: "o", Description: description(), BaseImage: f.base, Termination: time.Now().Add(time.Hour)}
	_, err := f.r.Create(ctx, spec)
	wantStorageFull(t, "create", err, dir, "create the workspace again")
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("create: the cause is lost: %v", err)
	}
	_, err = f.r.Clone(ctx, src, "copy", "o", time.Now().Add(time.Hour))
	wantStorageFull(t, "clone", err, dir, "clone the workspace again")
	if got := f.storeState(); got != before {
		t.Errorf("a create and a clone the storage had no room for changed the repository:\n%s\nwas\n%s", got, before)
	}
	f.wantLogged("the repository's storage is full", dir, "no space left on device")

	free()
	if _, err := f.r.Create(ctx, spec); err != nil {
		t.Errorf("create once there is room: %v", err)
	}
	if _, err := f.r.Clone(ctx, src, "copy", "o", time.Now().Add(time.Hour)); err != nil {
		t.Errorf("clone once there is room: %v", err)
	}
}

// TestCloneWithAFullDatabase: a database that cannot grow (SQLITE_FULL, "database or
// disk is full") is the repository's storage full too.
func TestCloneWithAFullDatabase(t *testing.T) {
	needQemu(t)
	f := newFixtureIn(t, t.TempDir()) // SQLite's own limit
	ctx := context.Background()
	src := f.create("src", "", "")
	before := f.storeState()
	// The one connection the store has: the database cannot grow beyond its size now.
	var pages int64
	if err := f.db.SQL().QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.SQL().Exec(fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.Clone(ctx, src, "copy", "o", time.Now().Add(time.Hour))
	wantStorageFull(t, "clone", err, f.dir, "clone the workspace again")
	_, err = f.r.Create(ctx, CreateSpec{Name: "new", Owner: "o", Description: description(), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	wantStorageFull(t, "create", err, f.dir, "create the workspace again")
	if got := f.storeState(); got != before {
		t.Errorf("a clone and a create the database had no room for changed the repository:\n%s\nwas\n%s", got, before)
	}
	f.wantLogged("the repository's storage is full", "database or disk is full")
}
