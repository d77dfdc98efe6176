package vmm

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"libvirt.org/go/libvirt"
)

// A libvirt call waits for libvirtd without a bound of its own. libvirt's keepalive
// would bound it, but libvirt 9.0 (Debian 12) mishandles a connection keepalive
// closes while several threads wait on it: the others hang until libvirtd answers
// again and then touch freed memory (GLib "g_main_loop_quit: assertion 'loop !=
// NULL' failed", then a crash). So the manager keeps keepalive off and watches
// libvirtd itself: a call that takes long makes it dial libvirtd afresh (a probe),
// and a call whose libvirtd does not answer the probe is given up on.

// liveness is the outcome of the latest probe of libvirtd, shared by every call
// that waits for one.
type liveness struct {
	mu      sync.Mutex
	running chan struct{} // closed when the probe under way ends; nil when none is
	at      time.Time     // when the latest probe ended
	err     error         // its outcome: nil when libvirtd answered
}

// probeEvery is how long a call runs before libvirtd is probed, and how long a
// probe's outcome stands for other calls.
func (l *Libvirt) probeEvery() time.Duration { return l.timeout / 4 }

// probe dials libvirtd to see whether it answers, waiting at most 3/4 of the timeout,
// so that a call is given up on about timeout after libvirtd fell silent.
func (l *Libvirt) probe() error {
	lv := &l.live
	lv.mu.Lock()
	if ch := lv.running; ch != nil {
		lv.mu.Unlock()
		<-ch
		lv.mu.Lock()
		defer lv.mu.Unlock()
		return lv.err
	}
	if !lv.at.IsZero() && time.Since(lv.at) < l.probeEvery() {
		defer lv.mu.Unlock()
		return lv.err
	}
	ch := make(chan struct{})
	lv.running = ch
	lv.mu.Unlock()

	c, err := dial(context.Background(), l.uri, l.timeout*3/4)
	if err == nil {
		go c.Close() // libvirtd just answered; still, a close is a round trip to it
	}

	lv.mu.Lock()
	defer lv.mu.Unlock()
	lv.running, lv.at, lv.err = nil, time.Now(), err
	close(ch)
	return err
}

// guard runs body, which calls libvirtd, and waits for it as long as libvirtd
// answers: body running longer than probeEvery (a save of a large guest may take
// minutes) has libvirtd probed, again every probeEvery. When a probe finds libvirtd
// silent, guard gives up on body: one that had issued its mutating request may have
// reached libvirtd (cutOff), any other changed nothing. body goes on in the background and
// ends when libvirtd answers or goes away; its outcome is dropped, and the
// reconciler records whatever it did. So a caller must not read what body writes
// unless guard returned nil: a body given up on may still write it.
//
// A mutating body passes its request through req (nil for reads): given up on
// before it issued the request, it never issues it (else libvirtd would carry out,
// when it wakes, an operation its caller was told changed nothing).
func (l *Libvirt) guard(op, name string, req *request, body func() error) error {
	done := make(chan error, 1)
	go func() { done <- body() }()
	t := time.NewTimer(l.probeEvery())
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
		}
		if err := l.probe(); isSilent(err) {
			select {
			case err := <-done: // it ended meanwhile after all
				return err
			default:
			}
			l.dropSilent(err)
			if req != nil && !req.abandon() {
				return l.cutOff(op, name, err)
			}
			return l.unreachable(op, name, err)
		}
		t.Reset(l.probeEvery())
	}
}

// request is the fate of a mutating call's request to libvirtd: issued, or
// abandoned by guard first, whichever comes first.
type request struct{ state atomic.Int32 }

const (
	requestPending int32 = iota
	requestIssued
	requestAbandoned
)

// issue reports whether the request may go out (again, for a call retried on a
// fresh connection): false once guard gave up on it.
func (r *request) issue() bool {
	return r.state.CompareAndSwap(requestPending, requestIssued) || r.state.Load() == requestIssued
}

// abandon reports whether the request was kept from going out.
func (r *request) abandon() bool {
	return r.state.CompareAndSwap(requestPending, requestAbandoned) || r.state.Load() == requestAbandoned
}

// errAbandoned is a mutating call's body finding guard gave up on it before its
// request went out; nobody reads it (guard returned already).
var errAbandoned = errors.New("vmm: the call was given up on before its request went out")

// dropSilent forgets the shared connection to a libvirtd that stopped answering, so
// that later calls dial afresh (and fail at once while the dial gate is stuck)
// instead of queueing behind the calls waiting on it. Releasing it is a round trip
// to libvirtd when no call holds it any more, so that happens in the background.
func (l *Libvirt) dropSilent(cause error) {
	l.mu.Lock()
	held := l.detachLocked()
	l.mu.Unlock()
	if held.c == nil {
		return
	}
	l.log.Warn("libvirtd stopped answering: giving up on its connection", "uri", l.uri, "err", cause)
	go held.release()
}

// heldConn is what the Libvirt holds of one connection: its own reference, the
// cached domain handles and the event subscription (each a reference too).
type heldConn struct {
	c       *libvirt.Connect
	doms    map[string]*libvirt.Domain
	eventID int
	events  bool
}

// detachLocked takes the current connection and what hangs on it from l, which has
// none after; the caller holds l.mu and releases what it got, outside l.mu.
func (l *Libvirt) detachLocked() heldConn {
	h := heldConn{c: l.conn, doms: l.doms}
	if l.eventConn != nil && l.eventConn == l.conn {
		h.eventID, h.events = l.eventID, true
	}
	l.conn, l.doms, l.eventConn = nil, nil, nil
	return h
}

// release cancels the subscription, frees the cached handles and drops the
// connection's own reference: the last of them closes it. Each may be a round trip
// to libvirtd, so never under l.mu.
func (h heldConn) release() {
	if h.c == nil {
		return
	}
	if h.events {
		h.c.DomainEventDeregister(h.eventID)
	}
	for _, d := range h.doms {
		d.Free()
	}
	h.c.Close()
}

// closeWait bounds how long Close waits to release the connection: with libvirtd
// silent it would wait for good, holding up the manager's exit.
const closeWait = 2 * time.Second

// waitBounded runs f, giving up on it after d (f then ends in the background).
func waitBounded(ctx context.Context, d time.Duration, f func()) {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
}
