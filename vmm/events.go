package vmm

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"libvirt.org/go/libvirt"
)

// EventKind is the part of a domain lifecycle event the Manager acts on.
type EventKind int

const (
	EventOther     EventKind = iota // defined, undefined, suspended, resumed, …
	EventStarted                    // booted or restored
	EventStopped                    // shut off: powered off by the guest, forced off, saved, failed
	EventCrashed                    // the guest crashed
	EventSuspended                  // vCPUs paused (by a client, an I/O error, a watchdog, …)
	EventResumed
)

// Event is a lifecycle change of one domain, as libvirt reported it.
type Event struct {
	Domain string
	Kind   EventKind
}

func kindOf(t libvirt.DomainEventType) EventKind {
	switch t {
	case libvirt.DOMAIN_EVENT_STARTED:
		return EventStarted
	case libvirt.DOMAIN_EVENT_STOPPED, libvirt.DOMAIN_EVENT_SHUTDOWN:
		return EventStopped
	case libvirt.DOMAIN_EVENT_CRASHED:
		return EventCrashed
	case libvirt.DOMAIN_EVENT_SUSPENDED:
		return EventSuspended
	case libvirt.DOMAIN_EVENT_RESUMED:
		return EventResumed
	}
	return EventOther
}

var eventLoop struct {
	once sync.Once
	err  error
}

// startEventLoop runs libvirt's default event loop for this process, once, before
// any connection is opened: domain events arrive through it, and with it the remote
// driver sends keepalives, so a libvirtd that went away is noticed without a call.
func startEventLoop() error {
	eventLoop.once.Do(func() {
		if eventLoop.err = libvirt.EventRegisterDefaultImpl(); eventLoop.err != nil {
			return
		}
		go func() {
			for {
				if err := libvirt.EventRunDefaultImpl(); err != nil {
					slog.Error("libvirt event loop", "err", err)
					time.Sleep(time.Second)
				}
			}
		}()
	})
	return eventLoop.err
}

// Watch has fn told of every lifecycle event of this connection's domains, from now
// on and again after each reconnection (events while libvirtd was unreachable are
// lost: the caller reconciles after a reconnection anyway). fn runs on libvirt's event
// goroutine: it must return quickly and not call back into libvirt.
func (l *Libvirt) Watch(fn func(Event)) {
	l.mu.Lock()
	l.watch = fn
	c := l.conn
	if c != nil && c.Ref() != nil {
		c = nil
	}
	l.mu.Unlock()
	if c == nil {
		return
	}
	// Subscribing is a round trip to libvirtd, which may fall silent right now; the
	// caller (opening the hypervisor) must not wait for it for good.
	waitBounded(context.Background(), l.timeout, func() {
		l.subscribe(c, fn)
		release(c)
	})
}

// subscribe has fn told of c's lifecycle events and records the subscription, which
// holds a reference of c until it is cancelled (releaseConn). It calls libvirtd:
// never under l.mu. The caller holds a reference of c.
func (l *Libvirt) subscribe(c *libvirt.Connect, fn func(Event)) {
	id, ok := l.register(c, fn)
	if !ok {
		return
	}
	l.mu.Lock()
	current := l.conn == c
	if current {
		l.eventID, l.eventConn = id, c
	}
	l.mu.Unlock()
	if !current { // dropped meanwhile: its release did not know of this subscription
		c.DomainEventDeregister(id)
	}
}

// register subscribes fn to c's lifecycle events, returning the subscription's id.
func (l *Libvirt) register(c *libvirt.Connect, fn func(Event)) (int, bool) {
	if fn == nil {
		return 0, false
	}
	if eventLoop.err != nil {
		l.log.Warn("no libvirt event loop: domain changes are noticed on the manager's timer only", "err", eventLoop.err)
		return 0, false
	}
	id, err := c.DomainEventLifecycleRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, e *libvirt.DomainEventLifecycle) {
		name, err := d.GetName() // local: the handle carries its name
		if err != nil {
			return
		}
		fn(Event{Domain: name, Kind: kindOf(e.Event)})
	})
	if err != nil {
		l.log.Warn("libvirt lifecycle events unavailable: domain changes are noticed on the manager's timer only", "uri", l.uri, "err", err)
		return 0, false
	}
	return id, true
}
