package repository

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/manifestsig"
	"github.com/vws-grid/vws/internal/wsrf"
)

// poolList is chunkhash.File of a pool image's blob, at the pool's piece length.
func (f *fixture) poolList(digest string) chunkhash.List {
	f.t.Helper()
	path, err := f.pool.Path(digest)
	if err != nil {
		f.t.Fatal(err)
	}
	l, err := chunkhash.File(context.Background(), path, chunkhash.DefaultChunkBytes)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

// forgetLists makes the pool's rows look like rows from before lists existed.
func (f *fixture) forgetLists() {
	f.t.Helper()
	if _, err := f.db.SQL().Exec(`UPDATE images SET chunk_bytes = 0, chunk_digests = ''`); err != nil {
		f.t.Fatal(err)
	}
}

// unlistSeal replaces workspace key's stored manifest with one as vws signed it before
// manifests carried chunk lists: the same content without them, signed with the
// current key (broken: with its signature value spoiled).
func (f *fixture) unlistSeal(key string, broken bool) {
	f.t.Helper()
	err := f.r.Workspaces.Modify(context.Background(), key, func(s *wsrf.Snapshot) error {
		c, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		c.Seal = f.reseal(c.Seal, f.r.signer, func(me *etree.Element) *etree.Element {
			for _, ie := range me.SelectElements("Image") {
				for _, tag := range []string{"ChunkBytes", "ChunkDigests"} {
					if el := ie.SelectElement(tag); el != nil {
						ie.RemoveChild(el)
					}
				}
			}
			return me
		})
		if strings.Contains(c.Seal, "ChunkDigests") {
			f.t.Fatal("the old-style manifest still lists chunks")
		}
		if broken {
			c.Seal = spoiled(c.Seal)
		}
		s.Private = c.encode()
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// spoiled is a stored signed manifest with its signature value broken.
func spoiled(seal string) string {
	i := strings.Index(seal, "<ds:SignatureValue>") + len("<ds:SignatureValue>")
	return seal[:i] + "AAAA" + seal[i+4:]
}

// The signed manifest lists the chunk digests of the base, kernel and initrd (as
// chunkhash.File computes them from the blobs), between BackingDigest/Format and
// Location, and none for the overlay; the signature covers them.
func TestManifestListsPoolImageChunks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("chunks", f.kernel, f.initrd)
	m, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := manifestsig.Verify(m.Signed, nil)
	if err != nil {
		t.Fatalf("the manifest does not verify: %v", err)
	}
	want := map[string]string{"base": f.base, "kernel": f.kernel, "initrd": f.initrd}
	seen := 0
	for _, ie := range signed.SelectElements("Image") {
		role := ie.SelectElement("Role").Text()
		var tags []string
		for _, c := range ie.ChildElements() {
			tags = append(tags, c.Tag)
		}
		digest, pool := want[role]
		if !pool {
			if ie.SelectElement("ChunkBytes") != nil || ie.SelectElement("ChunkDigests") != nil {
				t.Errorf("%s image lists chunks: %v", role, tags)
			}
			if ref := image(m, role); !ref.Chunks.Empty() {
				t.Errorf("%s ImageRef has a chunk list", role)
			}
			continue
		}
		seen++
		if got := strings.Join(tags, " "); !strings.HasSuffix(got, "Format ChunkBytes ChunkDigests Location") {
			t.Errorf("%s image elements: %s", role, got)
		}
		l := f.poolList(digest)
		if cb := ie.SelectElement("ChunkBytes").Text(); cb != strconv.Itoa(chunkhash.DefaultChunkBytes) {
			t.Errorf("%s ChunkBytes %s", role, cb)
		}
		if cd := ie.SelectElement("ChunkDigests").Text(); cd != l.Text() || cd == "" {
			t.Errorf("%s ChunkDigests %q, the blob's pieces %q", role, cd, l.Text())
		}
		size, _ := strconv.ParseInt(ie.SelectElement("SizeBytes").Text(), 10, 64)
		if _, err := chunkhash.Parse(chunkhash.DefaultChunkBytes, size, ie.SelectElement("ChunkDigests").Text()); err != nil {
			t.Errorf("%s list does not parse against SizeBytes: %v", role, err)
		}
		if ref := image(m, role); ref.Chunks.Text() != l.Text() {
			t.Errorf("%s ImageRef chunks %q", role, ref.Chunks.Text())
		}
	}
	if seen != 3 {
		t.Errorf("%d pool images in the manifest, want 3 (%s)", seen, roles(m))
	}
}

// A workspace sealed before manifests listed chunks, over images recorded before the
// pool listed them, still checks out: its old signature is checked and the manifest is
// signed again with the lists, which the record keeps. An old manifest whose signature
// does not verify is refused instead of being signed again.
func TestManifestWithoutChunksSignedAgain(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("old", f.kernel, "")
	forged := f.create("forged", "", "")
	f.unlistSeal(key, false)
	f.unlistSeal(forged, true)
	f.forgetLists()
	f.reopen()

	m, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
	if err != nil {
		t.Fatalf("check-out of a workspace sealed without chunk lists: %v", err)
	}
	signed, _, err := manifestsig.Verify(m.Signed, nil)
	if err != nil {
		t.Fatal(err)
	}
	lists := 0
	for _, ie := range signed.SelectElements("Image") {
		if ie.SelectElement("ChunkDigests") != nil {
			lists++
		}
	}
	if lists != 2 { // base and kernel
		t.Errorf("the re-signed manifest lists chunks of %d images, want 2", lists)
	}
	if seal := f.chain(key).Seal; !strings.Contains(seal, "<r:ChunkDigests>"+f.poolList(f.base).Text()+"</r:ChunkDigests>") {
		t.Errorf("the stored manifest was not updated with the lists:\n%s", seal)
	}
	if _, err := f.r.CheckOut(ctx, forged, "node1", "", nil, &tester); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("an old manifest whose signature is broken was signed again: %v", err)
	}
	if strings.Contains(f.chain(forged).Seal, "ChunkDigests") {
		t.Error("the forged manifest was signed again")
	}
}

// The pool's list is part of what the record and the signed manifest must agree on: a
// list changed in the store after sealing is refused at check-out, as a digest is.
func TestManifestChunkListMismatchRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("mismatch", "", "")
	other := f.poolList(f.kernel) // a well-formed list, of other bytes
	if _, err := f.db.SQL().Exec(`UPDATE images SET chunk_digests = $1 WHERE digest = $2`, other.Text(), f.base); err != nil {
		t.Fatal(err)
	}
	_, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "no longer matches its signed manifest") {
		t.Fatalf("check-out with a changed chunk list: %v", err)
	}
	if d := f.prop(key, PropDeployment); d != "in-repository" {
		t.Errorf("a refused check-out left deployment %q", d)
	}
}

// A base blob changed on disk before its list was computed is not listed: creating a
// workspace on it fails with an integrity error, as does checking out an old one.
func TestManifestOfDamagedBaseRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	key := f.create("before", "", "")
	f.unlistSeal(key, false)
	f.forgetLists()
	path, err := f.pool.Path(f.base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not the base any more"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.CheckOut(ctx, key, "node1", "", nil, &tester); !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("check-out on a damaged base: %v", err)
	}
	if d := f.prop(key, PropDeployment); d != "in-repository" {
		t.Errorf("a refused check-out left deployment %q", d)
	}
	if _, err := f.r.Create(ctx, CreateSpec{Name: "after", Owner: "o", Description: description(), BaseImage: f.base}); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("create on a damaged base: %v", err)
	}
}
