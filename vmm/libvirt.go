package vmm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirt"

	"github.com/vws-grid/vws/internal/errdefs"
)

// Config configures Open.
type Config struct {
	// URI is the libvirt connection URI. "" → "qemu:///system"; "xen:///system" for
	// Xen; "test:///default" (libvirt's in-memory test driver) for unit tests.
	URI string
	// DomainType is the type guests are defined with: "auto" (the default when ""),
	// "kvm", "qemu" (TCG) or "xen". auto picks xen on a Xen URI, kvm where KVM can run
	// ordinary guests, and qemu otherwise (also on kvm_pvm hosts).
	DomainType string
	// Logger receives connection losses and reconnections. nil → slog.Default().
	Logger *slog.Logger
	// Timeout bounds how long libvirtd may stay silent (to a new connection, or to
	// probes while a call is under way) before a call fails; 0 → DefaultTimeout.
	Timeout time.Duration
	// DomainLogDir is where libvirtd logs each domain's runs (LastRun reads it); ""
	// → /var/log/libvirt/qemu for a local system QEMU driver, none for other URIs.
	DomainLogDir string
}

// HostInfo describes the hypervisor host.
type HostInfo struct {
	VMMType        string // vw:VMMKind: "kvm", "qemu" or "xen" (the domain type guests run with)
	VMMVersion     string // hypervisor version, e.g. "7.2.22"
	LibvirtVersion string // e.g. "9.0.0"
	DomainType     string // the domain type guests are defined with: kvm | qemu | xen
	Arch           string // host architecture, e.g. x86_64
	CPUs           int
	MemoryMiB      int64
	FreeMiB        int64
	// Networks are libvirt's virtual networks on the host, which NICs of kind
	// "network" join; nil when the driver lists none (NetworksKnown false).
	Networks      []Network
	NetworksKnown bool
}

// Network is one libvirt virtual network.
type Network struct {
	Name   string
	Active bool // started: a guest joining it can start
}

// Domain is one libvirt domain as List reports it.
type Domain struct {
	Name, UUID string
	State      State
	// Forced: shut off by a forced stop (virsh destroy, libvirtd), not by the guest
	// powering off or a save.
	Forced bool
	// Saved: shut off because its RAM was saved to a file (virDomainSave), which a
	// restore resumes from.
	Saved bool
	// ManagedSave: saved by libvirt to its own file (virsh managedsave, libvirt-guests
	// at a host shutdown), which RestoreManagedSave resumes from.
	ManagedSave bool
	// Busy: paused with a libvirt job under way on it (a save writing its RAM out).
	Busy bool
}

// Libvirt drives guests through one libvirt connection, re-dialled when libvirtd
// restarts. It is safe for concurrent use.
type Libvirt struct {
	uri     string
	domType string
	log     *slog.Logger
	timeout time.Duration
	logDir  string // libvirtd's log of each domain's runs; "" none readable here

	mu     sync.Mutex
	conn   *libvirt.Connect // nil while disconnected
	closed bool
	// dialing is closed when the reconnection under way ends; nil when none is.
	dialing chan struct{}
	// host is the host-status read under way, which later readers join.
	host *hostRead
	// live is the latest probe of libvirtd by a call that waited long (guard).
	live liveness
	// doms caches domain handles of conn by name: a lookup is a round trip to
	// libvirtd as long as a pause. The cache holds one reference of each handle.
	doms map[string]*libvirt.Domain
	// watch is told of domain lifecycle events (Watch); re-subscribed on reconnection.
	watch func(Event)
	// eventID is the subscription of watch on eventConn (the current connection, or
	// none); it holds a reference of the connection, so dropping one cancels it.
	eventID   int
	eventConn *libvirt.Connect
}

// Open connects to libvirt and resolves the domain type. It fails when libvirtd is
// unreachable; later calls reconnect by themselves.
func Open(ctx context.Context, cfg Config) (*Libvirt, error) {
	return openWith(ctx, cfg, "/")
}

// openWith is Open with the file system root the KVM probes look under.
func openWith(ctx context.Context, cfg Config, root string) (*Libvirt, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := &Libvirt{uri: cfg.URI, log: cfg.Logger, timeout: cfg.Timeout, logDir: cfg.DomainLogDir}
	if l.uri == "" {
		l.uri = "qemu:///system"
	}
	if l.logDir == "" {
		l.logDir = domainLogDir(l.uri)
	}
	if l.timeout <= 0 {
		l.timeout = DefaultTimeout
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if err := startEventLoop(); err != nil {
		l.log.Warn("no libvirt event loop: domain changes are noticed on the manager's timer only", "err", err)
	}
	c, err := dial(ctx, l.uri, l.timeout)
	if err != nil {
		return nil, l.unreachable("open", "", err)
	}
	// A libvirtd silent from here on fails the open after the timeout (guard); the
	// connection is closed by whichever of the call and the open ends last.
	var (
		caps             string
		mu               sync.Mutex
		ended, abandoned bool
	)
	err = l.guard("open: capabilities of", l.uri, nil, func() error {
		got, err := c.GetCapabilities()
		mu.Lock()
		defer mu.Unlock()
		if ended = true; abandoned {
			c.Close()
		}
		caps = got
		return err
	})
	if isSilent(err) {
		mu.Lock()
		if abandoned = true; ended {
			c.Close()
		}
		mu.Unlock()
		return nil, err
	}
	if err != nil {
		c.Close()
		return nil, wrap("open: capabilities of", l.uri, err)
	}
	facts, err := probeHost(l.uri, root, caps)
	if err == nil {
		l.domType, err = chooseDomainType(cfg.DomainType, facts)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("open %s: %w", l.uri, err)
	}
	l.conn = c
	return l, nil
}

// DomainType is the type guests are defined with when their Spec leaves it empty.
func (l *Libvirt) DomainType() string { return l.domType }

// Close releases the connection; it waits for libvirtd at most closeWait.
func (l *Libvirt) Close() error {
	l.mu.Lock()
	l.closed = true
	held := l.detachLocked()
	l.mu.Unlock()
	if held.c == nil {
		return nil
	}
	waitBounded(context.Background(), closeWait, held.release)
	return nil
}

// hostWait bounds how long Host waits for libvirtd: a status page should say that
// the hypervisor does not answer rather than hang for the whole Timeout.
const hostWait = 5 * time.Second

// hostRead is one host-status read from libvirtd; callers that come while it runs
// share it, so a silent libvirtd holds one thread, not one per status request.
type hostRead struct {
	done  chan struct{}
	start time.Time
	info  HostInfo
	err   error
}

// Host describes the hypervisor host. It waits for libvirtd at most hostWait (or
// Timeout, when shorter) and while ctx lasts.
func (l *Libvirt) Host(ctx context.Context) (HostInfo, error) {
	l.mu.Lock()
	r := l.host
	if r == nil {
		r = &hostRead{done: make(chan struct{}), start: time.Now()}
		l.host = r
		go func() {
			r.info, r.err = l.readHost()
			l.mu.Lock()
			l.host = nil
			l.mu.Unlock()
			close(r.done)
		}()
	}
	l.mu.Unlock()
	// A read already waiting longer than the bound fails the newcomer at once.
	timer := time.NewTimer(max(0, min(hostWait, l.timeout)-time.Since(r.start)))
	defer timer.Stop()
	select {
	case <-r.done:
		return r.info, r.err
	case <-ctx.Done():
		return HostInfo{}, ctx.Err()
	case <-timer.C:
		return HostInfo{}, l.unreachable("host info of", l.uri, &silentError{uri: l.uri, silent: time.Since(r.start)})
	}
}

// readHost reads the host's description from libvirtd, as long as that takes.
func (l *Libvirt) readHost() (HostInfo, error) {
	h := HostInfo{VMMType: l.domType, DomainType: l.domType}
	// Not the caller's ctx: the read outlives a caller that stops waiting for it.
	err := l.readOwn(context.Background(), func(c *libvirt.Connect) error {
		hv, err := c.GetVersion()
		if err != nil {
			return err
		}
		lib, err := c.GetLibVersion()
		if err != nil {
			return err
		}
		ni, err := c.GetNodeInfo()
		if err != nil {
			return err
		}
		free, err := c.GetFreeMemory()
		if err != nil {
			return err
		}
		h.VMMVersion, h.LibvirtVersion = version(hv), version(lib)
		h.Arch, h.CPUs = ni.Model, int(ni.Cpus)
		// Drivers may count the two differently (Xen's free memory is the
		// hypervisor's, its node memory may be dom0's): free is at most the total,
		// which is what the Repository takes from an announcement.
		h.MemoryMiB = int64(ni.Memory / 1024)
		h.FreeMiB = min(int64(free/(1<<20)), h.MemoryMiB)
		// Best effort: a driver without networks (or a network driver that is down)
		// leaves them unknown, which checks nothing, rather than failing.
		h.Networks, h.NetworksKnown = networks(c)
		return nil
	})
	return h, wrap("host info of", l.uri, err)
}

func networks(c *libvirt.Connect) ([]Network, bool) {
	nets, err := c.ListAllNetworks(0)
	if err != nil {
		return nil, false
	}
	out := make([]Network, 0, len(nets))
	known := true
	for i := range nets {
		name, err := nets[i].GetName()
		active, aerr := nets[i].IsActive()
		nets[i].Free()
		if err != nil || aerr != nil {
			known = false
			continue
		}
		out = append(out, Network{Name: name, Active: active})
	}
	slices.SortFunc(out, func(a, b Network) int { return strings.Compare(a.Name, b.Name) })
	return out, known
}

func version(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

// acquire returns a referenced live connection, dialling when there is none or the
// current one is known dead. One caller dials at a time, without holding l.mu (a
// dial may wait for libvirtd up to the timeout); the others wait for it. The caller
// releases the connection.
func (l *Libvirt) acquire(ctx context.Context) (*libvirt.Connect, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, errClosed
		}
		if l.conn != nil {
			if alive, err := l.conn.IsAlive(); err == nil && alive {
				err := l.conn.Ref()
				c := l.conn
				l.mu.Unlock()
				if err != nil {
					return nil, err
				}
				return c, nil
			}
			go l.detachLocked().release() // dead: its round trips fail at once
		}
		if wait := l.dialing; wait != nil {
			l.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		l.dialing = done
		l.mu.Unlock()

		c, err := dial(ctx, l.uri, l.timeout)

		l.mu.Lock()
		l.dialing = nil
		close(done)
		switch {
		case err != nil:
			l.mu.Unlock()
			return nil, err
		case l.closed:
			l.mu.Unlock()
			c.Close()
			return nil, errClosed
		}
		l.log.Info("reconnected to libvirt", "uri", l.uri)
		l.conn = c
		watch := l.watch
		err = c.Ref()
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
		l.subscribe(c, watch) // a round trip: outside l.mu, within the caller's guard
		return c, nil
	}
}

var errClosed = errors.New("vmm: Libvirt is closed")

func release(c *libvirt.Connect) { c.Close() }

// drop forgets c if it is still the current connection, so the next call re-dials.
func (l *Libvirt) drop(c *libvirt.Connect, cause error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == c {
		l.log.Warn("libvirt connection lost", "uri", l.uri, "err", cause)
		go l.detachLocked().release() // dead: its round trips fail at once
	}
}

// connDead reports whether err means the connection to libvirtd is gone (as opposed
// to an operation failing on a live connection).
func connDead(c *libvirt.Connect, err error) bool {
	var lerr libvirt.Error
	if errors.As(err, &lerr) {
		switch {
		case lerr.Code == libvirt.ERR_NO_CONNECT, lerr.Code == libvirt.ERR_INVALID_CONN:
			return true
		case (lerr.Domain == libvirt.FROM_RPC || lerr.Domain == libvirt.FROM_REMOTE) &&
			(lerr.Code == libvirt.ERR_SYSTEM_ERROR || lerr.Code == libvirt.ERR_INTERNAL_ERROR):
			return true
		}
	}
	alive, aerr := c.IsAlive()
	return aerr != nil || !alive
}

// unreachable is the error for an operation that could not reach libvirtd, so
// nothing was asked of it.
func (l *Libvirt) unreachable(op, name string, err error) error {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, errClosed):
		return errdefs.WithAdvice(fmt.Errorf("%s %s: %w (%w)", op, name, errClosed, errdefs.ErrHypervisor),
			"nothing was changed; the manager is shutting down: retry when it is back")
	case isSilent(err): // the silentError names libvirtd's URI already
		return errdefs.WithAdvice(&hvError{op: op, name: name, err: err},
			"nothing was changed; retry when the host's libvirtd answers again (the site administrator: systemctl status libvirtd)")
	}
	return errdefs.WithAdvice(&hvError{op: op, name: name, err: err, detail: fmt.Sprintf(
		"libvirtd at %s is unreachable; start it (virtlogd -d && libvirtd -d) and retry", l.uri)},
		"nothing was changed; retry when the host's hypervisor is available again")
}

// cutOff is the error for a mutating call whose request reached libvirtd but whose
// answer never came back: libvirtd stopped answering or went away meanwhile, so it
// may have carried the call out, then or when it recovers.
func (l *Libvirt) cutOff(op, name string, err error) error {
	e := &hvError{op: op, name: name, err: err, detail: "no answer while the call was under way", unknown: true}
	if !isSilent(err) { // the error is libvirt's, which does not say where
		e.detail = fmt.Sprintf("libvirtd at %s went away while the call was under way", l.uri)
	}
	return errdefs.WithAdvice(e,
		"libvirtd may have carried the operation out, or may still when it recovers: the manager records what libvirt reports once it reaches libvirtd again, so check the workspace's state before repeating the operation (the site administrator: systemctl status libvirtd)")
}

// read runs a read-only fn (readNow) for as long as libvirtd answers (guard).
func (l *Libvirt) read(ctx context.Context, fn func(*libvirt.Connect) error) error {
	return l.guard("connect", "", nil, func() error { return l.readNow(ctx, fn) })
}

// write runs a mutating fn (writeNow) for as long as libvirtd answers (guard).
func (l *Libvirt) write(ctx context.Context, op, name string, fn func(*libvirt.Connect) error) error {
	req := new(request)
	return l.guard(op, name, req, func() error {
		return l.writeNow(ctx, op, name, func(c *libvirt.Connect) error {
			if !req.issue() {
				return errAbandoned
			}
			return fn(c)
		})
	})
}

// withDomain runs fn on domain name (withDomainNow) for as long as libvirtd answers
// (guard).
func (l *Libvirt) withDomain(ctx context.Context, op, name string, mutating bool, fn func(*libvirt.Domain) error) error {
	if !mutating {
		return l.guard(op, name, nil, func() error { return l.withDomainNow(ctx, op, name, false, fn) })
	}
	req := new(request)
	return l.guard(op, name, req, func() error {
		return l.withDomainNow(ctx, op, name, true, func(d *libvirt.Domain) error {
			if !req.issue() {
				return errAbandoned
			}
			return fn(d)
		})
	})
}

// readNow runs a read-only fn. When fn fails because the connection died, it reconnects
// once and runs fn again.
func (l *Libvirt) readNow(ctx context.Context, fn func(*libvirt.Connect) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		var c *libvirt.Connect
		if c, err = l.acquire(ctx); err != nil {
			return l.unreachable("connect", "", err)
		}
		err = fn(c)
		dead := err != nil && connDead(c, err)
		if dead {
			l.drop(c, err)
		}
		release(c)
		if !dead {
			return err
		}
	}
	return l.unreachable("connect", "", err)
}

// writeNow runs a mutating fn once on a live connection; it is never retried, since the
// first attempt may have reached libvirtd.
func (l *Libvirt) writeNow(ctx context.Context, op, name string, fn func(*libvirt.Connect) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := l.acquire(ctx)
	if err != nil {
		return l.unreachable(op, name, err)
	}
	defer release(c)
	if err := fn(c); err != nil {
		if connDead(c, err) {
			l.drop(c, err)
			if notSent(err) {
				return l.unreachable(op, name, err)
			}
			return l.cutOff(op, name, err)
		}
		return wrap(op, name, err)
	}
	return nil
}

// readOwn runs a read-only fn on a connection of its own, closed after it. The host
// status is read so: on the connection the manager shares, libvirtd answered it up
// to 1.5 s late around a save (the reads waited in virNodeGetInfo and
// virNetworkIsActive until the save ended), where another connection answered in
// 20-40 ms; a connection costs 1-3 ms. Saves and restores themselves stay on the
// shared connection: on one of their own, the Manager's Serialize and Restore took
// 1.3-1.5× the raw calls in managerbench, against 0.8 on the shared one.
func (l *Libvirt) readOwn(ctx context.Context, fn func(*libvirt.Connect) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return l.unreachable("connect", "", errClosed)
	}
	c, err := dial(ctx, l.uri, l.timeout)
	if err != nil {
		return l.unreachable("connect", "", err)
	}
	defer c.Close()
	if err := fn(c); err != nil {
		if connDead(c, err) {
			return l.unreachable("connect", "", err)
		}
		return err
	}
	return nil
}

// withDomainNow looks name up and runs fn on it. The lookup is read-only and retried on a
// fresh connection when the old one died; fn is retried so only when !mutating. A
// cached handle whose domain libvirt no longer knows is looked up again once (fn did
// nothing then).
func (l *Libvirt) withDomainNow(ctx context.Context, op, name string, mutating bool, fn func(*libvirt.Domain) error) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		var c *libvirt.Connect
		if c, err = l.acquire(ctx); err != nil {
			return l.unreachable(op, name, err)
		}
		var d *libvirt.Domain
		var cached bool
		d, cached, err = l.domain(c, name)
		if err == nil {
			err = fn(d)
			d.Free()
			if err != nil && libvirtCode(err) == libvirt.ERR_NO_DOMAIN {
				l.forget(name)
				if cached {
					release(c)
					continue
				}
			}
			if err != nil && mutating && connDead(c, err) {
				l.drop(c, err)
				release(c)
				if !notSent(err) {
					return l.cutOff(op, name, err)
				}
				if cached {
					// A cached handle skipped the lookup that would have found the
					// connection dead; the request never left: re-dial and try again.
					continue
				}
				return l.unreachable(op, name, err)
			}
		}
		dead := err != nil && connDead(c, err)
		if dead {
			l.drop(c, err)
		}
		release(c)
		if !dead {
			return wrap(op, name, err)
		}
	}
	return l.unreachable(op, name, err)
}

// notSent reports whether a call failed while writing its request to libvirtd, so
// libvirtd never saw it (the RPC layer's "Cannot write data" system error).
func notSent(err error) bool {
	var lerr libvirt.Error
	return errors.As(err, &lerr) && lerr.Domain == libvirt.FROM_RPC && lerr.Code == libvirt.ERR_SYSTEM_ERROR &&
		strings.HasPrefix(lerr.Message, "Cannot write data")
}

// domain returns a referenced handle of name on c (the caller frees it), from the
// cache when it has one.
func (l *Libvirt) domain(c *libvirt.Connect, name string) (d *libvirt.Domain, cached bool, err error) {
	l.mu.Lock()
	if l.conn == c {
		if d = l.doms[name]; d != nil {
			if err := d.Ref(); err == nil {
				l.mu.Unlock()
				return d, true, nil
			}
		}
	}
	l.mu.Unlock()
	d, err = c.LookupDomainByName(name)
	if err != nil {
		return nil, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == c && l.doms[name] == nil && d.Ref() == nil {
		if l.doms == nil {
			l.doms = map[string]*libvirt.Domain{}
		}
		l.doms[name] = d
	}
	return d, false, nil
}

// forget drops the cached handle of name.
func (l *Libvirt) forget(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if d := l.doms[name]; d != nil {
		delete(l.doms, name)
		d.Free()
	}
}
