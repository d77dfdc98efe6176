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

// TestHostRestartDetailFromTheRunLog: after a host restart, libvirt's log of the
// guest's run tells a guest shut down with the host from one lost with it.
func TestHostRestartDetailFromTheRunLog(t *testing.T) {
	const k = "ws-runlog"
	boot := filepath.Join(t.TempDir(), "boot_id")
	old := bootIDFile
	bootIDFile = boot
	t.Cleanup(func() { bootIDFile = old })
	if err := os.WriteFile(boot, []byte("boot-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const at = "2026-11-30 18:21:55.442+0000"
	for _, c := range []struct {
		name string
		run  *vmm.LastRun
		says []string
	}{
		{"shut down with the host (libvirt-guests)", &vmm.LastRun{Ended: true, Reason: "shutdown", EndedAt: at},
			[]string{"shut down cleanly", at}},
		{"killed with the host after libvirtd stopped", &vmm.LastRun{Killed: "terminating on signal 15 from pid 1 (systemd)"},
			[]string{"without shutting it down", "(systemd)", "RAM is lost", "Shutdown Trash"}},
		{"power failure", &vmm.LastRun{},
			[]string{"nothing logged the guest's end", "power failure", "disk may be inconsistent"}},
		{"forced off before the restart", &vmm.LastRun{Ended: true, Reason: "destroyed", EndedAt: at},
			[]string{"reason destroyed", at, "disk may be inconsistent"}},
		{"no log to read", nil, []string{"host restarted", "shut down with the host, or lost at a power failure"}},
	} {
		m, hv, _ := crashManager(t, k, stateRunning, false)
		if err := os.WriteFile(filepath.Join(m.cfg.Dir, lastBootFile), []byte("boot-1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m.boot = readBootState(m.cfg.Dir)
		hv.set(vmm.StateShutOff, false, false) // the reason libvirtd forgot
		hv.lastRun = c.run
		m.reconcile(context.Background())
		r, err := m.journal.get(k)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != stateShutdown {
			t.Errorf("%s: recorded %s; want shutdown", c.name, r.State)
		}
		for _, want := range c.says {
			if !strings.Contains(r.Detail, want) {
				t.Errorf("%s: the detail %q does not say %q", c.name, r.Detail, want)
			}
		}
	}
}
