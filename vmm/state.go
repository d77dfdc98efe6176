package vmm

import "libvirt.org/go/libvirt"

// State is a domain's lifecycle state as the Manager sees it.
type State int

const (
	// StateUnknown: libvirt reports no state (or one this package does not know).
	// It never means "shut off".
	StateUnknown State = iota
	// StateRunning: the guest runs (including blocked and shutting down).
	StateRunning
	// StatePaused: the guest's vCPUs are stopped (paused by us, by an I/O error, or
	// suspended to RAM by the guest itself).
	StatePaused
	// StateShutOff: the domain is defined but not running.
	StateShutOff
	// StateCrashed: the guest crashed; it is not running (on_crash is destroy).
	StateCrashed
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StatePaused:
		return "paused"
	case StateShutOff:
		return "shut off"
	case StateCrashed:
		return "crashed"
	default:
		return "unknown"
	}
}

// stateFrom maps libvirt's domain state and reason to State. It is the only place
// that does so.
func stateFrom(st libvirt.DomainState, reason int) State {
	switch st {
	case libvirt.DOMAIN_RUNNING, libvirt.DOMAIN_BLOCKED:
		return StateRunning
	case libvirt.DOMAIN_SHUTDOWN: // shutting down: still running until it is off
		return StateRunning
	case libvirt.DOMAIN_PAUSED:
		switch libvirt.DomainPausedReason(reason) {
		case libvirt.DOMAIN_PAUSED_CRASHED:
			return StateCrashed
		case libvirt.DOMAIN_PAUSED_STARTING_UP:
			// Booting, or a restore still loading its RAM (it fails back to shut off):
			// in transition, not paused.
			return StateUnknown
		}
		return StatePaused
	case libvirt.DOMAIN_PMSUSPENDED:
		return StatePaused
	case libvirt.DOMAIN_SHUTOFF:
		if libvirt.DomainShutoffReason(reason) == libvirt.DOMAIN_SHUTOFF_CRASHED {
			return StateCrashed
		}
		return StateShutOff
	case libvirt.DOMAIN_CRASHED:
		return StateCrashed
	default: // DOMAIN_NOSTATE and anything newer than this code
		return StateUnknown
	}
}

// forcedOff reports whether a shut-off domain was ended from outside the guest (a
// forced stop: virDomainDestroy, `virsh destroy`, or libvirtd ending it) rather than
// powered off by the guest itself or saved. Its RAM is lost and its disks were not
// cleanly released.
func forcedOff(st libvirt.DomainState, reason int) bool {
	if st != libvirt.DOMAIN_SHUTOFF {
		return false
	}
	switch libvirt.DomainShutoffReason(reason) {
	case libvirt.DOMAIN_SHUTOFF_DESTROYED, libvirt.DOMAIN_SHUTOFF_DAEMON:
		return true
	}
	return false
}

// savedOff reports whether a shut-off domain ended because its RAM was saved to a
// file: the guest stopped where it was, and a restore of that file continues it.
func savedOff(st libvirt.DomainState, reason int) bool {
	return st == libvirt.DOMAIN_SHUTOFF && libvirt.DomainShutoffReason(reason) == libvirt.DOMAIN_SHUTOFF_SAVED
}
