// Package chunkhash lists and checks the SHA-256 digests of an image's fixed-size
// pieces. One SHA-256 stream runs at one core's speed (about 1.5 GB/s here), slower
// than the kernel copies a file; the pieces of a file are hashed on every core at once.
// A list signed together with the image's whole-file digest (the Repository's
// manifest) proves the bytes as well as that digest does.
package chunkhash

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
)

// DefaultChunkBytes is the piece length the image pool lists: large enough that a
// manifest of a 100 GiB image lists 3,200 digests, small enough to spread a 512 MiB
// image over 16 pieces.
const DefaultChunkBytes = 32 << 20

// Bounds on a list's piece length, so that a hostile manifest can neither make a
// manager hash in tiny pieces nor map more than this at once.
const (
	MinChunkBytes = 1 << 20
	MaxChunkBytes = 1 << 30
)

// List is the digests of the ChunkBytes-long pieces of a Size-byte file, in order; the
// last piece may be shorter.
type List struct {
	ChunkBytes int64
	Size       int64
	Digests    [][sha256.Size]byte
}

// Count is how many pieces a size-byte file has at chunkBytes each.
func Count(size, chunkBytes int64) int {
	if size <= 0 {
		return 0
	}
	return int((size + chunkBytes - 1) / chunkBytes)
}

// Empty reports whether l lists nothing (an image without a list).
func (l List) Empty() bool { return l.ChunkBytes == 0 }

// Text is the digests as space-separated lowercase hex, as a manifest carries them.
func (l List) Text() string {
	var b strings.Builder
	b.Grow(len(l.Digests) * (2*sha256.Size + 1))
	for i, d := range l.Digests {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(hex.EncodeToString(d[:]))
	}
	return b.String()
}

// Parse reads a list from its Text, checking it against the file it claims to cover.
func Parse(chunkBytes, size int64, text string) (List, error) {
	if chunkBytes < MinChunkBytes || chunkBytes > MaxChunkBytes {
		return List{}, fmt.Errorf("chunk length %d is outside %d–%d bytes", chunkBytes, MinChunkBytes, MaxChunkBytes)
	}
	if size < 0 {
		return List{}, fmt.Errorf("negative size %d", size)
	}
	fields := strings.Fields(text)
	if want := Count(size, chunkBytes); len(fields) != want {
		return List{}, fmt.Errorf("%d chunk digests for %d bytes in %d-byte chunks, which make %d", len(fields), size, chunkBytes, want)
	}
	l := List{ChunkBytes: chunkBytes, Size: size, Digests: make([][sha256.Size]byte, len(fields))}
	for i, f := range fields {
		if len(f) != 2*sha256.Size {
			return List{}, fmt.Errorf("chunk digest %d is not 64 hex digits", i)
		}
		if _, err := hex.Decode(l.Digests[i][:], []byte(f)); err != nil {
			return List{}, fmt.Errorf("chunk digest %d: %w", i, err)
		}
	}
	return l, nil
}

// Writer computes the List of what is written to it, in one stream (for a pipeline
// that already reads the bytes once).
type Writer struct {
	chunk   int64
	h       hash.Hash
	inChunk int64
	size    int64
	digests [][sha256.Size]byte
}

// NewWriter starts a list of chunkBytes-long pieces.
func NewWriter(chunkBytes int64) *Writer {
	return &Writer{chunk: chunkBytes, h: sha256.New()}
}

func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(int64(len(p)), w.chunk-w.inChunk)
		w.h.Write(p[:k])
		w.inChunk += k
		w.size += k
		p = p[k:]
		if w.inChunk == w.chunk {
			w.seal()
		}
	}
	return n, nil
}

func (w *Writer) seal() {
	var d [sha256.Size]byte
	w.h.Sum(d[:0])
	w.digests = append(w.digests, d)
	w.h.Reset()
	w.inChunk = 0
}

// List ends the last piece and returns the list; the Writer is done.
func (w *Writer) List() List {
	if w.inChunk > 0 {
		w.seal()
	}
	return List{ChunkBytes: w.chunk, Size: w.size, Digests: w.digests}
}

// MismatchError says which piece of a file differs from its list.
type MismatchError struct {
	Chunk        int
	Offset, Size int64
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("bytes %d–%d (chunk %d) differ from the listed digest", e.Offset, e.Offset+e.Size-1, e.Chunk)
}

// Workers is how many pieces are hashed at once: one per CPU this process may use.
func Workers() int { return max(1, runtime.GOMAXPROCS(0)) }

// File computes the list of the file at path, hashing pieces on every core.
func File(ctx context.Context, path string, chunkBytes int64) (List, error) {
	if chunkBytes < MinChunkBytes || chunkBytes > MaxChunkBytes {
		return List{}, fmt.Errorf("chunk length %d is outside %d–%d bytes", chunkBytes, MinChunkBytes, MaxChunkBytes)
	}
	f, err := os.Open(path)
	if err != nil {
		return List{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return List{}, err
	}
	l := List{ChunkBytes: chunkBytes, Size: fi.Size(), Digests: make([][sha256.Size]byte, Count(fi.Size(), chunkBytes))}
	err = forEach(ctx, f, l, 0, len(l.Digests), func(i int, sum [sha256.Size]byte) error {
		l.Digests[i] = sum
		return nil
	})
	if err != nil {
		return List{}, err
	}
	return l, nil
}

// Verify checks pieces [from, to) of f against l, on every core. A piece that
// differs is a *MismatchError; the first one found is returned.
func Verify(ctx context.Context, f *os.File, l List, from, to int) error {
	if from < 0 || to > len(l.Digests) || from > to {
		return fmt.Errorf("chunks %d–%d are outside the list of %d", from, to, len(l.Digests))
	}
	return forEach(ctx, f, l, from, to, func(i int, sum [sha256.Size]byte) error {
		if sum != l.Digests[i] {
			off := int64(i) * l.ChunkBytes
			return &MismatchError{Chunk: i, Offset: off, Size: min(l.ChunkBytes, l.Size-off)}
		}
		return nil
	})
}

// VerifyFile checks the whole file at path against l: its size, then every piece.
func VerifyFile(ctx context.Context, path string, l List) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != l.Size {
		return fmt.Errorf("the file has %d bytes, the list covers %d", fi.Size(), l.Size)
	}
	return Verify(ctx, f, l, 0, len(l.Digests))
}

// errStop ends the other workers once one has failed.
var errStop = errors.New("stopped")

// forEach hashes pieces [from, to) of f (l gives their length and the file's size)
// on Workers() goroutines and hands each digest to fn, which may run concurrently
// for different pieces.
func forEach(ctx context.Context, f *os.File, l List, from, to int, fn func(i int, sum [sha256.Size]byte) error) error {
	if from == to {
		return nil
	}
	next := make(chan int, to-from)
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	for range min(Workers(), to-from) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newPieceReader(f)
			defer r.close()
			for i := range next {
				if failed() {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				off := int64(i) * l.ChunkBytes
				sum, err := r.sum(off, min(l.ChunkBytes, l.Size-off))
				if err == nil {
					err = fn(i, sum)
				}
				if err != nil {
					fail(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// sumSection hashes n bytes of f from off by reading them.
func sumSection(f *os.File, off, n int64) (sum [sha256.Size]byte, err error) {
	h := sha256.New()
	got, err := io.Copy(h, io.NewSectionReader(f, off, n))
	if err != nil {
		return sum, err
	}
	if got != n {
		return sum, fmt.Errorf("bytes %d–%d: the file ends after %d of them", off, off+n-1, got)
	}
	h.Sum(sum[:0])
	return sum, nil
}
