package manager

import (
	"context"
	"testing"

	"github.com/vws-grid/vws/vmm"
)

// restoringHV is hostInfoHV whose Restore brings the guest back (running or paused).
type restoringHV struct{ hostInfoHV }

func (h restoringHV) Restore(_ context.Context, _ string, _ vmm.Spec, paused bool) error {
	h.set(vmm.StateRunning, false, false)
	if paused {
		h.set(vmm.StatePaused, false, false)
	}
	return nil
}

// reannounced says whether the manager will tell its Repositories of a change soon:
// an announcement was asked for (offerChanged), or the announcer's 5-second offer
// check will see the offer differ from what was announced (fingerprint).
func reannounced(m *Manager, announced string) bool {
	select {
	case <-m.announceKick:
		return true
	default:
	}
	return m.offerFingerprint() != announced
}

// TestUnpauseOfASerializedWorkspaceIsAnnounced: Unpause of a serialized workspace
// restores its guest into RAM, which takes its memory out of what the host announces
// as free (MemoryFreeMiB, the memory account's uncommitted figure), as a Start of it
// does. Start asks for an announcement; Unpause asks for none, and the 5-second offer
// check leaves memory out: the Repositories go on placing workspaces here on memory
// the account no longer has, for up to a whole announcement period (a minute), and
// each such deploy is refused by this manager.
func TestUnpauseOfASerializedWorkspaceIsAnnounced(t *testing.T) {
	for _, op := range []string{"Start", "Unpause"} {
		t.Run(op, func(t *testing.T) {
			ctx := context.Background()
			m, hv, rec := crashManager(t, "ws-hot", statePaused, true)
			host := vmm.HostInfo{DomainType: "kvm", Arch: "x86_64", CPUs: 4, MemoryMiB: 4096, FreeMiB: 4000}
			m.hv = restoringHV{hostInfoHV{crashHV: hv, info: host}}
			m.announceKick = make(chan struct{}, 1)
			rec.Spec.MemoryMiB = 2048
			if err := m.journal.put(rec); err != nil {
				t.Fatal(err)
			}
			before := m.uncommittedMiB(host, "")
			announced := m.offerFingerprint() // as the announcer last sent it
			var err error
			if op == "Start" {
				_, err = m.Start(ctx, workspaceEPR(rec))
			} else {
				_, err = m.Unpause(ctx, workspaceEPR(rec))
			}
			if err != nil {
				t.Fatalf("%s of the serialized workspace: %v", op, err)
			}
			after := m.uncommittedMiB(host, "")
			if after == before {
				t.Fatalf("the restore did not change the memory account (%d MiB): the test sets nothing up", after)
			}
			if !reannounced(m, announced) {
				t.Fatalf("%s restored a 2048 MiB guest into RAM (the host's announced MemoryFreeMiB goes from %d to %d MiB), but no announcement was asked for and the offer check does not see it: the Repositories place on %d MiB for up to %s",
					op, before, after, before, DefaultAnnounceEvery)
			}
		})
	}
}

// TestAGuestThatPoweredOffIsAnnounced: the reconciler records a guest that powered
// off by itself (or crashed, or was started behind vws's back): the memory account
// changes by the guest's RAM, but nothing asks for an announcement, so placement
// works from the old figure until the next periodic one.
func TestAGuestThatPoweredOffIsAnnounced(t *testing.T) {
	ctx := context.Background()
	m, hv, rec := crashManager(t, "ws-run", stateRunning, false)
	host := vmm.HostInfo{DomainType: "kvm", Arch: "x86_64", CPUs: 4, MemoryMiB: 4096, FreeMiB: 4000}
	m.hv = hostInfoHV{crashHV: hv, info: host}
	m.announceKick = make(chan struct{}, 1)
	m.reportq = make(chan string, 16)
	rec.Spec.MemoryMiB = 2048
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	before := m.uncommittedMiB(host, "")
	announced := m.offerFingerprint()
	hv.set(vmm.StateShutOff, false, false) // the guest ran `poweroff`
	m.reconcile(ctx)
	if r, _ := m.journal.get(rec.Key); r.State != stateShutdown {
		t.Fatalf("the reconciler left the workspace %s: the test sets nothing up", r.State)
	}
	after := m.uncommittedMiB(host, "")
	if !reannounced(m, announced) {
		t.Fatalf("the guest powered off (the host's announced MemoryFreeMiB goes from %d to %d MiB), but no announcement was asked for and the offer check does not see it",
			before, after)
	}
}
