package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/manager"
	"github.com/vws-grid/vws/vmm"
)

// lazyHypervisor opens libvirt on first use and again after a failed open, so a
// manager started while libvirtd is down serves HypervisorFaults until it returns
// rather than refusing to start.
type lazyHypervisor struct {
	cfg     vmm.Config
	mu      sync.Mutex
	hv      *vmm.Libvirt
	lastErr error
	watch   func(vmm.Event)
}

var (
	_ manager.Hypervisor                  = (*lazyHypervisor)(nil)
	_ interface{ Watch(func(vmm.Event)) } = (*lazyHypervisor)(nil) // the manager's event source
)

// Watch passes libvirt's domain lifecycle events to fn, from when libvirt is opened.
func (l *lazyHypervisor) Watch(fn func(vmm.Event)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watch = fn
	if l.hv != nil {
		l.hv.Watch(fn)
	}
}

func (l *lazyHypervisor) get(ctx context.Context) (*vmm.Libvirt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hv != nil {
		return l.hv, nil
	}
	hv, err := vmm.Open(ctx, l.cfg)
	if err != nil {
		l.lastErr = err
		return nil, fmt.Errorf("%w: libvirt %s: %w", errdefs.ErrHypervisor, l.cfg.URI, err)
	}
	l.hv = hv
	if l.watch != nil {
		hv.Watch(l.watch)
	}
	return hv, nil
}

func (l *lazyHypervisor) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hv != nil {
		l.hv.Close()
	}
}

func (l *lazyHypervisor) Host(ctx context.Context) (vmm.HostInfo, error) {
	hv, err := l.get(ctx)
	if err != nil {
		return vmm.HostInfo{}, err
	}
	return hv.Host(ctx)
}

func (l *lazyHypervisor) DomainType() string {
	if hv, err := l.get(context.Background()); err == nil {
		return hv.DomainType()
	}
	return l.cfg.DomainType
}

func (l *lazyHypervisor) Define(ctx context.Context, s vmm.Spec) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Define(ctx, s) })
}
func (l *lazyHypervisor) Start(ctx context.Context, name string) error {
	return l.do(ctx, func(hv *vmm.Libvirt) error { return hv.Start(ctx, name) })
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
