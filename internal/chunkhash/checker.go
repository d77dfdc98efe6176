package chunkhash

import (
	"context"
	"fmt"
	"os"
	"sync"
)

// Checker checks the pieces of a file while it is being written: each piece as soon
// as it is complete, on every core, so that a transfer is checked at its own speed and
// not after it (or at one SHA-256 stream's).
type Checker struct {
	f    *os.File
	l    List
	ctx  context.Context
	jobs chan int
	wg   sync.WaitGroup

	next int // the first piece not yet handed out; touched by Written's caller only

	mu  sync.Mutex
	err error
}

// NewChecker starts checking f against l from piece from on (the pieces before it
// were checked already, e.g. those a resumed transfer kept).
func NewChecker(ctx context.Context, f *os.File, l List, from int) *Checker {
	c := &Checker{f: f, l: l, ctx: ctx, jobs: make(chan int, len(l.Digests)), next: from}
	for range Workers() {
		c.wg.Add(1)
		go c.work()
	}
	return c
}

func (c *Checker) work() {
	defer c.wg.Done()
	r := newPieceReader(c.f)
	defer r.close()
	for i := range c.jobs {
		if c.Err() != nil {
			continue // drain
		}
		if err := c.ctx.Err(); err != nil {
			c.fail(err)
			continue
		}
		off := int64(i) * c.l.ChunkBytes
		n := min(c.l.ChunkBytes, c.l.Size-off)
		sum, err := r.sum(off, n)
		switch {
		case err != nil:
			c.fail(err)
		case sum != c.l.Digests[i]:
			c.fail(&MismatchError{Chunk: i, Offset: off, Size: n})
		}
	}
}

func (c *Checker) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// Err is the first failure so far (nil while all is well): a writer may stop early.
func (c *Checker) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Written says the file's first n bytes are written: every piece they complete is
// handed to the checkers. Calls must come from one goroutine, with n growing.
func (c *Checker) Written(n int64) {
	for c.next < len(c.l.Digests) {
		end := min(int64(c.next+1)*c.l.ChunkBytes, c.l.Size)
		if n < end {
			return
		}
		c.jobs <- c.next
		c.next++
	}
}

// Wait ends the check once the writing is over and returns its outcome: the first
// piece that differs, or that the file ended before every piece was written.
func (c *Checker) Wait() error {
	close(c.jobs)
	c.wg.Wait()
	if err := c.Err(); err != nil {
		return err
	}
	if c.next < len(c.l.Digests) {
		return fmt.Errorf("the file ended at chunk %d of %d", c.next, len(c.l.Digests))
	}
	return nil
}
