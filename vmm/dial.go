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
// virConnectOpen has no bound of its own: a libvirtd that accepts connections but never answers (stopped, or
// deadlocked) would hold every caller, and a thread in C each, for good. A dial
// that outlives its wait finishes in the background (its connection is closed
// then); until it does, further dials of the same URI fail at once instead of piling
// up more threads behind it.
func dial(ctx context.Context, uri string, timeout time.Duration) (*libvirt.Connect, error) {
	g := gateOf(uri)
	if since, stuck := g.stuckSince(); stuck {
		return nil, &silentError{uri: uri, silent: time.Since(since)}
	}
	type result struct {
		c   *libvirt.Connect
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		c, err := libvirt.NewConnect(uri)
		done <- result{c, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.c, r.err
	case <-timer.C:
		g.stick(start)
	case <-ctx.Done():
	}
	go func() {
		if r := <-done; r.c != nil {
			r.c.Close()
		}
		g.unstick(start)
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, &silentError{uri: uri, silent: time.Since(start)}
}

// dialGate remembers a dial of one URI that outlived its wait and is still pending.
type dialGate struct {
	mu    sync.Mutex
	stuck time.Time // start of the pending dial; zero when none
}

var gates sync.Map // URI → *dialGate

func gateOf(uri string) *dialGate {
	g, _ := gates.LoadOrStore(uri, &dialGate{})
	return g.(*dialGate)
}

func (g *dialGate) stuckSince() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stuck, !g.stuck.IsZero()
}

func (g *dialGate) stick(start time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stuck.IsZero() {
		g.stuck = start
	}
}

func (g *dialGate) unstick(start time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stuck.Equal(start) {
		g.stuck = time.Time{}
	}
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
