package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/vmm"
)

// TestASerializeOfAGuestOffAlready: a guest that powered itself off just before a
// Serialize came, before the reconciler's round saw it, has nothing to save: libvirt
// refuses the save of a domain not running. The answer must be the state the guest
// is in (shut down, as the reconciler records it), not that its QEMU died under the
// save and its RAM is lost (corrupted), which the record then contradicts.
func TestASerializeOfAGuestOffAlready(t *testing.T) {
	const k = "ws-off-serialize"
	m, hv, rec := crashManager(t, k, stateRunning, false)
	hv.set(vmm.StateShutOff, false, false) // the guest's own power-off
	hv.fail = map[string]error{"save": fmt.Errorf("%w: save: libvirt: Requested operation is not valid: domain is not running", errdefs.ErrHypervisor)}
	_, err := m.Shutdown(context.Background(), workspaceEPR(rec), ModeSerialize, time.Second)
	if err != nil && strings.Contains(err.Error(), "RAM is lost") {
		t.Errorf("Serialize of a guest that powered off already answered %v (advice %q); its RAM was not lost under a save", err, errdefs.Advice(err))
	}
	var se *errdefs.StateError
	if !errors.As(err, &se) || se.Current != stateShutdown || se.Requested != stateSerialized {
		t.Errorf("Serialize of a guest that powered off already: %v; want a state fault from shutdown to %s", err, stateSerialized)
	}
	m.reconcile(context.Background())
	if r, _ := m.journal.get(k); r.State != stateShutdown || r.Detail != detailPoweredOff || r.Hot || r.Pending != "" {
		t.Errorf("recorded %q %q (hot %v, pending %q); want shutdown, %q", r.State, r.Detail, r.Hot, r.Pending, detailPoweredOff)
	}
}
