package manager

import (
	"os"
	"path/filepath"
	"strings"
)

// A guest the manager last saw running, found shut off after the host restarted,
// did not necessarily power itself off: it was shut down with the host (libvirt-guests
// does that, and the manager, stopped first, never saw it) or lost at a power failure.
// The manager keeps the boot ID of the host it last reconciled on, so that its first
// round after a reboot says so instead of "the guest powered off".

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

// poweredOffDetail is why a workspace the manager last saw running or paused is now
// shut down.
func (b *bootState) poweredOffDetail() string {
	if b.restarted {
		return "the host restarted while it ran, and the manager did not see it stop: it was shut down with the host, " +
			"or lost at a power failure (then its RAM is lost and its disk may be inconsistent; Shutdown Trash discards this deployment's changes)"
	}
	return detailPoweredOff
}
