package manager

import (
	"context"
	"fmt"
	"testing"

	"github.com/vws-grid/vws/vmm"
)

// undefinableHV is crashHV whose Start, as libvirt's, needs the domain defined.
type undefinableHV struct{ *crashHV }

func (h *undefinableHV) Start(ctx context.Context, name string) error {
	if h.dom == nil {
		return fmt.Errorf("start %s: %w", name, vmm.ErrNoDomain)
	}
	return h.crashHV.Start(ctx, name)
}

// TestStartOfAWorkspaceWhoseDomainWasUndefined: a shut-down workspace whose domain
// was undefined outside vws (virsh undefine) lost nothing but its definition, which
// the reconciler defines again from the record. A Start arriving before its round
// boots the workspace from that record too, rather than failing with an internal
// error (incident) the user can do nothing about.
func TestStartOfAWorkspaceWhoseDomainWasUndefined(t *testing.T) {
	const k = "ws-undefined"
	m, chv, rec := crashManager(t, k, stateShutdown, false)
	m.hv = &undefinableHV{crashHV: chv}
	chv.dom = nil // virsh undefine
	res, err := m.Start(context.Background(), workspaceEPR(rec))
	if err != nil || res.State != stateRunning {
		t.Fatalf("Start of a shut-down workspace whose domain was undefined: %+v, %v; want it running", res, err)
	}
	if chv.dom == nil || chv.dom.State != vmm.StateRunning {
		t.Fatalf("domain %+v after the Start; want it defined and running", chv.dom)
	}
	if r, _ := m.journal.get(k); r.State != stateRunning {
		t.Fatalf("recorded %q; want running", r.State)
	}
}
