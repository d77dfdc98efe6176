package imagepool

import (
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
	"sync/atomic"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
)

// The import pipeline: the caller's goroutine reads chunkSize pieces into a ring of
// nChunks buffers; one goroutine hashes them and another writes them to the temporary
// file, in parallel, so the import runs at the speed of the slowest of reading, hashing
// and writing rather than their sum.
const (
	chunkSize = 1 << 20
	nChunks   = 4
	// writebackEvery: how much written data to let pile up in the page cache before
	// asking the kernel to start writing it out (see startWriteback).
	writebackEvery = 8 << 20
)

// Import stores the image read from r under m.Name with m's metadata. It reads r once:
// the bytes go to a temporary file in the pool directory while they are hashed; when r
// ends, the file is synced and renamed to its digest and the rows are written in one
// transaction. If the pool already holds the same content, the temporary file is
// dropped, the name points at the existing blob, and stored is false.
//
// ctx bounds the streaming; once every byte is in, the import is finished even if ctx
// ends (the client sent it all; it should find it stored).
func (p *Pool) Import(ctx context.Context, r io.Reader, m Meta) (img Image, stored bool, err error) {
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
	// Sync outside the lock, unless the content is already stored (then the temporary
	// file is thrown away and syncing it would only cost time).
	synced := false
	if !p.holds(ctx, digest) {
		if err := tmp.Sync(); err != nil {
			return Image{}, false, fmt.Errorf("sync imported image: %w", err)
		}
		synced = true
	}
	return p.commit(ctx, tmp, synced, &keepTmp, digest, format, res.size, vsize, m)
}

// holds says whether the pool has a recorded, present blob for digest.
func (p *Pool) holds(ctx context.Context, digest string) bool {
	var n int
	if err := p.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE digest = ?`, digest).Scan(&n); err != nil || n == 0 {
		return false
	}
	_, err := os.Stat(p.blobPath(digest))
	return err == nil
}

// commit puts the temporary file in place as the digest's blob, durably (unless the
// pool has that content already), and records the image and its name in one
// transaction.
func (p *Pool) commit(ctx context.Context, tmp *os.File, synced bool, keepTmp *bool, digest, format string, size, vsize int64, m Meta) (Image, bool, error) {
	tmpName := tmp.Name()
	p.mu.Lock()
	defer p.mu.Unlock()
	if d, err := p.nameDigest(ctx, p.db, m.Name); err != nil {
		return Image{}, false, err
	} else if d != "" {
		return Image{}, false, &NameTakenError{Name: m.Name, Digest: d}
	}
	var known int
	err := p.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM images WHERE digest = ?`, digest).Scan(&known)
	if err != nil {
		return Image{}, false, fmt.Errorf("look up digest %s: %w", digest, err)
	}
	blob := p.blobPath(digest)
	stored := true
	if known > 0 {
		if _, err := os.Stat(blob); err == nil {
			stored = false // dedupe: the deferred cleanup removes the temporary file
		} else {
			p.log.Warn("image pool: re-importing content whose blob file was missing", "digest", digest)
		}
	}
	if stored {
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
		if stored {
			p.unlinkNew(blob, known > 0)
		}
		return Image{}, false, fmt.Errorf("record image %q: %w", m.Name, err)
	}
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO images (digest, format, size, virtual_size, created) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (digest) DO NOTHING`, digest, format, size, vsize, now.UnixMilli()); err != nil {
		return fail(err)
	}
	libs := strings.Join(m.Libraries, " ")
	if _, err := tx.ExecContext(ctx, `INSERT INTO image_names (name, digest, os, kernel, arch, libraries, created) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		m.Name, digest, m.OS, m.Kernel, m.Arch, libs, now.UnixMilli()); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	var img Image
	img, err = scanImage(p.db.QueryRowContext(ctx, selectImage+` WHERE n.name = ?`, m.Name))
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
	err := q.QueryRowContext(ctx, `SELECT digest FROM image_names WHERE name = ?`, name).Scan(&d)
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
	var res copyResult
	hashQ := make(chan []byte, nChunks)
	writeQ := make(chan []byte, nChunks)
	hashDone := make(chan struct{}, nChunks)
	writeDone := make(chan struct{}, nChunks)
	sumC := make(chan [sha256.Size]byte, 1)
	writerExit := make(chan struct{})
	var writeErr error
	var writeFailed atomic.Bool

	go func() {
		h := sha256.New()
		for b := range hashQ {
			h.Write(b)
			hashDone <- struct{}{}
		}
		var s [sha256.Size]byte
		h.Sum(s[:0])
		sumC <- s
	}()
	go func() {
		defer close(writerExit)
		f, _ := dst.(*os.File)
		var written, flushed int64
		for b := range writeQ {
			if writeErr == nil {
				if _, err := dst.Write(b); err != nil {
					writeErr = err
					writeFailed.Store(true)
				}
				written += int64(len(b))
				if f != nil && written-flushed >= writebackEvery {
					startWriteback(f, flushed, written-flushed)
					flushed = written
				}
			}
			writeDone <- struct{}{}
		}
	}()

	buf := make([]byte, nChunks*chunkSize)
	var err error
	for i := 0; ; i++ {
		if i >= nChunks {
			// Chunks are handled in order: after one more signal from each, chunk
			// i-nChunks (whose buffer we reuse) is hashed and written.
			<-hashDone
			<-writeDone
		}
		if writeFailed.Load() {
			break
		}
		if err = ctx.Err(); err != nil {
			err = fmt.Errorf("import interrupted: %w", err)
			break
		}
		b := buf[(i%nChunks)*chunkSize : (i%nChunks+1)*chunkSize]
		n, rerr := fill(src, b)
		if n > 0 {
			if len(res.head) < headLen {
				res.head = append(res.head, b[:min(n, headLen-len(res.head))]...)
				if len(res.head) == headLen {
					if _, _, ferr := detectFormat(res.head, -1); ferr != nil {
						err = ferr
						break
					}
				}
			}
			res.size += int64(n)
			hashQ <- b[:n]
			writeQ <- b[:n]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = fmt.Errorf("%w: reading the image failed after %d bytes (%w); nothing was stored, send it again", errdefs.ErrBadRequest, res.size, rerr)
			break
		}
	}
	close(hashQ)
	close(writeQ)
	res.sum = <-sumC
	<-writerExit
	if err == nil && writeErr != nil {
		err = fmt.Errorf("write the image to the pool: %w", writeErr)
	}
	return res, err
}

// fill reads until b is full, the reader ends (io.EOF) or fails. Unlike io.ReadFull it
// passes a reader's own io.ErrUnexpectedEOF (a truncated HTTP body) on as an error, so a
// cut-short upload is never taken for a complete one.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
