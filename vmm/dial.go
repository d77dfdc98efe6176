package vmm

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/vws-grid/vws/internal/errdefs"
)

// DefaultTimeout is how long libvirtd may leave the manager without an answer (to a
// new connection, or to a probe while a call is under way) before the manager gives
// up on it. A long save or boot does not count as silence as long as libvirtd
// answers probes meanwhile; a stopped or deadlocked libvirtd does.
const DefaultTimeout = 20 * time.Second

// dial opens uri, waiting for libvirtd at most timeout (and while ctx lasts).
// virConnectOpen has no bound of its own: a libvirtd that accepts connections but
// never answers (stopped, or deadlocked) would hold every caller, and a thread in C
// each, for good. So one dial of a URI runs at a time: a caller finding one under
// way waits for it to end (within its own bound) before dialling, and fails at once
// when it has outlived that bound already. A dial whose caller stopped waiting
// finishes in the background, its connection closed then.
func dial(ctx context.Context, uri string, timeout time.Duration) (*libvirt.Connect, error) {
	g := gateOf(uri)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		if g.pending == nil {
			break // g.mu held: this caller dials
		}
		pending, since := g.pending, g.since
		g.mu.Unlock()
		if time.Since(since) >= timeout {
			return nil, &silentError{uri: uri, silent: time.Since(since)}
		}
		select {
		case <-pending:
		case <-deadline.C:
			return nil, &silentError{uri: uri, silent: time.Since(since)}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ended := make(chan struct{})
	start := time.Now()
	g.pending, g.since = ended, start
	g.mu.Unlock()

	type result struct {
		c   *libvirt.Connect
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := libvirt.NewConnect(uri)
		g.mu.Lock()
		g.pending = nil
		close(ended)
		g.mu.Unlock()
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-deadline.C:
	case <-ctx.Done():
	}
	go func() {
		if r := <-done; r.c != nil {
			r.c.Close()
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, &silentError{uri: uri, silent: time.Since(start)}
}

// dialGate is the dial of one URI under way, if any.
type dialGate struct {
	mu      sync.Mutex
	pending chan struct{} // closed when the dial under way returns; nil when none is
	since   time.Time     // when it began
}

var gates sync.Map // URI → *dialGate

func gateOf(uri string) *dialGate {
	g, _ := gates.LoadOrStore(uri, &dialGate{})
	return g.(*dialGate)
}

// silentError is libvirtd accepting a connection but not answering on it.
type silentError struct {
	uri    string
	silent time.Duration
}

func (e *silentError) Error() string {
	return fmt.Sprintf("libvirtd at %s accepts connections but has not answered for %s: it may be stopped or deadlocked (systemctl status libvirtd)",
		e.uri, e.silent.Round(time.Second))
}

func (e *silentError) Unwrap() error { return errdefs.ErrHypervisor }

// isSilent reports whether err is libvirtd not answering (a dial or probe that
// timed out).
func isSilent(err error) bool {
	var s *silentError
	return errors.As(err, &s)
}
