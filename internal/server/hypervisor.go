package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/manager"
	"github.com/vws-grid/vws/vmm"
)

// lazyHypervisor opens libvirt on first use and again after a failed open, so a
// manager started while libvirtd is down serves HypervisorFaults until it returns
// rather than refusing to start. One open runs at a time, in the background: a
// caller waits for it while its context lasts, and the host status at most
// hostOpenWait, since an open waits for a silent libvirtd up to the whole timeout.
type lazyHypervisor struct {
	cfg     vmm.Config
	mu      sync.Mutex
	hv      *vmm.Libvirt
	opening chan struct{} // closed when the open under way ends; nil when none is
	since   time.Time     // when it began
	closed  bool
	lastErr error
	watch   func(vmm.Event)
}

// hostOpenWait bounds how long the host status waits for libvirt to be opened.
const hostOpenWait = 5 * time.Second

var (
	_ manager.Hypervisor                  = (*lazyHypervisor)(nil)
	_ interface{ Watch(func(vmm.Event)) } = (*lazyHypervisor)(nil) // the manager's event source
)

// Watch passes libvirt's domain lifecycle events to fn, from when libvirt is opened.
func (l *lazyHypervisor) Watch(fn func(vmm.Event)) {
	l.mu.Lock()
	l.watch = fn
	hv := l.hv
	l.mu.Unlock()
	if hv != nil {
		hv.Watch(fn)
	}
}

// get returns the opened hypervisor, opening it first if need be.
// hypervisorProbe is how long the server's start waits for libvirtd.
const hypervisorProbe = 2 * time.Second

func (l *lazyHypervisor) get(ctx context.Context) (*vmm.Libvirt, error) {
	l.mu.Lock()
	if l.hv != nil {
		defer l.mu.Unlock()
		return l.hv, nil
	}
	ch, since := l.opening, l.since
	if ch == nil {
		ch, since = make(chan struct{}), time.Now()
		l.opening, l.since = ch, since
		go l.open(ch)
	}
	l.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: libvirt %s: still connecting after %s: libvirtd accepts connections but has not answered (systemctl status libvirtd)",
				errdefs.ErrHypervisor, l.cfg.URI, time.Since(since).Round(time.Second))
		}
		return nil, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hv != nil {
		return l.hv, nil
	}
	return nil, fmt.Errorf("%w: libvirt %s: %w", errdefs.ErrHypervisor, l.cfg.URI, l.lastErr)
}

// open opens libvirt for whoever waits on ch, and for later callers.
func (l *lazyHypervisor) open(ch chan struct{}) {
	hv, err := vmm.Open(context.Background(), l.cfg)
	l.mu.Lock()
	l.opening = nil
	closed, watch := l.closed, l.watch
	if err == nil && !closed {
		l.hv = hv
	}
	l.lastErr = err
	l.mu.Unlock()
	if err == nil {
		if closed {
			hv.Close()
		} else if watch != nil {
			hv.Watch(watch)
		}
	}
	close(ch)
}

func (l *lazyHypervisor) Close() {
	l.mu.Lock()
	l.closed = true
	hv := l.hv
	l.mu.Unlock()
	if hv != nil {
		hv.Close()
	}
}

func (l *lazyHypervisor) Host(ctx context.Context) (vmm.HostInfo, error) {
	wait := hostOpenWait
	l.mu.Lock()
	if l.opening != nil { // an open waiting that long already fails the newcomer at once
		wait = max(0, hostOpenWait-time.Since(l.since))
	}
	l.mu.Unlock()
	octx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	hv, err := l.get(octx)
	if err != nil {
		return vmm.HostInfo{}, err
	}
	return hv.Host(ctx)
}

// DomainType is the opened hypervisor's, else the configured one when it names a
// type ("" for auto, which only the hypervisor resolves); it never waits for an open.
func (l *lazyHypervisor) DomainType() string {
	l.mu.Lock()
	hv := l.hv
	l.mu.Unlock()
	if hv != nil {
		return hv.DomainType()
	}
	switch l.cfg.DomainType {
	case "kvm", "qemu", "xen":
		return l.cfg.DomainType
	}
	return ""
}

func (l *lazyHypervisor) Define(ctx context.Context, s vmm.Spec) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Define(ctx, s) })
}
func (l *lazyHypervisor) Start(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Start(ctx, name) })
}
func (l *lazyHypervisor) StartPaused(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.StartPaused(ctx, name) })
}
func (l *lazyHypervisor) Pause(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Pause(ctx, name) })
}
func (l *lazyHypervisor) Resume(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Resume(ctx, name) })
}
func (l *lazyHypervisor) Shutdown(ctx context.Context, name string, grace time.Duration) (forced bool, err error) {
	err = l.do(ctx, func(hv *vmm.Libvirt) error { forced, err = hv.Shutdown(ctx, name, grace); return err })
	return forced, err
}
func (l *lazyHypervisor) Stop(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Stop(ctx, name) })
}
func (l *lazyHypervisor) Save(ctx context.Context, name, path string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Save(ctx, name, path) })
}
func (l *lazyHypervisor) Restore(ctx context.Context, path string, s vmm.Spec, paused bool) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Restore(ctx, path, s, paused) })
}
func (l *lazyHypervisor) SavedMemoryMiB(ctx context.Context, path string) (mib int64, err error) {
	err = l.do(ctx, func(hv *vmm.Libvirt) error { mib, err = hv.SavedMemoryMiB(ctx, path); return err })
	return mib, err
}
func (l *lazyHypervisor) RestoreManagedSave(ctx context.Context, name string, paused bool) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.RestoreManagedSave(ctx, name, paused) })
}
func (l *lazyHypervisor) RemoveManagedSave(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.RemoveManagedSave(ctx, name) })
}
func (l *lazyHypervisor) Undefine(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Undefine(ctx, name) })
}
func (l *lazyHypervisor) State(ctx context.Context, name string) (st vmm.State, err error) {
	err = l.do(ctx, func(hv *vmm.Libvirt) error { st, err = hv.State(ctx, name); return err })
	return st, err
}
func (l *lazyHypervisor) List(ctx context.Context, prefix string) (ds []vmm.Domain, err error) {
	err = l.do(ctx, func(hv *vmm.Libvirt) error { ds, err = hv.List(ctx, prefix); return err })
	return ds, err
}

func (l *lazyHypervisor) do(ctx context.Context, f func(*vmm.Libvirt) error) error {
	hv, err := l.get(ctx)
	if err != nil {
		return err
	}
	return f(hv)
}
