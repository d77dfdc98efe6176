package vmm

import (
	"testing"

	"libvirt.org/go/libvirt"
)

func TestStateFrom(t *testing.T) {
	tests := []struct {
		st     libvirt.DomainState
		reason int
		want   State
	}{
		{libvirt.DOMAIN_NOSTATE, 0, StateUnknown},
		{libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_BOOTED), StateRunning},
		{libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_RESTORED), StateRunning},
		{libvirt.DOMAIN_BLOCKED, 0, StateRunning},
		{libvirt.DOMAIN_SHUTDOWN, int(libvirt.DOMAIN_SHUTDOWN_USER), StateRunning},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_USER), StatePaused},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_IOERROR), StatePaused},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_CRASHED), StateCrashed},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_STARTING_UP), StateUnknown}, // a restore loading RAM
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_MIGRATION), StatePaused},    // a restore --paused, done
		{libvirt.DOMAIN_PMSUSPENDED, 0, StatePaused},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SHUTDOWN), StateShutOff},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SAVED), StateShutOff},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_CRASHED), StateCrashed},
		{libvirt.DOMAIN_CRASHED, 0, StateCrashed},
		{libvirt.DomainState(99), 0, StateUnknown},
	}
	for _, tt := range tests {
		if got := stateFrom(tt.st, tt.reason); got != tt.want {
			t.Errorf("stateFrom(%d, %d) = %v, want %v", tt.st, tt.reason, got, tt.want)
		}
	}
	for s, want := range map[State]string{StateUnknown: "unknown", StateRunning: "running", StatePaused: "paused", StateShutOff: "shut off", StateCrashed: "crashed", State(42): "unknown"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(s), s.String(), want)
		}
	}
	for _, tt := range []struct {
		st     libvirt.DomainState
		reason int
		want   bool
	}{
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_DESTROYED), true},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_DAEMON), true},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SHUTDOWN), false},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SAVED), false},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_UNKNOWN), false},
		{libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_BOOTED), false},
	} {
		if got := forcedOff(tt.st, tt.reason); got != tt.want {
			t.Errorf("forcedOff(%d, %d) = %v, want %v", tt.st, tt.reason, got, tt.want)
		}
	}
}

func TestSavedOff(t *testing.T) {
	for _, tt := range []struct {
		st     libvirt.DomainState
		reason int
		want   bool
	}{
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SAVED), true},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_DESTROYED), false},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_SHUTDOWN), false},
		{libvirt.DOMAIN_SHUTOFF, int(libvirt.DOMAIN_SHUTOFF_UNKNOWN), false},
		{libvirt.DOMAIN_PAUSED, int(libvirt.DOMAIN_PAUSED_SAVE), false},
		{libvirt.DOMAIN_RUNNING, int(libvirt.DOMAIN_RUNNING_RESTORED), false},
	} {
		if got := savedOff(tt.st, tt.reason); got != tt.want {
			t.Errorf("savedOff(%d, %d) = %v, want %v", tt.st, tt.reason, got, tt.want)
		}
	}
}
