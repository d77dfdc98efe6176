package manager

import (
	"context"
	"hash"
	"io"
	"os"
	"sync/atomic"
)

// The staging pipeline: the caller's goroutine reads copyChunk pieces of the download
// into a ring of copyChunks buffers; one goroutine hashes them while another writes
// them, so staging runs at the speed of the slowest of receiving, hashing and writing
// rather than their sum (the Repository's image import does the same).
const (
	copyChunk  = 1 << 20
	copyChunks = 4
	// writebackEvery: how much written data may pile up in the page cache before the
	// kernel is asked to start writing it out, so the final fsync has little left.
	writebackEvery = 8 << 20
)

// copyHashed copies src to f (at its current offset, which is off) while h hashes the
// same bytes. It returns how many bytes were copied; on an error, what was written
// before it stays (the caller resumes from there).
func copyHashed(ctx context.Context, f *os.File, off int64, h hash.Hash, src io.Reader) (int64, error) {
	hashQ := make(chan []byte, copyChunks)
	writeQ := make(chan []byte, copyChunks)
	hashDone := make(chan struct{}, copyChunks)
	writeDone := make(chan struct{}, copyChunks)
	hashExit := make(chan struct{})
	writeExit := make(chan struct{})
	var writeErr error
	var writeFailed atomic.Bool
	go func() {
		defer close(hashExit)
		for b := range hashQ {
			h.Write(b)
			hashDone <- struct{}{}
		}
	}()
	go func() {
		defer close(writeExit)
		written, flushed := off, off
		for b := range writeQ {
			if writeErr == nil {
				if _, err := f.Write(b); err != nil {
					writeErr = err
					writeFailed.Store(true)
				}
				written += int64(len(b))
				if written-flushed >= writebackEvery {
					startWriteback(f, flushed, written-flushed)
					flushed = written
				}
			}
			writeDone <- struct{}{}
		}
	}()
	buf := make([]byte, copyChunks*copyChunk)
	var n int64
	var err error
	for i := 0; ; i++ {
		if i >= copyChunks {
			// Chunks are handled in order: one more signal from each means chunk
			// i-copyChunks, whose buffer is reused now, is hashed and written.
			<-hashDone
			<-writeDone
		}
		if writeFailed.Load() {
			break
		}
		if err = ctx.Err(); err != nil {
			break
		}
		b := buf[(i%copyChunks)*copyChunk : (i%copyChunks+1)*copyChunk]
		got, rerr := io.ReadFull(src, b)
		if got > 0 {
			n += int64(got)
			hashQ <- b[:got]
			writeQ <- b[:got]
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(hashQ)
	close(writeQ)
	<-hashExit
	<-writeExit
	if err == nil {
		err = writeErr
	}
	return n, err
}
