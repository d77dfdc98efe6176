package imagepool

import (
	"bytes"
	"context"
	"errors"
	"os"
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
