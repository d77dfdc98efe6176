package manager

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/vws-grid/vws/internal/chunkhash"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/transfer"
)

// DefaultFetchStreams is how many HTTP range requests stage an image whose manifest
// lists its pieces, when the configuration names no number: one TCP stream is
// limited by one connection's window and one core's copy and hash, and several are
// what GridFTP users expect of a WAN link.
const DefaultFetchStreams = 4

const (
	// pieceBuffer is what a stream reads and writes at a time: it stays in a core's
	// cache in between (BenchmarkFetch: 1 MiB buffers were a fifth slower).
	pieceBuffer = 256 << 10
	// pieceWritebackEvery: how much of a piece to write before asking the kernel to
	// start writing it out, so that the fsync before the rename has little left.
	pieceWritebackEvery = 8 << 20
)

// integrityAdvice is what a caller whose image is refused is told to do.
const integrityAdvice = "the repository's copy is damaged or was substituted: nothing was defined or booted; tell the repository's administrator"

// errRangeIgnored: the server answered a range request with the whole image; the
// caller fetches it in one stream instead.
var errRangeIgnored = errors.New("the server ignores range requests")

// fetchStreams is how many range requests run at once for one image (1: one GET,
// also a zero repoClient's).
func (c *repoClient) fetchStreams() int { return max(c.streams, 1) }

// configuredStreams is Config.FetchStreams with its default.
func configuredStreams(n int) int {
	if n <= 0 {
		return DefaultFetchStreams
	}
	return n
}

// fetchPieces brings f, the .part file of img, to the whole image with up to
// fetchStreams() parallel range requests, each for a run of missing pieces of the
// manifest's list (one piece each, unless the image has many: spansOf), and checks
// every piece as soon as it is written. What an earlier attempt left is kept piece by
// piece: every whole piece that matches, wherever it lies, and only the others are
// asked for.
//
// A piece that differs is a *chunkhash.MismatchError (the transfer stops at once); a
// server that ignores Range is errRangeIgnored, with f cut to the matching pieces it
// begins with. Other errors leave f to be resumed.
func (c *repoClient) fetchPieces(ctx context.Context, img *manifestImage, token string, f *os.File, progress progressFunc, writeback bool) error {
	l := img.Chunks
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size > l.Size { // not a part of this image: start over
		if err := f.Truncate(0); err != nil {
			return err
		}
		size = 0
	}
	good, err := matchingPieces(ctx, f, l, size)
	if err != nil {
		return fmt.Errorf("read partial %s: %w", f.Name(), err)
	}
	prog := &sharedProgress{total: l.Size, fn: progress}
	var missing []int
	for i, ok := range good {
		if ok {
			prog.done += pieceLen(l, i)
		} else {
			missing = append(missing, i)
		}
	}
	prog.add(0)
	if len(missing) == 0 {
		return nil
	}

	spans := spansOf(missing, c.fetchStreams())
	jobs := make(chan span, len(spans))
	for _, sp := range spans {
		jobs <- sp
	}
	close(jobs)
	pieceCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range min(c.fetchStreams(), len(spans)) {
		wg.Go(func() {
			buf := make([]byte, pieceBuffer)
			for sp := range jobs {
				if pieceCtx.Err() != nil {
					return
				}
				// good[i] is written by the one stream holding piece i, read after wg.Wait.
				if err := c.fetchSpan(pieceCtx, img, token, f, sp, buf, prog, writeback, func(i int) { good[i] = true }); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					stop() // a bad piece, a refused range or a failed stream: the rest need not come
					return
				}
			}
		})
	}
	wg.Wait()
	// A stream stops silently between pieces once ctx is done: whatever the
	// streams say, every piece must be there before the file may be committed.
	for i := 0; firstErr == nil && i < len(good); i++ {
		if !good[i] {
			firstErr = fmt.Errorf("fetch %s image from %s (resumable): piece %d did not come: %w", img.Role, img.Location, i, cmp.Or(ctx.Err(), errors.New("no stream took it")))
		}
	}
	if errors.Is(firstErr, errRangeIgnored) {
		// The single stream resumes from a prefix: keep the matching pieces it begins with.
		keep := int64(0)
		for i := 0; i < len(good) && good[i]; i++ {
			keep += pieceLen(l, i)
		}
		if err := f.Truncate(keep); err != nil {
			return err
		}
	}
	return firstErr
}

// span is the pieces [first, first+count) of an image, asked for in one range request.
type span struct{ first, count int }

// spansPerStream bounds how many requests one image costs: each is a round trip, an
// authorization and an audit record at the Repository, so a large image's pieces go
// in runs (at most about streams×spansPerStream requests), while a small one still
// gets a request per piece and slow streams leave their share to the others.
const spansPerStream = 4

// spansOf groups the missing pieces (ascending) into runs of consecutive ones, each
// at most ceil(len(missing) / (streams×spansPerStream)) long.
func spansOf(missing []int, streams int) []span {
	most := max(1, (len(missing)+streams*spansPerStream-1)/(streams*spansPerStream))
	var out []span
	for _, i := range missing {
		if n := len(out); n > 0 && out[n-1].first+out[n-1].count == i && out[n-1].count < most {
			out[n-1].count++
			continue
		}
		out = append(out, span{first: i, count: 1})
	}
	return out
}

// fetchSpan GETs the pieces of sp into f in one range request, and checks each
// against the list as soon as it is written (done is told which matched).
func (c *repoClient) fetchSpan(ctx context.Context, img *manifestImage, token string, f *os.File, sp span, buf []byte, prog *sharedProgress, writeback bool, done func(piece int)) error {
	l := img.Chunks
	start := int64(sp.first) * l.ChunkBytes
	last := sp.first + sp.count - 1
	end := int64(last)*l.ChunkBytes + pieceLen(l, last) // exclusive
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, img.Location, nil)
	if err != nil {
		return fmt.Errorf("%w: image location %q: %w", errdefs.ErrImageIntegrity, img.Location, err)
	}
	if token != "" {
		req.Header.Set(lockHeader, token)
	}
	want := fmt.Sprintf("bytes=%d-%d", start, end-1)
	req.Header.Set("Range", want)
	resp, err := c.transfer(req)
	if err != nil {
		return fmt.Errorf("fetch %s image from %s (resumable), %s: %w", img.Role, img.Location, want, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusRequestedRangeNotSatisfiable:
		// The pieces lie within the manifest's size: the copy ends before them.
		return wrongCopyError(img, resp)
	case http.StatusPartialContent:
		if wrongLength(resp, l.Size) { // before the range: a short copy answers a shorter one
			return wrongCopyError(img, resp)
		}
		// Only the bytes asked for may land in the pieces' places.
		cr := resp.Header.Get("Content-Range")
		if !strings.HasPrefix(cr, fmt.Sprintf("bytes %d-%d/", start, end-1)) {
			return fmt.Errorf("fetch %s image from %s (resumable), %s: the server answered with Content-Range %q", img.Role, img.Location, want, cr)
		}
	case http.StatusOK:
		return errRangeIgnored
	default:
		return fetchStatusError(fmt.Sprintf("fetch %s image from %s (resumable), %s", img.Role, img.Location, want), resp)
	}
	for i := sp.first; i <= last; i++ {
		if err := c.readPiece(ctx, img, resp.Body, f, i, buf, prog, want, writeback); err != nil {
			return err
		}
		done(i)
	}
	return nil
}

// readPiece copies piece i from body (positioned at its start) into its place in f,
// asking for write-back on the way when told to, and checks it against the list.
func (c *repoClient) readPiece(ctx context.Context, img *manifestImage, body io.Reader, f *os.File, i int, buf []byte, prog *sharedProgress, want string, writeback bool) error {
	l := img.Chunks
	off, n := int64(i)*l.ChunkBytes, pieceLen(l, i)
	var done, flushed int64
	for done < n {
		k, rerr := io.ReadFull(body, buf[:min(int64(len(buf)), n-done)])
		if k > 0 {
			if _, err := f.WriteAt(buf[:k], off+done); err != nil {
				return fmt.Errorf("stage %s image: %w", img.Role, err)
			}
			done += int64(k)
			prog.add(int64(k))
			if writeback && done-flushed >= pieceWritebackEvery {
				transfer.StartWriteback(f, off+flushed, done-flushed)
				flushed = done
			}
		}
		if rerr != nil && done < n {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("fetch %s image from %s (resumable), %s: piece %d: %d of %d bytes came: %w", img.Role, img.Location, want, i, done, n, rerr)
		}
	}
	if writeback && done > flushed {
		transfer.StartWriteback(f, off+flushed, done-flushed)
	}
	// Read back from the page cache (mapped, not copied): hashing the bytes in the
	// buffer on their way instead measured no faster (BenchmarkFetch, 4 streams: 1,090
	// against 1,130 MB/s), and this checks what the file holds.
	err := chunkhash.Verify(ctx, f, l, i, i+1)
	var mismatch *chunkhash.MismatchError
	if err != nil && !errors.As(err, &mismatch) {
		return fmt.Errorf("fetch %s image from %s (resumable), %s: checking piece %d: %w", img.Role, img.Location, want, i, err)
	}
	return err
}

// matchingPieces says which pieces of l the first size bytes of f hold whole and
// matching, checked on every core.
func matchingPieces(ctx context.Context, f *os.File, l chunkhash.List, size int64) ([]bool, error) {
	good := make([]bool, len(l.Digests))
	whole := 0 // pieces [0, whole) lie within size
	for whole < len(l.Digests) && int64(whole)*l.ChunkBytes+pieceLen(l, whole) <= size {
		whole++
	}
	if whole == 0 {
		return good, nil
	}
	next := make(chan int, whole)
	for i := range whole {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(chunkhash.Workers(), whole) {
		wg.Go(func() {
			for i := range next {
				// An error is a piece to fetch again, whatever made it.
				good[i] = chunkhash.Verify(ctx, f, l, i, i+1) == nil
			}
		})
	}
	wg.Wait()
	return good, ctx.Err()
}

func pieceLen(l chunkhash.List, i int) int64 {
	return min(l.ChunkBytes, l.Size-int64(i)*l.ChunkBytes)
}

// sharedProgress sums the bytes of every stream for one progressFunc, which sees
// them one call at a time and never going back.
type sharedProgress struct {
	mu          sync.Mutex
	done, total int64
	fn          progressFunc
}

func (p *sharedProgress) add(n int64) {
	if p.fn == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.fn(p.done, p.total)
}
