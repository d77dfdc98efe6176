package chunkhash

import (
	"context"
	"os"
	"testing"
)

// TestVerifyOfAFileCutShortInsideItsLastPage: a disk image typically ends in zero
// sectors. Cut short by less than a page, its last piece, mapped whole, still reads
// as the zeros it lacks (a mapping zero-fills the page the file ends in, and only pages
// wholly past the end fault): the missing bytes must not verify.
func TestVerifyOfAFileCutShortInsideItsLastPage(t *testing.T) {
	ctx := context.Background()
	path := writeRandom(t, 2*MinChunkBytes)
	// The last 4 KiB are zeros, as at the end of a disk.
	if err := os.Truncate(path, 2*MinChunkBytes-4096); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 2*MinChunkBytes); err != nil {
		t.Fatal(err)
	}
	l, err := File(ctx, path, MinChunkBytes)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, cut := range []int64{1, 512, 4095} {
		if err := os.Truncate(path, 2*MinChunkBytes-cut); err != nil {
			t.Fatal(err)
		}
		if err := Verify(ctx, f, l, 0, 2); err == nil {
			t.Errorf("a file %d bytes short of its list verified", cut)
		}
		if err := Verify(ctx, f, l, 1, 2); err == nil {
			t.Errorf("its last piece, %d bytes short, verified", cut)
		}
	}
	// The piece that is whole still verifies.
	if err := Verify(ctx, f, l, 0, 1); err != nil {
		t.Errorf("the first piece, whole, does not verify: %v", err)
	}
}
