package manager

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/vmm"
)

// offPauseHV is crashHV whose Pause and Resume, as libvirt's, need a domain that runs.
type offPauseHV struct{ *crashHV }

func (h *offPauseHV) Pause(ctx context.Context, name string) error {
	if h.dom == nil {
		return fmt.Errorf("pause %s: %w", name, vmm.ErrNoDomain)
	}
	if h.dom.State != vmm.StateRunning && h.dom.State != vmm.StatePaused {
		return fmt.Errorf("%w: pause %s: libvirt: Requested operation is not valid: domain is not running", errdefs.ErrHypervisor, name)
	}
	return h.crashHV.Pause(ctx, name)
}

func (h *offPauseHV) Resume(ctx context.Context, name string) error {
	if h.dom == nil {
		return fmt.Errorf("resume %s: %w", name, vmm.ErrNoDomain)
	}
	if h.dom.State != vmm.StateRunning && h.dom.State != vmm.StatePaused {
		return fmt.Errorf("%w: resume %s: libvirt: Requested operation is not valid: domain is not running", errdefs.ErrHypervisor, name)
	}
	return h.crashHV.Resume(ctx, name)
}

// TestPauseAndUnpauseOfAGuestEndedAlready: a guest that powered itself off, crashed
// or vanished just before a Pause or Unpause came (before the reconciler's round saw
// it) is answered with the state it is in, as the reconciler records it — not with a
// hypervisor failure, or an internal error, that leaves the workspace shown running.
func TestPauseAndUnpauseOfAGuestEndedAlready(t *testing.T) {
	for _, c := range []struct {
		name  string
		end   func(*crashHV)
		state string
	}{
		{"powered off", func(h *crashHV) { h.set(vmm.StateShutOff, false, false) }, stateShutdown},
		{"crashed", func(h *crashHV) { h.set(vmm.StateCrashed, false, false) }, stateCorrupted},
		{"vanished", func(h *crashHV) { h.dom = nil }, stateCorrupted},
	} {
		for _, op := range []string{"Pause", "Unpause"} {
			t.Run(c.name+"/"+op, func(t *testing.T) {
				const k = "ws-ended"
				from, call := stateRunning, (*Manager).Pause
				if op == "Unpause" {
					from, call = statePaused, (*Manager).Unpause
				}
				m, chv, rec := crashManager(t, k, from, false)
				m.hv = &offPauseHV{crashHV: chv}
				c.end(chv)
				_, err := call(m, context.Background(), workspaceEPR(rec))
				var se *errdefs.StateError
				if !errors.As(err, &se) || se.Current != c.state {
					t.Errorf("%s of a guest that %s: %v; want a state fault saying %s", op, c.name, err, c.state)
				}
				if r, _ := m.journal.get(k); r.State != c.state {
					t.Errorf("recorded %q (%q); want %s", r.State, r.Detail, c.state)
				}
			})
		}
	}
}
