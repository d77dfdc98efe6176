package imagepool

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
)

// waitChunkJob waits until the computation of d's list (if one runs) has ended.
func (p *Pool) waitChunkJob(d string) {
	p.chunkMu.Lock()
	job := p.chunkJobs[d]
	p.chunkMu.Unlock()
	if job != nil {
		<-job.done
	}
}

// storedRow is what the images row holds of d's list.
func (tp *testPool) storedRow(t *testing.T, d string) (int64, string) {
	t.Helper()
	var n int64
	var text string
	if err := tp.db.SQL().QueryRow(`SELECT chunk_bytes, chunk_digests FROM images WHERE digest = $1`, d).Scan(&n, &text); err != nil {
		t.Fatal(err)
	}
	return n, text
}

// forget makes d's row look like one imported before lists existed.
func (tp *testPool) forget(t *testing.T, d string) {
	t.Helper()
	if _, err := tp.db.SQL().Exec(`UPDATE images SET chunk_bytes = 0, chunk_digests = '' WHERE digest = $1`, d); err != nil {
		t.Fatal(err)
	}
}

// openChunkPool is a test pool listing 1 MiB pieces, so that small images have several.
func openChunkPool(t *testing.T) *testPool {
	tp := openTestPool(t)
	tp.chunkBytes = chunkhash.MinChunkBytes
	return tp
}

func blobList(t *testing.T, tp *testPool, d string) chunkhash.List {
	t.Helper()
	path, err := tp.Path(d)
	if err != nil {
		t.Fatal(err)
	}
	l, err := chunkhash.File(context.Background(), path, chunkhash.MinChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// After an import the pool lists the blob's pieces by itself, as chunkhash.File does,
// and Chunks returns the stored list without hashing again.
func TestChunksComputedAfterImport(t *testing.T) {
	tp := openChunkPool(t)
	data := randomBytes(t, 5<<20+12345) // 6 pieces, the last one short
	img, _ := mustImport(t, tp.Pool, data, Meta{Name: "img"})
	tp.waitChunkJob(img.Digest)
	want := blobList(t, tp, img.Digest)
	n, text := tp.storedRow(t, img.Digest)
	if n != chunkhash.MinChunkBytes || text != want.Text() || len(want.Digests) != 6 {
		t.Fatalf("stored %d-byte pieces %q; want %d-byte pieces %q", n, text, want.ChunkBytes, want.Text())
	}
	hashed := tp.hashed.Load()
	l, err := tp.Chunks(context.Background(), img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if l.Text() != want.Text() || l.Size != int64(len(data)) || l.ChunkBytes != chunkhash.MinChunkBytes {
		t.Errorf("Chunks = %d bytes in %d-byte pieces %q", l.Size, l.ChunkBytes, l.Text())
	}
	if tp.hashed.Load() != hashed {
		t.Error("Chunks hashed the blob again although its list was stored")
	}
	// By bare hex too; unknown and malformed digests are refused.
	if _, err := tp.Chunks(context.Background(), strings.TrimPrefix(img.Digest, "sha256:")); err != nil {
		t.Error(err)
	}
	if _, err := tp.Chunks(context.Background(), digestOf([]byte("absent"))); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Chunks of an image the pool lacks: %v", err)
	}
	if _, err := tp.Chunks(context.Background(), "sha256:xyz"); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Errorf("Chunks of a malformed digest: %v", err)
	}
}

// An image recorded before lists existed gets one on its first Chunks, stored.
func TestChunksOfAnOldImage(t *testing.T) {
	tp := openChunkPool(t)
	img, _ := mustImport(t, tp.Pool, randomBytes(t, 3<<20), Meta{Name: "old"})
	tp.waitChunkJob(img.Digest)
	tp.forget(t, img.Digest)
	tp.reopen(t)
	tp.chunkBytes = chunkhash.MinChunkBytes
	l, err := tp.Chunks(context.Background(), img.Digest)
	if err != nil {
		t.Fatal(err)
	}
	want := blobList(t, tp, img.Digest)
	if l.Text() != want.Text() {
		t.Errorf("Chunks = %q, want %q", l.Text(), want.Text())
	}
	if n, text := tp.storedRow(t, img.Digest); n != chunkhash.MinChunkBytes || text != want.Text() {
		t.Errorf("the computed list was not stored: %d %q", n, text)
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// A blob changed on disk before its list exists gets none: Chunks says the pool's copy
// is damaged, and nothing is stored, whether the change is in place or a longer file.
func TestChunksOfADamagedBlob(t *testing.T) {
	tp := openChunkPool(t)
	ctx := context.Background()
	img, _ := mustImport(t, tp.Pool, randomBytes(t, 3<<20), Meta{Name: "img"})
	tp.waitChunkJob(img.Digest)
	tp.forget(t, img.Digest)
	path, _ := tp.Path(img.Digest)
	flipByte(t, path, 2<<20+7)
	_, err := tp.Chunks(ctx, img.Digest)
	if !errors.Is(err, errdefs.ErrImageIntegrity) || !strings.Contains(err.Error(), "is damaged") || errdefs.Advice(err) == "" {
		t.Fatalf("Chunks of a changed blob: %v (advice %q)", err, errdefs.Advice(err))
	}
	if n, text := tp.storedRow(t, img.Digest); n != 0 || text != "" {
		t.Errorf("a list of changed bytes was stored: %d %q", n, text)
	}

	flipByte(t, path, 2<<20+7) // back as imported, then one byte more
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.Write([]byte{0})
	fh.Close()
	if _, err := tp.Chunks(ctx, img.Digest); !errors.Is(err, errdefs.ErrImageIntegrity) {
		t.Fatalf("Chunks of a lengthened blob: %v", err)
	}
	if n, _ := tp.storedRow(t, img.Digest); n != 0 {
		t.Error("a list of a lengthened blob was stored")
	}
}

// The background computation yields while imports stream; a blob changed before it
// gets to the change is not listed either.
func TestChunksBackgroundChecksTheDigest(t *testing.T) {
	tp := openChunkPool(t)
	done := tp.importing() // another import streams: the background job waits
	img, _ := mustImport(t, tp.Pool, randomBytes(t, 6<<20), Meta{Name: "img"})
	path, _ := tp.Path(img.Digest)
	flipByte(t, path, 5<<20) // beyond the first block, which the job may have read
	done()
	tp.waitChunkJob(img.Digest)
	if n, text := tp.storedRow(t, img.Digest); n != 0 || text != "" {
		t.Errorf("the background job stored a list of changed bytes: %d %q", n, text)
	}
	if !strings.Contains(tp.logs.String(), "is damaged") {
		t.Errorf("the background job's refusal is not logged:\n%s", tp.logs.String())
	}
}

// Concurrent callers for one image share one computation, which does not wait for
// imports once someone waits for it.
func TestChunksConcurrentCallersHashOnce(t *testing.T) {
	tp := openChunkPool(t)
	done := tp.importing() // keeps the import's own background job waiting
	defer done()
	img, _ := mustImport(t, tp.Pool, randomBytes(t, 4<<20+1), Meta{Name: "img"})
	want := blobList(t, tp, img.Digest)
	// askAll has 8 callers ask at once; each must get the blob's list.
	askAll := func(when string) {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if l, err := tp.Chunks(context.Background(), img.Digest); err != nil || l.Text() != want.Text() {
					t.Errorf("caller %d %s: %v %q", i, when, err, l.Text())
				}
			}()
		}
		wg.Wait()
	}
	before := tp.hashed.Load()
	askAll("after the import")
	if n := tp.hashed.Load(); n > 1 {
		t.Errorf("the blob was hashed %d times for 8 callers (%d before they asked)", n, before)
	}

	// An old row: concurrent first callers hash once too.
	tp.forget(t, img.Digest)
	before = tp.hashed.Load()
	askAll("after forgetting")
	if n := tp.hashed.Load() - before; n != 1 {
		t.Errorf("the blob was hashed %d times for 8 first callers", n)
	}
}

// Removing an image stops its background computation; a closed pool computes nothing.
func TestChunksRemoveAndClose(t *testing.T) {
	tp := openChunkPool(t)
	ctx := context.Background()
	done := tp.importing()
	img, _ := mustImport(t, tp.Pool, randomBytes(t, 2<<20), Meta{Name: "gone"})
	if err := tp.Remove(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	tp.waitChunkJob(img.Digest) // canceled, though imports still "stream"
	done()
	if strings.Contains(tp.logs.String(), "chunk digests") {
		t.Errorf("a canceled computation was logged as a failure:\n%s", tp.logs.String())
	}

	kept, _ := mustImport(t, tp.Pool, randomBytes(t, 2<<20), Meta{Name: "kept"})
	tp.waitChunkJob(kept.Digest)
	tp.forget(t, kept.Digest)
	tp.Close()
	if _, err := tp.Chunks(ctx, kept.Digest); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Chunks on a closed pool: %v", err)
	}
}
