package vmm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/test/sockproxy"
)

// TestOpenSilentLibvirtd: a socket that accepts connections and never answers (a
// stopped libvirtd) fails Open after the timeout, and the next Open at once, rather
// than hanging.
func TestOpenSilentLibvirtd(t *testing.T) {
	silent := sockproxy.Silent(t)
	cfg := Config{URI: silent.URI(), Timeout: time.Second}
	t0 := time.Now()
	_, err := Open(t.Context(), cfg)
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("Open took %s with a 1 s timeout", d)
	}
	if !errors.Is(err, errdefs.ErrHypervisor) || !strings.Contains(err.Error(), "accepts connections but has not answered for 1s") ||
		!strings.Contains(errdefs.Advice(err), "nothing was changed") {
		t.Fatalf("open of a silent libvirtd: %v", err)
	}
	t.Log(err)
	t0 = time.Now()
	if _, err := Open(t.Context(), cfg); !isSilent(err) || time.Since(t0) > 500*time.Millisecond {
		t.Errorf("a second open while the first still waits: %v after %s", err, time.Since(t0))
	}
	// The socket closing ends the pending dial; the next one may wait again.
	silent.Close()
	deadline := time.Now().Add(10 * time.Second)
	for g := gateOf(cfg.URI); ; {
		g.mu.Lock()
		pending := g.pending != nil
		g.mu.Unlock()
		if !pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned dial did not end when the socket closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := Open(t.Context(), cfg); !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("open with nobody listening: %v", err)
	}
}

// TestDialsOfASilentLibvirtdDoNotPileUp: callers that give up early (clients hanging
// up) leave one dial pending, not one blocked thread each.
func TestDialsOfASilentLibvirtdDoNotPileUp(t *testing.T) {
	silent := sockproxy.Silent(t)
	uri := silent.URI()
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
			defer cancel()
			if c, err := dial(ctx, uri, 5*time.Second); err == nil {
				c.Close()
				t.Error("a dial of a silent libvirtd succeeded")
			}
		}()
	}
	wg.Wait()
	time.Sleep(300 * time.Millisecond)
	if n := silent.Accepted(); n != 1 {
		t.Errorf("10 callers that gave up after 50 ms left %d connections to a silent libvirtd pending, want 1", n)
	}
}

// TestLibvirtdStopsAnswering: with libvirtd silent (frozen behind a proxy), a call
// under way fails after the timeout saying its outcome is unknown, reads and new
// connections fail saying libvirtd does not answer, the host status gives up after
// its own bound, and everything works again once libvirtd answers.
func TestLibvirtdStopsAnswering(t *testing.T) {
	openQEMU(t) // skips where real QEMU is unavailable
	proxy := sockproxy.Start(t, sockproxy.LibvirtSocket)
	const timeout = 2 * time.Second
	l, err := Open(t.Context(), Config{URI: proxy.URI(), DomainType: "qemu", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.Watch(func(Event) {}) // as the manager runs: the subscription holds the connection too
	ctx := t.Context()
	s := newTestSpec(t, l, "qemu", emptyQcow2)
	defineAndStart(t, l, s)

	proxy.Freeze()
	timed := func(what string, f func() error) error {
		t0 := time.Now()
		err := f()
		if d := time.Since(t0); d > 3*timeout+2*time.Second {
			t.Errorf("%s took %s with a %s timeout", what, d, timeout)
		}
		if !errors.Is(err, errdefs.ErrHypervisor) {
			t.Errorf("%s with libvirtd silent: %v, not a hypervisor error", what, err)
		}
		t.Logf("%s after %s: %v", what, time.Since(t0).Round(time.Millisecond), err)
		return err
	}
	// Several calls wait on the shared connection at once (libvirt's own keepalive
	// crashes then); each is given up on. The domain handle is cached: Pause goes
	// straight to libvirtd and waits.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, f := range []func() error{
		func() error { return l.Pause(ctx, s.Name) },
		func() error { _, err := l.State(ctx, s.Name); return err },
		func() error { _, err := l.List(ctx, testPrefix); return err },
		func() error { _, err := l.State(ctx, s.Name); return err },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = timed(fmt.Sprintf("call %d", i), f)
		}()
	}
	wg.Wait()
	if err := errs[0]; err == nil || !strings.Contains(err.Error(), "no answer while the call was under way") ||
		!strings.Contains(errdefs.Advice(err), "check the workspace's state") {
		t.Errorf("pause cut off: %v (advice %q)", err, errdefs.Advice(err))
	}
	for _, err := range errs[1:] {
		if err == nil || !strings.Contains(err.Error(), "has not answered") || !strings.Contains(errdefs.Advice(err), "nothing was changed") {
			t.Errorf("read: %v (advice %q)", err, errdefs.Advice(err))
		}
	}
	err = timed("list", func() error { _, err := l.List(ctx, testPrefix); return err })
	if err == nil || !strings.Contains(err.Error(), "has not answered") {
		t.Errorf("list: %v", err)
	}
	err = timed("host", func() error { _, err := l.Host(ctx); return err })
	if err == nil || !strings.Contains(err.Error(), "has not answered") {
		t.Errorf("host: %v", err)
	}
	// A caller that gives up first gets its own error, at once.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := l.State(short, s.Name); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, errdefs.ErrHypervisor) {
		t.Errorf("state with a short deadline: %v", err)
	}

	proxy.Thaw()
	deadline := time.Now().Add(3*timeout + 5*time.Second)
	for {
		st, err := l.State(ctx, s.Name)
		if err == nil {
			// libvirtd got the Pause the moment it answered again, and may have done it.
			t.Logf("after libvirtd answers again the domain is %s", st)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd answers again but State still fails: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := l.Host(ctx); err != nil {
		t.Errorf("host after libvirtd answers again: %v", err)
	}
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.List(ctx, testPrefix); err != nil {
				t.Errorf("list after libvirtd answers again: %v", err)
			}
		}()
	}
	wg.Wait()
	// A Pause given up on while it still looked its domain up (no cached handle) said
	// nothing was changed, so it must not pause the guest once libvirtd answers.
	// First the cut-off Pause of call 0 must have landed and been undone: libvirtd
	// gets it when it answers again, and on a loaded TCG host carries it out up to
	// seconds later (CI once saw it land after the state read here said running).
	for settle := time.Now().Add(5 * time.Second); time.Now().Before(settle); time.Sleep(100 * time.Millisecond) {
		if st, _ := l.State(ctx, s.Name); st == StatePaused {
			if err := l.Resume(ctx, s.Name); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	l.forget(s.Name)
	proxy.Freeze()
	err = timed("pause during the lookup", func() error { return l.Pause(ctx, s.Name) })
	if errors.Is(err, ErrOutcomeUnknown) || !strings.Contains(errdefs.Advice(err), "nothing was changed") {
		t.Errorf("pause given up on during its lookup: %v (advice %q)", err, errdefs.Advice(err))
	}
	proxy.Thaw()
	time.Sleep(2 * time.Second) // the held lookup is answered; the pause must stay in
	for deadline := time.Now().Add(3*timeout + 5*time.Second); ; time.Sleep(100 * time.Millisecond) {
		st, err := l.State(ctx, s.Name)
		if err == nil {
			if st != StateRunning {
				t.Errorf("after a pause that 'changed nothing' the domain is %s", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("libvirtd answers again but State still fails: %v", err)
		}
	}

	// A shutdown whose power-off request went out before libvirtd fell silent (a
	// guest with no OS ignores it: the manager is polling) is not "nothing changed".
	shut := make(chan error, 1)
	go func() { _, err := l.Shutdown(ctx, s.Name, time.Minute); shut <- err }()
	time.Sleep(500 * time.Millisecond)
	proxy.Freeze()
	err = timed("shutdown", func() error { return <-shut })
	if !errors.Is(err, ErrOutcomeUnknown) || !strings.Contains(errdefs.Advice(err), "may still power off") {
		t.Errorf("shutdown cut off while waiting for the guest: %v (advice %q)", err, errdefs.Advice(err))
	}
	proxy.Thaw()
	for deadline := time.Now().Add(3*timeout + 5*time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := l.State(ctx, s.Name); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("libvirtd answers again but State still fails: %v", err)
		}
	}
	if err := l.Stop(ctx, s.Name); err != nil {
		t.Errorf("stop after libvirtd answers again: %v", err)
	}
	// The connection given up on is closed once libvirtd answers: its subscription
	// is cancelled with it (else each silence would leave a connection open,
	// delivering every event twice).
	for deadline := time.Now().Add(10 * time.Second); proxy.Conns() > 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections to libvirtd stay open after it answers again, want 1", proxy.Conns())
		}
	}
}

// TestGuardWaitsWhileLibvirtdAnswers: a call that takes several probe periods (a long
// save) is waited for as long as libvirtd answers probes; with a silent libvirtd the
// same call is given up on after about the timeout.
func TestGuardWaitsWhileLibvirtdAnswers(t *testing.T) {
	l, err := Open(t.Context(), Config{URI: "test:///default", Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	long := func() error { time.Sleep(time.Second); return errors.New("the call's own outcome") }
	issued := new(request)
	issued.issue()
	if err := l.guard("save", "x", issued, long); err == nil || err.Error() != "the call's own outcome" {
		t.Fatalf("guard of a long call with libvirtd answering: %v", err)
	}
	l.live.mu.Lock()
	probed := !l.live.at.IsZero() && l.live.err == nil
	l.live.mu.Unlock()
	if !probed {
		t.Error("no probe of libvirtd answered during a call of 2.5 probe periods")
	}

	silent := &Libvirt{uri: sockproxy.Silent(t).URI(), timeout: 400 * time.Millisecond, log: l.log}
	t0 := time.Now()
	err = silent.guard("save", "x", issued, func() error { time.Sleep(5 * time.Second); return nil })
	if d := time.Since(t0); d > 3*time.Second || !isSilent(err) || !errors.Is(err, errdefs.ErrHypervisor) ||
		!strings.Contains(errdefs.Advice(err), "may have carried the operation out") {
		t.Errorf("guard with libvirtd silent: %v after %s", err, d)
	}
	err = silent.guard("state of", "x", nil, func() error { time.Sleep(5 * time.Second); return nil })
	if !isSilent(err) || !strings.Contains(errdefs.Advice(err), "nothing was changed") {
		t.Errorf("read-only guard with libvirtd silent: %v", err)
	}
	// A mutating call still looking its domain up had asked libvirtd for nothing, and
	// never will: its request stays in once libvirtd answers the lookup.
	req := new(request)
	var sent atomic.Bool
	lookedUp := make(chan struct{})
	err = silent.guard("pause", "x", req, func() error {
		time.Sleep(2 * time.Second) // the lookup, answered only after guard gave up
		defer close(lookedUp)
		if !req.issue() {
			return errAbandoned
		}
		sent.Store(true)
		return nil
	})
	if !isSilent(err) || errors.Is(err, ErrOutcomeUnknown) || !strings.Contains(errdefs.Advice(err), "nothing was changed") {
		t.Errorf("mutating guard given up on before its request: %v", err)
	}
	<-lookedUp
	if sent.Load() {
		t.Error("a request guard gave up on went out once libvirtd answered the lookup")
	}
}
