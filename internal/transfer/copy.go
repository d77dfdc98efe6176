// Package transfer moves image bytes: a copy that reads, hashes and writes at once,
// for the Repository's image import and the Manager's staging alike.
package transfer

import (
	"context"
	"hash"
	"io"
	"os"
	"sync/atomic"
)

// The pipeline: the caller's goroutine reads chunkSize pieces into a ring of nChunks
// buffers; one goroutine hashes them and another writes them, in parallel, so a copy
// runs at the speed of the slowest of reading, hashing and writing rather than their
// sum.
const (
	chunkSize = 1 << 20
	nChunks   = 4
	// writebackEvery: how much written data to let pile up in the page cache before
	// asking the kernel to start writing it out (see StartWriteback), so the fsync at
	// the end has little left to do.
	writebackEvery = 8 << 20
)

// ReadError is a failure reading the source: the bytes before it were copied.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// WriteError is a failure writing the destination.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }

// Options tune CopyHashed.
type Options struct {
	// Offset is where dst stands when the copy starts (a resumed download), for the
	// writeback ranges of an *os.File.
	Offset int64
	// HeadLen bytes from the start are kept and returned; Inspect, when set, sees them
	// as soon as they are in and may refuse them, so a mistaken transfer of gigabytes
	// stops early.
	HeadLen int
	Inspect func(head []byte) error
	// NoWriteback: no early write-back of an *os.File destination (its caller syncs
	// it later, or not at all).
	NoWriteback bool
	// Written, when set, is told after every write how many bytes this copy has
	// written so far (from the writing goroutine): a caller that checks pieces of the
	// file itself learns which are complete.
	Written func(n int64)
}

// CopyHashed copies src to dst while h (nil: none) hashes the same bytes. It returns how many
// bytes were copied and the first HeadLen of them; on an error, what was written
// before it stays (a caller may resume from there). A source that ends with
// io.ErrUnexpectedEOF (a truncated HTTP body) fails as a *ReadError: a cut-short
// transfer is never taken for a complete one.
func CopyHashed(ctx context.Context, dst io.Writer, src io.Reader, h hash.Hash, opt Options) (n int64, head []byte, err error) {
	hashQ := make(chan []byte, nChunks)
	writeQ := make(chan []byte, nChunks)
	hashDone := make(chan struct{}, nChunks)
	writeDone := make(chan struct{}, nChunks)
	hashExit := make(chan struct{})
	writeExit := make(chan struct{})
	var writeErr error
	var writeFailed atomic.Bool
	go func() {
		defer close(hashExit)
		for b := range hashQ {
			if h != nil {
				h.Write(b)
			}
			hashDone <- struct{}{}
		}
	}()
	go func() {
		defer close(writeExit)
		f, _ := dst.(*os.File)
		if opt.NoWriteback {
			f = nil
		}
		written, flushed := opt.Offset, opt.Offset
		for b := range writeQ {
			if writeErr == nil {
				if _, err := dst.Write(b); err != nil {
					writeErr = err
					writeFailed.Store(true)
				}
				written += int64(len(b))
				if f != nil && written-flushed >= writebackEvery {
					StartWriteback(f, flushed, written-flushed)
					flushed = written
				}
				if opt.Written != nil && writeErr == nil {
					opt.Written(written - opt.Offset)
				}
			}
			writeDone <- struct{}{}
		}
	}()

	buf := make([]byte, nChunks*chunkSize)
	for i := 0; ; i++ {
		if i >= nChunks {
			// Chunks are handled in order: after one more signal from each, chunk
			// i-nChunks (whose buffer is reused now) is hashed and written.
			<-hashDone
			<-writeDone
		}
		if writeFailed.Load() {
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
		b := buf[(i%nChunks)*chunkSize : (i%nChunks+1)*chunkSize]
		got, rerr := fill(src, b)
		if got > 0 {
			if len(head) < opt.HeadLen {
				head = append(head, b[:min(got, opt.HeadLen-len(head))]...)
				if len(head) == opt.HeadLen && opt.Inspect != nil {
					if err = opt.Inspect(head); err != nil {
						break
					}
				}
			}
			n += int64(got)
			hashQ <- b[:got]
			writeQ <- b[:got]
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			err = &ReadError{Err: rerr}
			break
		}
	}
	close(hashQ)
	close(writeQ)
	<-hashExit
	<-writeExit
	if err == nil && writeErr != nil {
		err = &WriteError{Err: writeErr}
	}
	return n, head, err
}

// fill reads until b is full, the reader ends (io.EOF) or fails. Unlike io.ReadFull it
// passes a reader's own io.ErrUnexpectedEOF on as an error.
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
