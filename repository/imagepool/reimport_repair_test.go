package imagepool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestReimportRepairsADamagedBlob: the pool's blob of an image was cut short on disk
// (its recorded size says so at a glance). Importing the very same, good bytes again
// — the repair the damage advice suggests while a workspace uses the image, so that it
// cannot be removed — puts the good copy in place of the damaged blob, rather than
// counting it a duplicate and throwing it away.
func TestReimportRepairsADamagedBlob(t *testing.T) {
	tp := openChunkPool(t)
	ctx := context.Background()
	data := randomBytes(t, 3<<20)
	img, _ := mustImport(t, tp.Pool, data, Meta{Name: "img"})
	tp.waitChunkJob(img.Digest)
	tp.forget(t, img.Digest)
	path, _ := tp.Path(img.Digest)
	if err := os.Truncate(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Chunks(ctx, img.Digest); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("Chunks of a truncated blob: %v", err)
	}
	again, stored, err := tp.Import(ctx, bytes.NewReader(data), Meta{Name: "img-good-copy"})
	if err != nil {
		t.Fatalf("re-import: %v", err)
	}
	if !stored {
		t.Errorf("the repairing re-import was counted a duplicate")
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, data) {
		t.Errorf("re-import of the good bytes answered stored=%v (deduplicated=%v) for %s, but the blob still holds %d damaged bytes of %d",
			stored, !stored, again.Digest, len(got), len(data))
	}
	tp.waitChunkJob(img.Digest)
	if _, err := tp.Chunks(ctx, img.Digest); err != nil {
		t.Errorf("after the re-import, Chunks still fails: %v", err)
	}
}

// TestReimportRepairsABlobDamagedInPlace: the blob's bytes went bad without its size
// changing (a bit flip, a bad sector rewritten). Re-importing the good bytes repairs
// the blob's content, in the same file: a manager on this host that staged the image
// from the pool holds a hard link to it, and must see the repaired bytes too.
func TestReimportRepairsABlobDamagedInPlace(t *testing.T) {
	tp := openChunkPool(t)
	ctx := context.Background()
	data := randomBytes(t, 3<<20)
	img, _ := mustImport(t, tp.Pool, data, Meta{Name: "img"})
	tp.waitChunkJob(img.Digest)
	tp.forget(t, img.Digest)
	path, _ := tp.Path(img.Digest)
	staged := filepath.Join(t.TempDir(), "cache-entry")
	if err := os.Link(path, staged); err != nil {
		t.Skipf("no hard link into a temporary directory: %v", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[2<<20] ^ 0x10}, 2<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := tp.Chunks(ctx, img.Digest); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("Chunks of a damaged blob: %v", err)
	}
	_, stored, err := tp.Import(ctx, bytes.NewReader(data), Meta{Name: "img-good-copy"})
	if err != nil {
		t.Fatalf("re-import: %v", err)
	}
	if !stored {
		t.Errorf("the repairing re-import was counted a duplicate")
	}
	for _, p := range []string{path, staged} {
		if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
			t.Errorf("after re-importing the good bytes (stored=%v), %s still holds damaged bytes", stored, p)
		}
	}
	if a, err1 := os.Stat(path); err1 == nil {
		if b, err2 := os.Stat(staged); err2 == nil && !os.SameFile(a, b) {
			t.Errorf("the repair replaced the blob's file: a hard link to it is no longer the pool's copy")
		}
	}
	tp.waitChunkJob(img.Digest)
	if _, err := tp.Chunks(ctx, img.Digest); err != nil {
		t.Errorf("after the re-import, Chunks still fails: %v", err)
	}

	// Good bytes imported again are a duplicate, and leave the blob's file alone.
	before, _ := os.Stat(path)
	if _, stored, err := tp.Import(ctx, bytes.NewReader(data), Meta{Name: "img-third"}); err != nil || stored {
		t.Errorf("import of content the pool holds intact: stored=%v, %v", stored, err)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("a deduplicated import rewrote the intact blob")
	}
}
