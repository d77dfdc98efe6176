package manager

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vws-grid/vws/vmm"
)

// A guest the manager last saw running, found shut off after the host restarted,
// did not necessarily power itself off: it was shut down with the host (libvirt-guests
// does that, and the manager, stopped first, never saw it) or lost at a power failure.
// The manager keeps the boot ID of the host it last reconciled on, so that its first
// round after a reboot says so instead of "the guest powered off", and how the guest's
// run ended as libvirt's own log of it tells (vmm.LastRun).

// bootIDFile is the kernel's random ID of the current boot.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// lastBootFile, in the manager's directory, holds the boot ID its last successful
// reconcile ran under.
const lastBootFile = "boot_id"

// bootState is the host's current boot ID ("" unknown: nothing is concluded), whether
// the manager last reconciled under another one, and whether this one is on disk.
type bootState struct {
	current   string
	restarted bool
	recorded  bool
}

func readBootState(dir string) bootState {
	cur, err := os.ReadFile(bootIDFile)
	if err != nil {
		return bootState{}
	}
	b := bootState{current: strings.TrimSpace(string(cur))}
	if last, err := os.ReadFile(filepath.Join(dir, lastBootFile)); err == nil {
		b.recorded = strings.TrimSpace(string(last)) == b.current
		b.restarted = !b.recorded
	}
	return b
}

// reconciled records that a round saw libvirt under the current boot: later rounds,
// and later runs on the same boot, are no longer "after a host restart". Only the
// reconciler calls it.
func (b *bootState) reconciled(dir string) error {
	if b.recorded || b.current == "" {
		return nil
	}
	if err := writeFileAtomic(filepath.Join(dir, lastBootFile), []byte(b.current+"\n")); err != nil {
		return err
	}
	b.recorded, b.restarted = true, false
	return nil
}

// runLog is a hypervisor that can tell from the host's own logs how a domain's latest
// run ended (vmm.Libvirt can, on a local system libvirtd). After a host restart that
// is what tells a guest shut down with the host from one lost with it.
type runLog interface {
	LastRun(name string) (vmm.LastRun, error)
}

// poweredOffOutcome is what became of a workspace last seen running or paused whose
// domain name libvirt has shut off for no reason it still knows (a libvirtd restarted
// since forgets it): the host restarted (poweredOffDetail), or libvirt's log of the
// run says how it ended — a guest that crashed, or whose QEMU was killed or destroyed,
// lost its RAM (corrupted); otherwise the guest powered itself off.
func (m *Manager) poweredOffOutcome(name string) (state, detail string) {
	if m.boot.restarted {
		return stateShutdown, m.poweredOffDetail(name)
	}
	l, ok := m.hv.(runLog)
	if !ok {
		return stateShutdown, detailPoweredOff
	}
	run, err := l.LastRun(name)
	const lost = "; the RAM is lost and the disk may be inconsistent (Shutdown Trash discards this deployment's changes, Undeploy keeps them)"
	switch {
	case err != nil, run.Ended && (run.Reason == "shutdown" || run.Reason == "saved"):
		return stateShutdown, detailPoweredOff
	case run.Ended && run.Reason == "destroyed":
		return stateCorrupted, "its domain was forced off outside vws (libvirt logged it destroyed at " + run.EndedAt + ")" + lost
	case run.Ended:
		return stateCorrupted, "the guest crashed or its QEMU process died (libvirt logged its end, reason " + run.Reason + ", at " + run.EndedAt + ")" + lost
	case run.Killed != "":
		return stateCorrupted, "its QEMU process was killed (" + run.Killed + ")" + lost
	}
	return stateShutdown, detailPoweredOff
}

// poweredOffDetail is why a workspace whose domain is name, last seen running or
// paused by the manager, is now shut down.
func (m *Manager) poweredOffDetail(name string) string {
	if !m.boot.restarted {
		return detailPoweredOff
	}
	run, err := vmm.LastRun{}, vmm.ErrNoRunLog
	if l, ok := m.hv.(runLog); ok {
		run, err = l.LastRun(name)
	}
	return hostRestartDetail(run, err)
}

// hostRestartDetail says how a guest the manager did not see stop ended, the host
// having restarted since, from libvirt's log of its run (err: none to read).
func hostRestartDetail(run vmm.LastRun, err error) string {
	const lost = "its RAM is lost and its disk may be inconsistent, as a PC's after a pulled plug (Shutdown Trash discards this deployment's changes)"
	switch {
	case err != nil:
		return "the host restarted while it ran, and the manager did not see it stop: it was shut down with the host, " +
			"or lost at a power failure (then its RAM is lost and its disk may be inconsistent; Shutdown Trash discards this deployment's changes)"
	case run.Ended && run.Reason == "shutdown":
		return "the host restarted after the guest had shut down cleanly (libvirt logged its power-off at " + run.EndedAt + ")"
	case run.Ended && run.Reason == "saved":
		return "the host restarted after libvirt had saved the guest's RAM at " + run.EndedAt +
			" to a file vws does not know of (virsh save?); its disk is intact (Shutdown Trash discards this deployment's changes)"
	case run.Ended:
		return fmt.Sprintf("the host restarted after libvirt had stopped the guest without its shutdown (reason %s, at %s): %s", run.Reason, run.EndedAt, lost)
	case run.Killed != "":
		return "the host went down while the guest ran, without shutting it down: QEMU was killed after libvirtd had stopped (" +
			run.Killed + "); " + lost
	default:
		return "the host went down while the guest ran, and nothing logged the guest's end (a power failure, or a crash of the host): " + lost
	}
}
