package manager

import (
	"context"
	"errors"
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
