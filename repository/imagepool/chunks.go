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
	"sync"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
)

// A pool image's chunk list (internal/chunkhash) goes into the signed manifest so that a
// manager checks the image's pieces on every core instead of one SHA-256 stream. A list
// vouches for bytes only as far as the bytes it was computed from had the image's
// digest, so it is always computed in the same pass over the blob as the whole-file
// SHA-256, and stored only when that matches the digest the image is recorded under.
//
// After an import the pool computes it in the background (yielding while other imports
// stream, so as not to slow them); Chunks computes it at once for an image without one
// (imported before lists existed, or asked for before the background job got to it).

// chunkReadBytes is how much of a blob is read at a time while it is hashed.
const chunkReadBytes = 4 << 20

// chunkJob is the one computation of a digest's list that callers share.
type chunkJob struct {
	done   chan struct{} // closed when list and err are set
	list   chunkhash.List
	err    error
	cancel context.CancelFunc
	// urgent is closed once a caller waits for the job: it stops yielding to imports.
	urgent     chan struct{}
	urgentOnce sync.Once
}

func (j *chunkJob) hurry() { j.urgentOnce.Do(func() { close(j.urgent) }) }

// Chunks returns the chunk list of the pool image with this digest ("sha256:<hex>" or
// bare hex): the stored one, or, when none is stored yet, one computed now from the
// blob in the same pass as its whole-file digest, stored and returned. Concurrent
// callers for one digest share one computation. errdefs.ErrResourceUnknown when the
// pool does not hold the image; errdefs.ErrImageIntegrity when its blob no longer
// hashes to its digest (nothing is stored then).
func (p *Pool) Chunks(ctx context.Context, digest string) (chunkhash.List, error) {
	d, err := ParseDigest(digest)
	if err != nil {
		return chunkhash.List{}, err
	}
	if l, _, ok, err := p.storedChunks(ctx, d); err != nil || ok {
		return l, err
	}
	job := p.startChunks(d)
	if job == nil {
		return chunkhash.List{}, fmt.Errorf("chunk digests of image %s: the image pool is closed", d)
	}
	job.hurry()
	select {
	case <-job.done:
		return job.list, job.err
	case <-ctx.Done():
		return chunkhash.List{}, fmt.Errorf("chunk digests of image %s: %w", d, ctx.Err())
	}
}

// storedChunks reads the list stored for digest d and the image's recorded size; ok
// is false when none is stored (or the stored one does not parse, which is logged and
// then computed again).
func (p *Pool) storedChunks(ctx context.Context, d string) (l chunkhash.List, size int64, ok bool, err error) {
	var chunkBytes int64
	var text string
	err = p.db.QueryRowContext(ctx, `SELECT size, chunk_bytes, chunk_digests FROM images WHERE digest = $1`, d).Scan(&size, &chunkBytes, &text)
	if errors.Is(err, sql.ErrNoRows) {
		return l, 0, false, fmt.Errorf("%w: the image pool holds no image %s", errdefs.ErrResourceUnknown, d)
	}
	if err != nil {
		return l, 0, false, fmt.Errorf("look up image %s: %w", d, err)
	}
	if chunkBytes == 0 {
		return l, size, false, nil
	}
	if l, err = chunkhash.Parse(chunkBytes, size, text); err != nil {
		p.log.Warn("image pool: an image's stored chunk digests do not parse; computing them again", "digest", d, "err", err)
		return chunkhash.List{}, size, false, nil
	}
	return l, size, true, nil
}

// startChunks returns the running computation of d's list, starting one if none runs;
// nil once the pool is closed.
func (p *Pool) startChunks(d string) *chunkJob {
	p.chunkMu.Lock()
	defer p.chunkMu.Unlock()
	if p.closed {
		return nil
	}
	if job := p.chunkJobs[d]; job != nil {
		return job
	}
	ctx, cancel := context.WithCancel(p.life)
	job := &chunkJob{done: make(chan struct{}), urgent: make(chan struct{}), cancel: cancel}
	p.chunkJobs[d] = job
	p.jobs.Add(1)
	go func() {
		defer p.jobs.Done()
		defer cancel()
		job.list, job.err = p.computeChunks(ctx, d, job)
		if job.err != nil && ctx.Err() == nil {
			p.log.Warn("image pool: could not list an image's chunk digests", "digest", d, "err", job.err)
		}
		p.chunkMu.Lock()
		if p.chunkJobs[d] == job {
			delete(p.chunkJobs, d)
		}
		p.chunkMu.Unlock()
		close(job.done)
	}()
	return job
}

// stopChunks ends the computation of d's list, if one runs (its image was removed).
func (p *Pool) stopChunks(d string) {
	p.chunkMu.Lock()
	defer p.chunkMu.Unlock()
	if job := p.chunkJobs[d]; job != nil {
		job.cancel()
	}
}

// computeChunks hashes the blob of d once, feeding the same bytes to the whole-file
// SHA-256 and to the chunk list, and stores the list if the whole digest is d and the
// size the recorded one.
func (p *Pool) computeChunks(ctx context.Context, d string, job *chunkJob) (chunkhash.List, error) {
	l, size, ok, err := p.storedChunks(ctx, d)
	if err != nil || ok { // another job stored it meanwhile
		return l, err
	}
	path := p.blobPath(d)
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, _, _, err := p.storedChunks(ctx, d); err != nil {
				return chunkhash.List{}, err // removed meanwhile
			}
		}
		return chunkhash.List{}, errdefs.WithAdvice(
			fmt.Errorf("%w: image %s is recorded but its file is unreadable (%v)", errdefs.ErrImageIntegrity, d, err),
			"restore "+path+" from a good copy of the image, or remove the image and import it again")
	}
	defer f.Close()
	p.hashed.Add(1)
	sum, l, err := p.hashBlob(ctx, f, job)
	if err != nil {
		if ctx.Err() != nil {
			return chunkhash.List{}, fmt.Errorf("chunk digests of image %s: %w", d, ctx.Err())
		}
		return chunkhash.List{}, fmt.Errorf("chunk digests of image %s: read %s: %w", d, path, err)
	}
	if got := digestPrefix + hex.EncodeToString(sum[:]); got != d || l.Size != size {
		return chunkhash.List{}, errdefs.WithAdvice(
			fmt.Errorf("%w: the pool's copy of image %s is damaged: its file %s now holds %d bytes hashing to %s (%d bytes were imported); no chunk digests are listed for it",
				errdefs.ErrImageIntegrity, d, path, l.Size, got, size),
			"restore the file from a good copy of the image (its sha256 must be "+d[len(digestPrefix):]+"), or, once no workspace uses it, remove the image (vws image remove) and import it again")
	}
	// The row may have gone (the image removed) or been made again for the same
	// content meanwhile: either way the list is right for d.
	if _, err := p.db.ExecContext(ctx, `UPDATE images SET chunk_bytes = $1, chunk_digests = $2 WHERE digest = $3 AND size = $4`,
		l.ChunkBytes, l.Text(), d, size); err != nil {
		p.log.Warn("image pool: could not store an image's chunk digests; they are computed again when next needed", "digest", d, "err", err)
	}
	return l, nil
}

// hashBlob reads f to its end once, hashing each block with the whole-file SHA-256 and
// the chunk list's Writer on two goroutines while the next block is read.
func (p *Pool) hashBlob(ctx context.Context, f *os.File, job *chunkJob) (sum [sha256.Size]byte, l chunkhash.List, err error) {
	whole := sha256.New()
	pieces := chunkhash.NewWriter(p.chunkBytes)
	bufs := [2][]byte{make([]byte, chunkReadBytes), make([]byte, chunkReadBytes)}
	read := func(buf []byte) (n int, end bool, err error) {
		n, err = io.ReadFull(f, buf)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return n, true, nil
		}
		return n, false, err
	}
	n, end, err := read(bufs[0])
	if err != nil {
		return sum, l, err
	}
	var wg sync.WaitGroup
	for cur := 0; n > 0; cur ^= 1 {
		if err := p.yieldToImports(ctx, job); err != nil {
			return sum, l, err
		}
		b := bufs[cur][:n]
		wg.Add(2)
		go func() { defer wg.Done(); whole.Write(b) }()
		go func() { defer wg.Done(); pieces.Write(b) }()
		next, nextEnd := 0, true
		var rerr error
		if !end {
			next, nextEnd, rerr = read(bufs[cur^1])
		}
		wg.Wait()
		if rerr != nil {
			return sum, l, rerr
		}
		n, end = next, nextEnd
	}
	whole.Sum(sum[:0])
	return sum, pieces.List(), nil
}

// yieldToImports waits while imports stream, so that background hashing does not take
// their cores, unless a caller waits for job. It fails when ctx ends.
func (p *Pool) yieldToImports(ctx context.Context, job *chunkJob) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.importMu.Lock()
		idle := p.idle
		p.importMu.Unlock()
		if idle == nil {
			return nil
		}
		select {
		case <-idle:
		case <-job.urgent:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// importing counts an import as streaming until the returned func is called.
func (p *Pool) importing() func() {
	p.importMu.Lock()
	p.imports++
	if p.imports == 1 {
		p.idle = make(chan struct{})
	}
	p.importMu.Unlock()
	return func() {
		p.importMu.Lock()
		p.imports--
		if p.imports == 0 {
			close(p.idle)
			p.idle = nil
		}
		p.importMu.Unlock()
	}
}

// Close stops the pool's background work (chunk lists being computed) and waits for
// it; lists not stored yet are computed when next asked for. The pool still serves
// imports and reads, but computes no list any more. Close it before its database.
func (p *Pool) Close() error {
	p.chunkMu.Lock()
	p.closed = true
	p.chunkMu.Unlock()
	p.stop()
	p.jobs.Wait()
	return nil
}
