package imagepool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/transfer"
)

// Import stores the image read from r under m.Name with m's metadata. It reads r once:
// the bytes go to a temporary file in the pool directory while they are hashed; when r
// ends, the file is synced and renamed to its digest and the rows are written in one
// transaction. If the pool already holds the same content, the temporary file is
// dropped, the name points at the existing blob, and stored is false; if that blob has
// gone bad, the verified bytes repair it (stored is then true).
//
// ctx bounds the streaming; once every byte is in, the import is finished even if ctx
// ends (the client sent it all; it should find it stored).
//
// Once the image is recorded, its chunk list (Chunks) is computed in the background
// from the stored blob, checked against the digest in the same pass, while no other
// import streams.
func (p *Pool) Import(ctx context.Context, r io.Reader, m Meta) (img Image, stored bool, err error) {
	img, stored, err = p.importStream(ctx, r, m)
	if err == nil {
		p.startChunks(img.Digest)
	}
	return img, stored, err
}

func (p *Pool) importStream(ctx context.Context, r io.Reader, m Meta) (img Image, stored bool, err error) {
	m, err = normalizeMeta(m, true)
	if err != nil {
		return Image{}, false, err
	}
	// Refuse a taken name before reading what may be gigabytes; checked again at commit.
	if d, err := p.nameDigest(ctx, p.db, m.Name); err != nil {
		return Image{}, false, err
	} else if d != "" {
		return Image{}, false, &NameTakenError{Name: m.Name, Digest: d}
	}

	defer p.importing()()

	tmp, err := os.CreateTemp(p.dir, tempPrefix+"*")
	if err != nil {
		return Image{}, false, fmt.Errorf("create temporary file for the import: %w", err)
	}
	tmpName := tmp.Name()
	keepTmp := false
	defer func() {
		if !keepTmp {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	// Blobs are read by the hypervisor (as an overlay's backing file), which may run as
	// another user in the pool directory's group.
	if err := tmp.Chmod(0o640); err != nil {
		return Image{}, false, fmt.Errorf("set permissions of the temporary file: %w", err)
	}

	res, err := copyHashed(ctx, tmp, r)
	if err != nil {
		return Image{}, false, err
	}
	format, vsize, err := detectFormat(res.head, res.size)
	if err != nil {
		return Image{}, false, err
	}
	digest := digestPrefix + hex.EncodeToString(res.sum[:])
	ctx = context.WithoutCancel(ctx)
	// Sync outside the lock, unless the content is already stored intact (then the
	// temporary file is thrown away and syncing it would only cost time). A blob of the
	// right size may still have gone bad (a bit flip): compared here, outside the lock,
	// with the bytes just verified against its digest, which then repair it.
	synced, repair := false, false
	held := p.holds(ctx, digest, res.size)
	if held {
		same, err := sameContent(p.blobPath(digest), tmp)
		if err != nil {
			p.log.Warn("image pool: could not compare a stored blob with the same content imported again; the import rewrites it", "digest", digest, "err", err)
		}
		repair = !same
	}
	if repair || !held {
		if err := tmp.Sync(); err != nil {
			return Image{}, false, fmt.Errorf("sync imported image: %w", err)
		}
		synced = true
	}
	return p.commit(ctx, tmp, synced, repair, &keepTmp, digest, format, res.size, vsize, m)
}

// sameContent says whether the file at path holds the bytes of f (the same length).
func sameContent(path string, f *os.File) (bool, error) {
	g, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer g.Close()
	a, b := make([]byte, chunkReadBytes), make([]byte, chunkReadBytes)
	for off := int64(0); ; off += chunkReadBytes {
		n, err := f.ReadAt(a, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		m, err := g.ReadAt(b, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		if n != m || !bytes.Equal(a[:n], b[:m]) {
			return false, nil
		}
		if n < chunkReadBytes {
			return true, nil
		}
	}
}

// rewriteBlob writes the verified bytes of f over those of the same size blob at path
// that differ, in the file itself rather than by a rename: a manager on this host that
// staged the image from the pool holds a hard link to the blob, which a rename would
// leave on the damaged bytes (its stamp unchanged, so used unchecked); written in
// place, its copy is repaired too and, modified since its check, checked again.
func rewriteBlob(path string, f *os.File) error {
	g, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer g.Close()
	a, b := make([]byte, chunkReadBytes), make([]byte, chunkReadBytes)
	for off := int64(0); ; off += chunkReadBytes {
		n, err := f.ReadAt(a, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		m, err := g.ReadAt(b, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n != m || !bytes.Equal(a[:n], b[:m]) {
			if _, err := g.WriteAt(a[:n], off); err != nil {
				return err
			}
		}
		if n < chunkReadBytes {
			break
		}
	}
	return g.Sync()
}

// holds says whether the pool has a recorded, present blob of size bytes for digest.
func (p *Pool) holds(ctx context.Context, digest string, size int64) bool {
	var n int
	if err := p.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE digest = $1`, digest).Scan(&n); err != nil || n == 0 {
		return false
	}
	return p.blobOfSize(digest, size)
}

// blobOfSize says whether digest's blob is there with size bytes. One of another size
// is damaged (cut short, say): an import of the same content replaces it rather than
// counting as a duplicate of it.
func (p *Pool) blobOfSize(digest string, size int64) bool {
	fi, err := os.Stat(p.blobPath(digest))
	return err == nil && fi.Size() == size
}

// commit puts the temporary file in place as the digest's blob, durably (unless the
// pool has that content already), and records the image and its name in one
// transaction.
//
// repair says the recorded blob of the right size was found to differ from the
// temporary file: its content is then rewritten from it.
func (p *Pool) commit(ctx context.Context, tmp *os.File, synced, repair bool, keepTmp *bool, digest, format string, size, vsize int64, m Meta) (Image, bool, error) {
	tmpName := tmp.Name()
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, err := p.nameDigest(ctx, p.db, m.Name); err != nil {
		return Image{}, false, err
	} else if d != "" {
		return Image{}, false, &NameTakenError{Name: m.Name, Digest: d}
	}
	var known int
	err := p.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE digest = $1`, digest).Scan(&known)
	if err != nil {
		return Image{}, false, fmt.Errorf("look up digest %s: %w", digest, err)
	}
	blob := p.blobPath(digest)
	stored, place := true, true
	if known > 0 {
		if p.blobOfSize(digest, size) {
			// dedupe (the deferred cleanup removes the temporary file), or a repair
			place, stored = false, repair
			if repair {
				p.log.Warn("image pool: re-importing content whose blob file was damaged (its size intact): the import's verified bytes repair it in place", "digest", digest)
				if err := rewriteBlob(blob, tmp); err != nil {
					return Image{}, false, fmt.Errorf("repair the pool's damaged copy of %s: %w", digest, err)
				}
			}
		} else {
			p.log.Warn("image pool: re-importing content whose blob file was missing or damaged (not its size): the import replaces it", "digest", digest)
		}
	}
	if place {
		if !synced { // the content went away between the look and the lock
			if err := tmp.Sync(); err != nil {
				return Image{}, false, fmt.Errorf("sync imported image: %w", err)
			}
		}
		if err := tmp.Close(); err != nil {
			return Image{}, false, fmt.Errorf("close imported image: %w", err)
		}
		if err := os.Rename(tmpName, blob); err != nil {
			return Image{}, false, fmt.Errorf("move imported image into place: %w", err)
		}
		*keepTmp = true // it is the blob now
		if err := syncDir(p.dir); err != nil {
			p.unlinkNew(blob, known > 0)
			return Image{}, false, err
		}
	}
	now := time.Now()
	fail := func(err error) (Image, bool, error) {
		if place {
			p.unlinkNew(blob, known > 0)
		}
		return Image{}, false, fmt.Errorf("record image %q: %w", m.Name, err)
	}
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO images (digest, format, size, virtual_size, created) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (digest) DO NOTHING`, digest, format, size, vsize, now.UnixMilli()); err != nil {
		return fail(err)
	}
	libs := strings.Join(m.Libraries, " ")
	if _, err := tx.ExecContext(ctx, `INSERT INTO image_names (name, digest, os, kernel, arch, libraries, created) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		m.Name, digest, m.OS, m.Kernel, m.Arch, libs, now.UnixMilli()); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	var img Image
	img, err = scanImage(p.db.QueryRowContext(ctx, selectImage+` WHERE n.name = $1`, m.Name))
	if err != nil {
		return Image{}, false, fmt.Errorf("read back image %q: %w", m.Name, err)
	}
	return img, stored, nil
}

// unlinkNew removes a blob this import just put in place when its rows could not be
// written (a blob that was already recorded stays: its record points at it).
func (p *Pool) unlinkNew(blob string, recorded bool) {
	if recorded {
		return
	}
	if err := os.Remove(blob); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.log.Warn("image pool: could not delete the blob of a failed import; the next start removes it", "file", blob, "err", err)
	}
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// nameDigest is the digest the name points at, "" when the name is free.
func (p *Pool) nameDigest(ctx context.Context, q querier, name string) (string, error) {
	var d string
	err := q.QueryRowContext(ctx, `SELECT digest FROM image_names WHERE name = $1`, name).Scan(&d)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look up image name %q: %w", name, err)
	}
	return d, nil
}

type copyResult struct {
	sum  [sha256.Size]byte
	size int64
	head []byte // the first headLen bytes (fewer if the stream is shorter)
}

// copyHashed copies src to dst and hashes it, reading, hashing and writing concurrently.
// It refuses content detectFormat recognises as clearly wrong as soon as the first
// chunk is in, so a mistaken upload of gigabytes stops early.
func copyHashed(ctx context.Context, dst io.Writer, src io.Reader) (copyResult, error) {
	h := sha256.New()
	n, head, err := transfer.CopyHashed(ctx, dst, src, h, transfer.Options{HeadLen: headLen,
		Inspect: func(head []byte) error { _, _, err := detectFormat(head, -1); return err }})
	res := copyResult{size: n, head: head}
	h.Sum(res.sum[:0])
	var rerr *transfer.ReadError
	var werr *transfer.WriteError
	switch {
	case err == nil:
	case errors.As(err, &rerr):
		err = fmt.Errorf("%w: reading the image failed after %d bytes (%w); nothing was stored, send it again", errdefs.ErrBadRequest, n, rerr.Err)
	case errors.As(err, &werr):
		err = fmt.Errorf("write the image to the pool: %w", werr.Err)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		err = fmt.Errorf("import interrupted: %w", err)
	}
	return res, err
}
