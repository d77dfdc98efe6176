package manager

import (
	"context"
	"fmt"
	"sync"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/vmm"
)

// A guest holds its RAM from its boot (or restore) until it shuts down or is
// serialized, whatever the host's free memory said when it was deployed: deployed
// workspaces are started later, several at once, and a QEMU guest touches its RAM
// gradually, so free memory runs out long after the checks that read it. The manager
// keeps its own account instead: the memory of every guest it holds in RAM, and of
// the boots under way, against the host's memory less a reserve for the host itself.
// A boot that would pass it is refused, and a deploy is granted no more than is left.

// DefaultMemoryReserveMiB is the host memory no guest is given when the
// configuration names no reserve: the host's own processes, libvirt, QEMU's own
// memory beside each guest's RAM.
const DefaultMemoryReserveMiB = 512

// memoryAccount holds the boots under way, by workspace.
type memoryAccount struct {
	mu      sync.Mutex
	booting map[string]int64
}

// inRAM reports whether rec's guest holds its memory on this host, or may at any
// moment: a restore libvirtd fell silent under (pendingRestore) may still bring a
// serialized guest back into RAM when it wakes.
func inRAM(rec *record) bool {
	if rec.Phase == phaseStaging {
		return false
	}
	return rec.State == stateRunning || rec.State == statePaused && !rec.Hot || rec.Pending == pendingRestore
}

// memoryReserve is the configured reserve in MiB, and whether the account is kept.
func (m *Manager) memoryReserve() (int64, bool) {
	switch r := m.cfg.MemoryReserveMiB; {
	case r < 0:
		return 0, false
	case r == 0:
		return DefaultMemoryReserveMiB, true
	default:
		return r, true
	}
}

// committedMiB is the memory of the guests this host holds in RAM and of the boots
// under way, but for workspace except's. Called with a.mu held. A journal record it
// cannot read (damaged, or a newer vws's) is left out, with a warning: one workspace
// the site administrator must look at does not stop every boot on the host.
func (m *Manager) committedMiB(except string) int64 {
	recs, errs := m.journal.all()
	for _, err := range errs {
		m.log.Warn("memory account: a journal record cannot be read; its guest's memory is not counted", "err", err)
	}
	var sum int64
	for _, r := range recs {
		if r.Key != except && inRAM(r) {
			sum += int64(r.Spec.MemoryMiB)
		}
	}
	for key, mib := range m.memory.booting {
		if key != except {
			sum += mib
		}
	}
	return sum
}

// uncommittedMiB is what the account leaves for one more guest on host (all of its
// free memory when no account is kept or the host's size is unknown).
func (m *Manager) uncommittedMiB(host vmm.HostInfo, except string) int64 {
	m.memory.mu.Lock()
	defer m.memory.mu.Unlock()
	return m.uncommittedLocked(host, except)
}

// uncommittedLocked is uncommittedMiB with m.memory.mu held.
func (m *Manager) uncommittedLocked(host vmm.HostInfo, except string) int64 {
	reserve, kept := m.memoryReserve()
	if !kept || host.MemoryMiB <= 0 {
		return host.FreeMiB
	}
	return min(host.FreeMiB, max(0, host.MemoryMiB-reserve-m.committedMiB(except)))
}

// grantForDeploy runs grant with the memory the account leaves for rec's guest on
// host, and, for a deploy that boots it (boots), holds the memory granted (grant's
// result) from then until release — called once the boot is journaled or the deploy
// undone — so that two deploys staging at once are not both granted the same memory.
func (m *Manager) grantForDeploy(host vmm.HostInfo, key string, boots bool, grant func(freeMiB int64) (int64, error)) (release func(), err error) {
	m.memory.mu.Lock()
	defer m.memory.mu.Unlock()
	mib, err := grant(m.uncommittedLocked(host, key))
	if err != nil || !boots {
		return func() {}, err
	}
	return m.memory.hold(key, mib), nil
}

// hold counts mib as booting for key until release. Called with a.mu held.
func (a *memoryAccount) hold(key string, mib int64) (release func()) {
	if a.booting == nil {
		a.booting = map[string]int64{}
	}
	a.booting[key] = mib
	return sync.OnceFunc(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		delete(a.booting, key)
	})
}

// admitBoot counts rec's memory as committed until release, called once its boot is
// journaled (then its record counts it), or refuses the boot when the account has
// not that much left, saying what holds the memory and what to do.
func (m *Manager) admitBoot(ctx context.Context, rec *record) (release func(), err error) {
	reserve, kept := m.memoryReserve()
	if !kept {
		return func() {}, nil
	}
	host, err := m.hv.Host(ctx)
	if err != nil {
		return nil, err
	}
	if host.MemoryMiB <= 0 {
		return func() {}, nil
	}
	need := int64(rec.Spec.MemoryMiB)
	a := &m.memory
	a.mu.Lock()
	defer a.mu.Unlock()
	committed := m.committedMiB(rec.Key)
	if left := host.MemoryMiB - reserve - committed; need > left {
		return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/hw:hardware/hw:RAM",
			Reason: fmt.Sprintf("the guest needs %d MiB of RAM; this host's %d MiB, less %d MiB kept for the host, leave %d MiB beside the %d MiB its running and paused guests hold: nothing was started",
				need, host.MemoryMiB, reserve, max(0, left), committed)},
			"shut down or serialize a guest on this host first, or run the workspace on another host (one deployed here: undeploy it, then deploy it there)")
	}
	return a.hold(rec.Key, need), nil
}
