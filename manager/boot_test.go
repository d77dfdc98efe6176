package manager

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/vmm"
)

// TestPoweredOffAfterHostRestart: a guest last seen running and found shut off by the
// first round after the host restarted is recorded shut down saying the host restarted
// (it may have been lost at a power failure), not that it powered itself off; that
// round records the boot, so later rounds, and a manager restarted on the same boot,
// say "the guest powered off" again.
func TestPoweredOffAfterHostRestart(t *testing.T) {
	const k = "ws-boot"
	ctx := context.Background()
	boot := filepath.Join(t.TempDir(), "boot_id")
	old := bootIDFile
	bootIDFile = boot
	t.Cleanup(func() { bootIDFile = old })
	setBoot := func(id string) {
		if err := os.WriteFile(boot, []byte(id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range []struct {
		name, lastBoot string // lastBoot "": none recorded (first run of this version)
		restarted      bool
	}{
		{"host restarted", "boot-1", true},
		{"same boot", "boot-2", false},
		{"nothing recorded yet", "", false},
	} {
		m, hv, _ := crashManager(t, k, stateRunning, false)
		if c.lastBoot != "" {
			if err := os.WriteFile(filepath.Join(m.cfg.Dir, lastBootFile), []byte(c.lastBoot+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		setBoot("boot-2")
		m.boot = readBootState(m.cfg.Dir)
		hv.set(vmm.StateShutOff, false, false) // the reason libvirtd forgot
		m.reconcile(ctx)
		r, err := m.journal.get(k)
		if err != nil {
			t.Fatal(err)
		}
		if said := strings.Contains(r.Detail, "host restarted"); r.State != stateShutdown || said != c.restarted {
			t.Errorf("%s: recorded %s (%q); want shutdown, saying the host restarted: %v", c.name, r.State, r.Detail, c.restarted)
		}
		if got, _ := os.ReadFile(filepath.Join(m.cfg.Dir, lastBootFile)); strings.TrimSpace(string(got)) != "boot-2" {
			t.Errorf("%s: after the round the recorded boot is %q", c.name, got)
		}
		// Started again and powered off on this boot: the guest's own doing.
		r.State, r.Detail = stateRunning, ""
		if err := m.journal.put(r); err != nil {
			t.Fatal(err)
		}
		m.reconcile(ctx)
		if r, _ := m.journal.get(k); r.Detail != detailPoweredOff {
			t.Errorf("%s: a later power-off on the same boot is recorded %q", c.name, r.Detail)
		}
	}
}
