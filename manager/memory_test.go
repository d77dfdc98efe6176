package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/vmm"
)

// TestBootsAreAdmittedAgainstTheGuestsInRAM: a boot is refused when the guests this
// host holds in RAM (running, paused; not serialized, not shut down), the boots under
// way and the new guest would pass the host's memory less the reserve — saying how
// the memory is held and what to do, booting nothing — and admitted otherwise; a
// deploy is offered no more than is left; a negative reserve keeps no account.
func TestBootsAreAdmittedAgainstTheGuestsInRAM(t *testing.T) {
	ctx := context.Background()
	m, hv, rec := crashManager(t, "ws-new", stateShutdown, false)
	host := vmm.HostInfo{MemoryMiB: 4096, FreeMiB: 3900}
	m.hv = hostInfoHV{crashHV: hv, info: host}
	for _, r := range []*record{
		{Key: "ws-running", Phase: phaseDeployed, State: stateRunning, Spec: vmm.Spec{MemoryMiB: 1024}},
		{Key: "ws-paused", Phase: phaseDeployed, State: statePaused, Spec: vmm.Spec{MemoryMiB: 1024}},
		{Key: "ws-serialized", Phase: phaseDeployed, State: statePaused, Hot: true, Spec: vmm.Spec{MemoryMiB: 2048}},
		{Key: "ws-off", Phase: phaseDeployed, State: stateShutdown, Spec: vmm.Spec{MemoryMiB: 2048}},
		{Key: "ws-staging", Phase: phaseStaging, State: stateRunning, Spec: vmm.Spec{MemoryMiB: 2048}},
	} {
		if err := m.journal.put(r); err != nil {
			t.Fatal(err)
		}
	}
	// 4096 - 512 reserved - 2048 in RAM = 1536 left.
	if got := m.uncommittedMiB(host, rec.Key); got != 1536 {
		t.Errorf("a deploy is offered %d MiB, want 1536", got)
	}
	rec.Spec.MemoryMiB = 2048
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	err := m.start(ctx, rec)
	var md *errdefs.MetadataError
	if !errors.As(err, &md) || !strings.Contains(md.Reason, "leave 1536 MiB beside the 2048 MiB its running and paused guests hold") ||
		!strings.Contains(errdefs.Advice(err), "shut down or serialize a guest") {
		t.Fatalf("a 2048 MiB guest with 1536 MiB left: %v (advice %q)", err, errdefs.Advice(err))
	}
	if _, started := hv.onDisk["start"]; started {
		t.Fatal("the refused guest was started")
	}
	if r, _ := m.journal.get(rec.Key); r.State != stateShutdown {
		t.Fatalf("after the refusal the workspace is %s", r.State)
	}

	// A boot under way counts: another one meanwhile finds less left.
	rec.Spec.MemoryMiB = 1024
	release, err := m.admitBoot(ctx, rec)
	if err != nil {
		t.Fatalf("a 1024 MiB guest with 1536 MiB left: %v", err)
	}
	other := &record{Key: "ws-other", Phase: phaseDeployed, State: stateShutdown, Spec: vmm.Spec{MemoryMiB: 1024}}
	if _, err := m.admitBoot(ctx, other); !errors.As(err, &md) {
		t.Fatalf("a second 1024 MiB boot beside the first, 512 MiB left: %v", err)
	}
	if got := m.uncommittedMiB(host, "ws-other"); got != 512 {
		t.Errorf("during a boot a deploy is offered %d MiB, want 512", got)
	}
	release()
	release() // once only
	if r, err := m.admitBoot(ctx, other); err != nil {
		t.Fatalf("the second boot once the first is done: %v", err)
	} else {
		r()
	}
	if err := m.start(ctx, rec); err != nil {
		t.Fatalf("start within the account: %v", err)
	}

	m.cfg.MemoryReserveMiB = -1
	big := &record{Key: "ws-big", Phase: phaseDeployed, State: stateShutdown, Spec: vmm.Spec{MemoryMiB: 1 << 20}}
	if r, err := m.admitBoot(ctx, big); err != nil {
		t.Fatalf("no account kept, yet a boot was refused: %v", err)
	} else {
		r()
	}
	if got := m.uncommittedMiB(host, ""); got != host.FreeMiB {
		t.Errorf("no account kept: a deploy is offered %d MiB, want the host's free %d", got, host.FreeMiB)
	}
}

// TestAnUnreadableRecordDoesNotStopEveryBoot: a journal record this manager cannot
// read (damaged, or a newer vws's; the site administrator must look at it) is left
// out of the account with a warning: the other workspaces still boot, and a deploy is
// offered what the readable records leave.
func TestAnUnreadableRecordDoesNotStopEveryBoot(t *testing.T) {
	m, hv, rec := crashManager(t, "ws-new", stateShutdown, false)
	host := vmm.HostInfo{MemoryMiB: 8192, FreeMiB: 8000}
	m.hv = hostInfoHV{crashHV: hv, info: host}
	rec.Spec.MemoryMiB = 512
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hv.dir, "ws-other.json"), []byte(`{"version": 2, "key": "ws-other"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.start(context.Background(), rec); err != nil {
		t.Fatalf("Start of a 512 MiB guest on an empty 8 GiB host, another workspace's record unreadable: %v", err)
	}
	if got := m.uncommittedMiB(host, "ws-third"); got != 8192-512-512 {
		t.Errorf("a deploy is offered %d MiB, want %d", got, 8192-512-512)
	}
}

// restoreProbeHV runs during while RestoreManagedSave brings the guest back into RAM.
type restoreProbeHV struct {
	hostInfoHV
	during func()
}

func (h restoreProbeHV) RestoreManagedSave(ctx context.Context, name string, paused bool) error {
	h.during()
	return h.hostInfoHV.RestoreManagedSave(ctx, name, paused)
}

// TestUndeployOfAManagedSaveIsAdmitted: Undeploy of a workspace libvirt saved by
// itself (managed save) restores the guest into RAM (paused) to save it again to
// memory.save. That is a boot: it must pass the account (or at least be counted while
// it runs), or it puts a guest into RAM the account has no room for, and a Start
// meanwhile is admitted beside it.
func TestUndeployOfAManagedSaveIsAdmitted(t *testing.T) {
	ctx := context.Background()
	const k = "ws-managed"
	host := vmm.HostInfo{MemoryMiB: 4096, FreeMiB: 4000}
	setup := func(t *testing.T, others int64) (*Manager, *record, *bool, *int64) {
		m, hv, rec := crashManager(t, k, statePaused, true)
		os.Remove(rec.MemoryFile)
		rec.ManagedSave, rec.MemoryFile, rec.Spec.MemoryMiB = true, "", 2048
		if err := m.journal.put(rec); err != nil {
			t.Fatal(err)
		}
		hv.managedSave = true
		hv.set(vmm.StateShutOff, false, true)
		if others > 0 {
			run := &record{Key: "ws-running", Phase: phaseDeployed, State: stateRunning, Spec: vmm.Spec{MemoryMiB: int(others)}}
			if err := m.journal.put(run); err != nil {
				t.Fatal(err)
			}
		}
		called, left := new(bool), new(int64)
		m.hv = restoreProbeHV{hostInfoHV: hostInfoHV{crashHV: hv, info: host}, during: func() {
			*called = true
			*left = m.uncommittedMiB(host, "")
		}}
		return m, rec, called, left
	}

	t.Run("no room", func(t *testing.T) {
		// 4096 - 512 reserved - 2048 running = 1536 left; the saved guest has 2048.
		m, rec, called, _ := setup(t, 2048)
		err := m.managedSaveToFile(ctx, rec)
		if *called {
			t.Errorf("a 2048 MiB guest was restored into RAM with 1536 MiB left in the account (err %v)", err)
		}
		if !errors.Is(err, errdefs.ErrMetadata) || !strings.Contains(errdefs.Advice(err), "discard its RAM") {
			t.Errorf("the refusal: %v (advice %q)", err, errdefs.Advice(err))
		}
		if r, _ := m.journal.get(k); !r.Hot || !r.ManagedSave || r.State != statePaused {
			t.Errorf("after the refusal the record says %s, hot %v, managed save %v", r.State, r.Hot, r.ManagedSave)
		}
	})
	t.Run("counted while restored", func(t *testing.T) {
		m, rec, called, left := setup(t, 0)
		if err := m.managedSaveToFile(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if !*called {
			t.Fatal("not restored")
		}
		// 4096 - 512 = 3584 with nothing in RAM; the restored 2048 MiB guest leaves 1536.
		if *left != 1536 {
			t.Errorf("while the guest is restored into RAM the account leaves %d MiB, want 1536 (the guest is not counted)", *left)
		}
	})
}

// TestATransitionIsAnnounced: a guest entering or leaving RAM changes the memory the
// host offers for placement, whatever made it (Unpause restoring a serialized guest,
// the reconciler seeing one power off): every transition asks for an announcement.
func TestATransitionIsAnnounced(t *testing.T) {
	m, _, rec := crashManager(t, "ws-announced", statePaused, true)
	m.announceKick = make(chan struct{}, 1)
	if err := m.transition(context.Background(), rec, stateRunning, "restored from its memory image"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.announceKick:
	default:
		t.Fatal("a guest restored into RAM asked for no announcement of the memory this host offers")
	}
}

// TestADeployThatBootsHoldsItsMemoryWhileItStages: a deploy that will boot its guest
// holds the memory it was granted while it stages (minutes for a large image): a
// second one meanwhile is granted only what is left, and one that boots nothing holds
// nothing.
func TestADeployThatBootsHoldsItsMemoryWhileItStages(t *testing.T) {
	m, hv, _ := crashManager(t, "ws-a", stateShutdown, false)
	host := vmm.HostInfo{MemoryMiB: 4096, FreeMiB: 4000}
	m.hv = hostInfoHV{crashHV: hv, info: host}
	grantAll := func(free int64) (int64, error) { return free, nil }
	grant := func(mib int64) func(int64) (int64, error) {
		return func(free int64) (int64, error) {
			if mib > free {
				return 0, errors.New("no room")
			}
			return mib, nil
		}
	}
	release, err := m.grantForDeploy(host, "ws-a", true, grant(3000))
	if err != nil {
		t.Fatal(err)
	}
	var offered int64
	if _, err := m.grantForDeploy(host, "ws-b", false, func(free int64) (int64, error) { offered = free; return 0, nil }); err != nil {
		t.Fatal(err)
	}
	if offered != 4096-512-3000 {
		t.Errorf("beside a deploy staging a 3000 MiB guest it will boot, another is offered %d MiB, want %d", offered, 4096-512-3000)
	}
	if _, err := m.grantForDeploy(host, "ws-b", true, grant(1024)); err == nil {
		t.Error("a second 1024 MiB deploy was granted with 584 MiB left")
	}
	release()
	if r, err := m.grantForDeploy(host, "ws-b", true, grant(1024)); err != nil {
		t.Errorf("once the first deploy is done: %v", err)
	} else {
		r()
	}
	// One that boots nothing (deploy shut down) holds nothing.
	if _, err := m.grantForDeploy(host, "ws-c", false, grant(3000)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.grantForDeploy(host, "ws-d", false, func(free int64) (int64, error) { offered = free; return grantAll(free) }); err != nil || offered != 4096-512 {
		t.Errorf("after a deploy that boots nothing, another is offered %d MiB (%v), want %d", offered, err, 4096-512)
	}
}

// TestACutOffRestoreKeepsItsMemory: a restore libvirtd fell silent under may still
// bring the guest into RAM when it wakes; until the reconciler knows, its memory
// stays counted, or a boot meanwhile is admitted into the RAM the restored guest
// then takes too.
func TestACutOffRestoreKeepsItsMemory(t *testing.T) {
	ctx := context.Background()
	const k = "ws-cutoff"
	m, hv, rec := crashManager(t, k, statePaused, true)
	host := vmm.HostInfo{MemoryMiB: 4096, FreeMiB: 4000}
	m.hv = hostInfoHV{crashHV: hv, info: host}
	rec.Spec.MemoryMiB = 2048
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	hv.fail = map[string]error{"restore": fmt.Errorf("restore: no answer: %w (%w)", errdefs.ErrHypervisor, vmm.ErrOutcomeUnknown)}
	if _, err := m.Start(ctx, workspaceEPR(rec)); !errors.Is(err, vmm.ErrOutcomeUnknown) {
		t.Fatalf("Start with the restore cut off: %v", err)
	}
	// 4096 - 512 reserved - 2048 the restore may still take = 1536 left.
	other := &record{Key: "ws-other", Phase: phaseDeployed, State: stateShutdown, Spec: vmm.Spec{MemoryMiB: 2048}}
	if release, err := m.admitBoot(ctx, other); err == nil {
		release()
		t.Fatalf("a 2048 MiB boot beside a cut-off restore of 2048 MiB, 3584 MiB for guests, was admitted")
	}
	if got := m.uncommittedMiB(host, "ws-other"); got != 1536 {
		t.Errorf("beside a cut-off restore a deploy is offered %d MiB, want 1536", got)
	}
}
