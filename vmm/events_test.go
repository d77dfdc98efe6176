package vmm

import (
	"context"
	"testing"
	"time"
)

// eventsOf collects the events of one domain.
type eventsOf struct {
	name string
	ch   chan EventKind
}

func watchDomain(l *Libvirt, name string) *eventsOf {
	w := &eventsOf{name: name, ch: make(chan EventKind, 64)}
	l.Watch(func(e Event) {
		if e.Domain == w.name {
			select {
			case w.ch <- e.Kind:
			default:
			}
		}
	})
	return w
}

// want waits for the event kind k of the domain, skipping others.
func (w *eventsOf) want(t *testing.T, k EventKind, after string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-w.ch:
			if got == k {
				return
			}
		case <-deadline:
			t.Fatalf("no event %d for %s within 10 s after %s", k, w.name, after)
		}
	}
}

func testEvents(t *testing.T, l *Libvirt, s Spec) {
	ctx := context.Background()
	w := watchDomain(l, s.Name)
	defineAndStart(t, l, s)
	w.want(t, EventStarted, "start")
	if err := l.Pause(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	w.want(t, EventSuspended, "pause")
	if err := l.Resume(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	w.want(t, EventResumed, "resume")
	if err := l.Stop(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	w.want(t, EventStopped, "a forced stop")
}

func TestEventsTestDriver(t *testing.T) {
	l, err := Open(t.Context(), Config{URI: "test:///default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := newTestSpec(t, l, "qemu", func(t *testing.T) string { return t.TempDir() + "/root.qcow2" })
	testEvents(t, l, s)
}

// TestEventsQEMU: real guests' events arrive, and still do once the connection to
// libvirtd was lost and re-dialled.
func TestEventsQEMU(t *testing.T) {
	l := openQEMU(t)
	s := newTestSpec(t, l, "qemu", emptyQcow2)
	testEvents(t, l, s)
	if testing.Short() {
		return
	}
	disconnectOurClients(t)
	w := watchDomain(l, s.Name)
	if err := l.Start(t.Context(), s.Name); err != nil { // re-dials, and subscribes again
		t.Fatal(err)
	}
	w.want(t, EventStarted, "a start on a re-dialled connection")
	if err := l.Stop(t.Context(), s.Name); err != nil {
		t.Fatal(err)
	}
	w.want(t, EventStopped, "a stop on a re-dialled connection")
}
