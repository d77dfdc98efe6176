package manager

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/vmm"
)

// downHV is crashHV with libvirtd unreachable while down is set.
type downHV struct {
	*crashHV
	down    bool
	removed bool
}

func (h *downHV) unreachable(op string) error {
	return errdefs.WithAdvice(fmt.Errorf("%s: libvirtd is unreachable: %w", op, errdefs.ErrHypervisor),
		"nothing was changed; retry when the host's hypervisor is available again")
}
func (h *downHV) RemoveManagedSave(context.Context, string) error {
	if h.down {
		return h.unreachable("remove the managed save of")
	}
	h.removed = true
	return nil
}
func (h *downHV) State(ctx context.Context, n string) (vmm.State, error) {
	if h.down {
		return 0, h.unreachable("state of")
	}
	return h.crashHV.State(ctx, n)
}
func (h *downHV) List(ctx context.Context, p string) ([]vmm.Domain, error) {
	if h.down {
		return nil, h.unreachable("list")
	}
	return h.crashHV.List(ctx, p)
}

// TestNormalShutdownOfManagedSaveWithLibvirtdDownChangesNothing: libvirtd down, a Normal
// shutdown of a workspace whose RAM libvirt holds (managed save) is answered
// "HypervisorFault, nothing was changed" — yet it journals pendingDrop, and once
// libvirtd is back the reconciler discards the saved RAM the caller was told is kept.
func TestNormalShutdownOfManagedSaveWithLibvirtdDownChangesNothing(t *testing.T) {
	const k = "ws-review-drop"
	ctx := context.Background()
	m, ch, rec := crashManager(t, k, statePaused, true)
	rec.ManagedSave, rec.MemoryFile = true, ""
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	hv := &downHV{crashHV: ch, down: true}
	m.hv = hv
	_, err := m.Shutdown(ctx, workspaceEPR(rec), ModeNormal, 0)
	if !errors.Is(err, errdefs.ErrHypervisor) {
		t.Fatalf("Shutdown with libvirtd down: %v, want a hypervisor fault", err)
	}
	if r := onDisk(t, m, k); r.Pending != "" {
		t.Errorf("libvirtd down: Shutdown answered %q (advice %q) but the journal now says pending %q", err, errdefs.Advice(err), r.Pending)
	}
	hv.down = false // libvirtd returns
	m.reconcile(ctx)
	if r := onDisk(t, m, k); !r.Hot || hv.removed {
		t.Errorf("after libvirtd returned, the saved RAM the caller was told is untouched was discarded (managed save removed %v, record %+v)", hv.removed, r)
	}
}
