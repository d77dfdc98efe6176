package manager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/qcow2"
)

// A cached layer is re-pointed (qemu-img rebase -u) at the cache's copy of the image
// below it, which rewrites its header cluster and nothing else: its bytes are no
// longer its digest's. The header cluster as fetched is kept beside it
// (<hex>.origin), so that a layer whose stamp no longer matches — the manager stopped
// between re-pointing and stamping, the data directory was copied to another disk —
// is checked again like any entry (the file with its header as fetched), instead of
// being taken for damaged, removed under the workspaces that stand on it, and fetched
// again.
const originSuffix = ".origin"

// saveOrigin keeps the header cluster of the layer at path, as fetched, for
// verifyRepointed; it is called before the first re-pointing.
func saveOrigin(path string) error {
	info, err := qcow2.ReadInfo(path)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<min(info.ClusterBits, 21))
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("read the header of %s: %w", path, err)
	}
	return fsutil.WriteFileAtomic(path+originSuffix, buf[:n], 0o644)
}

// verifyRepointed checks a re-pointed layer against the manifest as verifyImage checks
// any image, with its header cluster as fetched in place of the re-pointed one.
func verifyRepointed(ctx context.Context, path string, img *manifestImage) error {
	origin, err := os.ReadFile(path + originSuffix)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size, head := fi.Size(), int64(len(origin))
	if size != img.Size || head > size {
		return fmt.Errorf("%w: the %s image has %d bytes; the manifest says %d", errdefs.ErrImageIntegrity, img.Role, size, img.Size)
	}
	// sum hashes [start, end) of the layer as fetched: the kept header, then the file.
	sum := func(start, end int64) ([]byte, error) {
		h := sha256.New()
		if start < head {
			h.Write(origin[start:min(end, head)])
			start = head
		}
		if end > start {
			if _, err := io.Copy(h, io.NewSectionReader(f, start, end-start)); err != nil {
				return nil, err
			}
		}
		return h.Sum(nil), nil
	}
	if img.Chunks.Empty() {
		got, err := sum(0, size)
		if err != nil {
			return err
		}
		if "sha256:"+hex.EncodeToString(got) != img.Digest {
			return fmt.Errorf("%w: the %s image %s, with its header as fetched, has digest sha256:%x", errdefs.ErrImageIntegrity, img.Role, img.Digest, got)
		}
		return nil
	}
	l := img.Chunks
	rest := 0 // the first piece wholly past the kept header
	for ; rest < len(l.Digests) && int64(rest)*l.ChunkBytes < head; rest++ {
		start := int64(rest) * l.ChunkBytes
		got, err := sum(start, min(start+l.ChunkBytes, size))
		if err != nil {
			return err
		}
		if !bytes.Equal(got, l.Digests[rest][:]) {
			return fmt.Errorf("%w: the %s image %s: piece %d, with the header as fetched, differs", errdefs.ErrImageIntegrity, img.Role, img.Digest, rest)
		}
	}
	if err := chunkhash.Verify(ctx, f, l, rest, len(l.Digests)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: the %s image %s: %w", errdefs.ErrImageIntegrity, img.Role, img.Digest, err)
	}
	return nil
}
