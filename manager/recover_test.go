package manager

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/vmm"
)

// deployedRec is a deployed record in state, already reported to the Repository.
func deployedRec(key, state string, hot bool) *record {
	r := &record{Key: key, Phase: phaseDeployed, State: state, Hot: hot}
	r.Reported = r.reportKey()
	return r
}

func domOf(key string, st vmm.State) vmm.Domain {
	return vmm.Domain{Name: domainName(key), UUID: domainUUID(key), State: st}
}

// forcedDom is key's domain shut off by a forced stop (virsh destroy).
func forcedDom(key string) vmm.Domain {
	d := domOf(key, vmm.StateShutOff)
	d.Forced = true
	return d
}

// savedDom is key's domain shut off by a save of its RAM (virDomainSave).
func savedDom(key string) vmm.Domain {
	d := domOf(key, vmm.StateShutOff)
	d.Saved = true
	return d
}

// managedSavedDom is key's domain shut off by libvirt saving its RAM to its own file
// (virsh managedsave, libvirt-guests at a host shutdown).
func managedSavedDom(key string) vmm.Domain {
	d := savedDom(key)
	d.ManagedSave = true
	return d
}

// managedRec is a serialized record whose RAM libvirt holds (managed save).
func managedRec(key string) *record {
	r := deployedRec(key, statePaused, true)
	r.ManagedSave = true
	return r
}

// pendingRec is a deployed record in state whose shutdown op was under way.
func pendingRec(key, state string, hot bool, op string) *record {
	r := deployedRec(key, state, hot)
	r.Pending = op
	return r
}

func TestPlan(t *testing.T) {
	const k = "ws-1"
	staging := &record{Key: k, Phase: phaseStaging}
	unstaging := deployedRec(k, stateShutdown, false)
	unstaging.Phase = phaseUnstaging
	lagging := deployedRec(k, stateRunning, false)
	lagging.Reported = (&record{State: stateShutdown, Phase: phaseDeployed}).reportKey()
	neverReported := deployedRec(k, stateShutdown, false)
	neverReported.Reported = ""
	corruptedUnreported := deployedRec(k, stateCorrupted, false)
	corruptedUnreported.Reported = (&record{State: stateRunning, Phase: phaseDeployed}).reportKey()

	cases := []struct {
		name string
		recs []*record
		doms []vmm.Domain
		want []change
		// detail, when set, must appear in the single change's Detail.
		detail string
	}{
		{name: "nothing at all"},
		{name: "staging: a deploy died, undo it", recs: []*record{staging},
			want: []change{{Kind: abortStaging, Key: k}}},
		{name: "staging with its domain defined still aborts", recs: []*record{staging}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: abortStaging, Key: k}}},
		{name: "unstaging: an undeploy died, finish it", recs: []*record{unstaging}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: finishUnstage, Key: k}}},
		{name: "unstaging without a domain still finishes", recs: []*record{unstaging},
			want: []change{{Kind: finishUnstage, Key: k}}},
		{name: "in agreement: running", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)}},
		{name: "in agreement: paused", recs: []*record{deployedRec(k, statePaused, false)}, doms: []vmm.Domain{domOf(k, vmm.StatePaused)}},
		{name: "in agreement: shutdown", recs: []*record{deployedRec(k, stateShutdown, false)}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)}},
		{name: "running, domain shut off: the guest powered off", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: observe, Key: k, State: stateShutdown}}, detail: "powered off"},
		{name: "paused in RAM, domain shut off: shutdown", recs: []*record{deployedRec(k, statePaused, false)}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: observe, Key: k, State: stateShutdown}}, detail: "powered off"},
		{name: "serialize under way, domain shut off with its reason forgotten (libvirtd restarted): the save finished", recs: []*record{withPending(deployedRec(k, stateRunning, false), pendingSerialize)}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: adoptSave, Key: k}}},
		{name: "serialize under way, domain paused by the save: still saving, wait", recs: []*record{withPending(deployedRec(k, stateRunning, false), pendingSerialize)}, doms: []vmm.Domain{busyDom(k)}},
		{name: "serialize of a paused guest under way: still saving, wait", recs: []*record{withPending(deployedRec(k, statePaused, false), pendingSerialize)}, doms: []vmm.Domain{busyDom(k)}},
		{name: "serialize under way, domain running: the save did not happen", recs: []*record{withPending(deployedRec(k, stateRunning, false), pendingSerialize)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: abandonSerialize, Key: k, State: stateRunning}}},
		{name: "the detail changed, not the state (paused in RAM → serialized): report again", recs: []*record{func() *record {
			r := deployedRec(k, statePaused, true)
			r.Detail = "serialized: RAM saved"
			return r
		}()}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)}, want: []change{{Kind: retryReport, Key: k}}},
		{name: "running, paused by a libvirt job (virsh managedsave under way): wait for its end", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{busyDom(k)}},
		{name: "serialize under way, QEMU died (domain crashed): corrupted", recs: []*record{withPending(deployedRec(k, stateRunning, false), pendingSerialize)}, doms: []vmm.Domain{domOf(k, vmm.StateCrashed)},
			want: []change{{Kind: abandonSerialize, Key: k, State: stateCorrupted}}, detail: "QEMU process died while a serialize"},
		{name: "serialize of a paused guest, no save under way: it did not happen, the guest stays paused", recs: []*record{withPending(deployedRec(k, statePaused, false), pendingSerialize)}, doms: []vmm.Domain{domOf(k, vmm.StatePaused)},
			want: []change{{Kind: abandonSerialize, Key: k, State: statePaused}}},
		{name: "hot (serialized), domain shut off: as it should be", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)}},
		{name: "running, domain forced off (virsh destroy): corrupted", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{forcedDom(k)},
			want: []change{{Kind: observe, Key: k, State: stateCorrupted}}, detail: "forced off"},
		{name: "paused in RAM, domain forced off: corrupted", recs: []*record{deployedRec(k, statePaused, false)}, doms: []vmm.Domain{forcedDom(k)},
			want: []change{{Kind: observe, Key: k, State: stateCorrupted}}, detail: "forced off"},
		{name: "shutdown, domain forced off (our own Trash or forced shutdown)", recs: []*record{deployedRec(k, stateShutdown, false)}, doms: []vmm.Domain{forcedDom(k)}},
		{name: "hot, domain forced off before the save", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{forcedDom(k)}},
		{name: "corrupted, domain forced off: already known", recs: []*record{deployedRec(k, stateCorrupted, false)}, doms: []vmm.Domain{forcedDom(k)}},
		{name: "running, domain crashed: corrupted", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{domOf(k, vmm.StateCrashed)},
			want: []change{{Kind: observe, Key: k, State: stateCorrupted}}, detail: "crashed"},
		{name: "paused, domain crashed: corrupted", recs: []*record{deployedRec(k, statePaused, false)}, doms: []vmm.Domain{domOf(k, vmm.StateCrashed)},
			want: []change{{Kind: observe, Key: k, State: stateCorrupted}}, detail: "crashed"},
		{name: "corrupted, domain crashed: already known", recs: []*record{deployedRec(k, stateCorrupted, false)}, doms: []vmm.Domain{domOf(k, vmm.StateCrashed)}},
		{name: "running, domain vanished: corrupted", recs: []*record{deployedRec(k, stateRunning, false)},
			want: []change{{Kind: observe, Key: k, State: stateCorrupted}}, detail: "vanished"},
		{name: "paused in RAM, domain vanished: corrupted", recs: []*record{deployedRec(k, statePaused, false)},
			want: []change{{Kind: observe, Key: k, State: stateCorrupted}}, detail: "vanished"},
		{name: "shutdown, domain vanished: redefine", recs: []*record{deployedRec(k, stateShutdown, false)},
			want: []change{{Kind: redefine, Key: k}}},
		{name: "hot, domain vanished: redefine", recs: []*record{deployedRec(k, statePaused, true)},
			want: []change{{Kind: redefine, Key: k}}},
		{name: "corrupted, domain vanished: nothing more to conclude", recs: []*record{deployedRec(k, stateCorrupted, false)}},
		{name: "unknown domain state: conclude nothing (running)", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{domOf(k, vmm.StateUnknown)}},
		{name: "unknown domain state: conclude nothing (shutdown)", recs: []*record{deployedRec(k, stateShutdown, false)}, doms: []vmm.Domain{domOf(k, vmm.StateUnknown)}},
		{name: "unknown domain state: conclude nothing (hot)", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{domOf(k, vmm.StateUnknown)}},
		{name: "running, domain saved: a serialize finished unrecorded", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{savedDom(k)},
			want: []change{{Kind: adoptSave, Key: k}}},
		{name: "paused in RAM, domain saved: a serialize finished unrecorded", recs: []*record{deployedRec(k, statePaused, false)}, doms: []vmm.Domain{savedDom(k)},
			want: []change{{Kind: adoptSave, Key: k}}},
		{name: "running, domain managed-saved (libvirt-guests): take the RAM in", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{managedSavedDom(k)},
			want: []change{{Kind: adoptManagedSave, Key: k}}},
		{name: "paused in RAM, domain managed-saved: take the RAM in", recs: []*record{deployedRec(k, statePaused, false)}, doms: []vmm.Domain{managedSavedDom(k)},
			want: []change{{Kind: adoptManagedSave, Key: k}}},
		{name: "hot in a managed save, domain managed-saved: as it should be", recs: []*record{managedRec(k)}, doms: []vmm.Domain{managedSavedDom(k)}},
		{name: "hot in a managed save, the image gone: an Undeploy moved it, or it was removed", recs: []*record{managedRec(k)}, doms: []vmm.Domain{savedDom(k)},
			want: []change{{Kind: adoptSave, Key: k}}},
		{name: "hot in a managed save, domain running: libvirt-guests restored it at boot", recs: []*record{managedRec(k)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: finishRestore, Key: k, State: stateRunning}}},
		{name: "hot, domain saved: as it should be", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{savedDom(k)}},
		{name: "shutdown after its memory image was dropped, domain still saved-off", recs: []*record{deployedRec(k, stateShutdown, false)}, doms: []vmm.Domain{savedDom(k)}},
		{name: "hot, domain running: a restore finished unrecorded", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: finishRestore, Key: k, State: stateRunning}}},
		{name: "hot, domain paused: a restore (paused) finished unrecorded", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{domOf(k, vmm.StatePaused)},
			want: []change{{Kind: finishRestore, Key: k, State: statePaused}}},
		{name: "hot, domain paused by a restore's job (the manager died during it): still restoring, wait", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{busyDom(k)}},
		{name: "restore cut off, domain running: it happened", recs: []*record{pendingRec(k, statePaused, true, pendingRestore)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: finishRestore, Key: k, State: stateRunning}}},
		{name: "restore cut off, domain paused by its job: still restoring, wait", recs: []*record{pendingRec(k, statePaused, true, pendingRestore)}, doms: []vmm.Domain{busyDom(k)}},
		{name: "restore cut off, domain still shut off: it did not happen", recs: []*record{pendingRec(k, statePaused, true, pendingRestore)}, doms: []vmm.Domain{savedDom(k)},
			want: []change{{Kind: abandonRestore, Key: k}}},
		{name: "restore cut off, QEMU died under it: it did not happen", recs: []*record{pendingRec(k, statePaused, true, pendingRestore)}, doms: []vmm.Domain{domOf(k, vmm.StateCrashed)},
			want: []change{{Kind: abandonRestore, Key: k}}},
		{name: "restore cut off, domain state unknown: conclude nothing", recs: []*record{pendingRec(k, statePaused, true, pendingRestore)}, doms: []vmm.Domain{domOf(k, vmm.StateUnknown)}},
		// The domain cannot tell a guest restored, run and ended (the restore not
		// journaled) from QEMU dying while it loaded the image; its disk can (imageSpent).
		{name: "hot, restored and ran unrecorded (disk written since), then powered off: the image is spent", recs: []*record{spentRec(k, "")}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: dropSpent, Key: k, State: stateShutdown}}, detail: "powered off"},
		{name: "hot, restored and ran unrecorded, then its QEMU died: spent, corrupted", recs: []*record{spentRec(k, "")}, doms: []vmm.Domain{domOf(k, vmm.StateCrashed)},
			want: []change{{Kind: dropSpent, Key: k, State: stateCorrupted}}, detail: "crashed"},
		{name: "hot, restored and ran unrecorded, then forced off: spent, corrupted", recs: []*record{spentRec(k, "")}, doms: []vmm.Domain{forcedDom(k)},
			want: []change{{Kind: dropSpent, Key: k, State: stateCorrupted}}, detail: "forced off"},
		{name: "hot, restored and ran unrecorded, then its domain vanished: spent, corrupted", recs: []*record{spentRec(k, "")},
			want: []change{{Kind: dropSpent, Key: k, State: stateCorrupted}}, detail: "vanished"},
		{name: "restore cut off, it ran and ended: spent, not abandoned", recs: []*record{spentRec(k, pendingRestore)}, doms: []vmm.Domain{domOf(k, vmm.StateCrashed)},
			want: []change{{Kind: dropSpent, Key: k, State: stateCorrupted}}},
		{name: "restore cut off, it ran and powered off: spent, not abandoned", recs: []*record{spentRec(k, pendingRestore)}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: dropSpent, Key: k, State: stateShutdown}}},
		// Restored and run from unrecorded, then saved by libvirt itself (libvirt-guests
		// at a host shutdown, virsh managedsave): its image is the RAM, memory.save spent.
		{name: "hot, restored and ran unrecorded, then libvirt saved it (managed save): take libvirt's RAM in", recs: []*record{spentRec(k, "")}, doms: []vmm.Domain{managedSavedDom(k)},
			want: []change{{Kind: adoptManagedSave, Key: k}}},
		{name: "restore cut off, it ran and libvirt saved it: take libvirt's RAM in, not abandoned", recs: []*record{spentRec(k, pendingRestore)}, doms: []vmm.Domain{managedSavedDom(k)},
			want: []change{{Kind: adoptManagedSave, Key: k}}},
		{name: "hot, domain managed-saved though the disk reads unwritten: libvirt's RAM is the later", recs: []*record{deployedRec(k, statePaused, true)}, doms: []vmm.Domain{managedSavedDom(k)},
			want: []change{{Kind: adoptManagedSave, Key: k}}},
		{name: "hot and spent, domain running: a restore finished unrecorded", recs: []*record{spentRec(k, "")}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: finishRestore, Key: k, State: stateRunning}}},
		{name: "hot and spent, domain paused by a job: wait", recs: []*record{spentRec(k, pendingRestore)}, doms: []vmm.Domain{busyDom(k)}},
		{name: "hot and spent, domain state unknown: conclude nothing", recs: []*record{spentRec(k, "")}, doms: []vmm.Domain{domOf(k, vmm.StateUnknown)}},
		{name: "hot and spent, a Trash under way: finish it", recs: []*record{spentRec(k, pendingTrash)}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: finishTrash, Key: k}}},
		{name: "Normal shutdown under way, domain forced off: forced by it, shutdown (not corrupted)", recs: []*record{pendingRec(k, stateRunning, false, pendingShutdown)},
			doms: []vmm.Domain{forcedDom(k)}, want: []change{{Kind: finishShutdown, Key: k, State: stateShutdown}}, detail: "forced off"},
		{name: "Normal shutdown under way, the guest powered off", recs: []*record{pendingRec(k, stateRunning, false, pendingShutdown)},
			doms: []vmm.Domain{domOf(k, vmm.StateShutOff)}, want: []change{{Kind: finishShutdown, Key: k, State: stateShutdown}}},
		{name: "Normal shutdown under way from paused, domain forced off", recs: []*record{pendingRec(k, statePaused, false, pendingShutdown)},
			doms: []vmm.Domain{forcedDom(k)}, want: []change{{Kind: finishShutdown, Key: k, State: stateShutdown}}, detail: "forced off"},
		{name: "Normal shutdown under way, the guest still runs: no longer under way", recs: []*record{pendingRec(k, stateRunning, false, pendingShutdown)},
			doms: []vmm.Domain{domOf(k, vmm.StateRunning)}, want: []change{{Kind: finishShutdown, Key: k, State: stateRunning}}},
		{name: "Normal shutdown under way, still paused", recs: []*record{pendingRec(k, statePaused, false, pendingShutdown)},
			doms: []vmm.Domain{domOf(k, vmm.StatePaused)}, want: []change{{Kind: finishShutdown, Key: k, State: statePaused}}},
		{name: "Normal shutdown under way, domain vanished: corrupted", recs: []*record{pendingRec(k, stateRunning, false, pendingShutdown)},
			want: []change{{Kind: observe, Key: k, State: stateCorrupted}}, detail: "vanished"},
		// libvirtd killed mid-shutdown takes QEMU with it, and libvirt then says
		// "crashed": the shutdown asked for happened, forced, as after a grace period.
		{name: "Normal shutdown under way, QEMU ended uncleanly: shut down, forced off", recs: []*record{pendingRec(k, stateRunning, false, pendingShutdown)},
			doms: []vmm.Domain{domOf(k, vmm.StateCrashed)}, want: []change{{Kind: finishShutdown, Key: k, State: stateShutdown}}, detail: "forced off"},
		// A Trash redefines a crashed workspace's domain, and libvirt keeps saying
		// "crashed" for it: a workspace recorded shut down stays so (it used to flip
		// back to corrupted on the next round, and Start was refused).
		{name: "shut down, domain still reads crashed: nothing to do", recs: []*record{deployedRec(k, stateShutdown, false)},
			doms: []vmm.Domain{domOf(k, vmm.StateCrashed)}},
		{name: "Normal shutdown under way, unknown domain state: conclude nothing", recs: []*record{pendingRec(k, stateRunning, false, pendingShutdown)},
			doms: []vmm.Domain{domOf(k, vmm.StateUnknown)}},
		{name: "Trash under way on a serialized workspace: finish it (not serialized with stale RAM)", recs: []*record{pendingRec(k, statePaused, true, pendingTrash)},
			doms: []vmm.Domain{savedDom(k)}, want: []change{{Kind: finishTrash, Key: k}}},
		{name: "Trash under way, domain forced off by it: finish it (not corrupted)", recs: []*record{pendingRec(k, stateRunning, false, pendingTrash)},
			doms: []vmm.Domain{forcedDom(k)}, want: []change{{Kind: finishTrash, Key: k}}},
		{name: "Trash under way, domain not yet stopped: finish it", recs: []*record{pendingRec(k, stateRunning, false, pendingTrash)},
			doms: []vmm.Domain{domOf(k, vmm.StateRunning)}, want: []change{{Kind: finishTrash, Key: k}}},
		{name: "Trash under way on a corrupted workspace whose domain vanished: finish it", recs: []*record{pendingRec(k, stateCorrupted, false, pendingTrash)},
			want: []change{{Kind: finishTrash, Key: k}}},
		{name: "Trash under way, unknown domain state: conclude nothing", recs: []*record{pendingRec(k, statePaused, true, pendingTrash)},
			doms: []vmm.Domain{domOf(k, vmm.StateUnknown)}},
		{name: "memory image being discarded: finish it (not serialized without its image)", recs: []*record{pendingRec(k, statePaused, true, pendingDrop)},
			doms: []vmm.Domain{savedDom(k)}, want: []change{{Kind: finishDrop, Key: k}}},
		{name: "memory image being discarded, domain vanished: finish it", recs: []*record{pendingRec(k, statePaused, true, pendingDrop)},
			want: []change{{Kind: finishDrop, Key: k}}},
		{name: "recorded running, domain paused", recs: []*record{deployedRec(k, stateRunning, false)}, doms: []vmm.Domain{domOf(k, vmm.StatePaused)},
			want: []change{{Kind: observe, Key: k, State: statePaused}}},
		{name: "recorded paused, domain running", recs: []*record{deployedRec(k, statePaused, false)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: observe, Key: k, State: stateRunning}}},
		{name: "recorded shutdown, domain running", recs: []*record{deployedRec(k, stateShutdown, false)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: observe, Key: k, State: stateRunning}}},
		{name: "recorded corrupted, domain running: stays corrupted", recs: []*record{deployedRec(k, stateCorrupted, false)}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)}},
		{name: "reported lags behind the journal", recs: []*record{lagging}, doms: []vmm.Domain{domOf(k, vmm.StateRunning)},
			want: []change{{Kind: retryReport, Key: k}}},
		{name: "never reported", recs: []*record{neverReported}, doms: []vmm.Domain{domOf(k, vmm.StateShutOff)},
			want: []change{{Kind: retryReport, Key: k}}},
		{name: "corrupted not yet reported, domain gone", recs: []*record{corruptedUnreported},
			want: []change{{Kind: retryReport, Key: k}}},
		{name: "hot, shut off, not reported", recs: []*record{func() *record { r := deployedRec(k, statePaused, true); r.Reported = ""; return r }()},
			doms: []vmm.Domain{domOf(k, vmm.StateShutOff)}, want: []change{{Kind: retryReport, Key: k}}},
		{name: "an observation wins over a lagging report", recs: []*record{func() *record { r := deployedRec(k, stateRunning, false); r.Reported = ""; return r }()},
			doms: []vmm.Domain{domOf(k, vmm.StateShutOff)}, want: []change{{Kind: observe, Key: k, State: stateShutdown}}, detail: "powered off"},
		{name: "domains of no record are left alone", recs: []*record{deployedRec(k, stateRunning, false)},
			doms: []vmm.Domain{domOf("other", vmm.StateShutOff), domOf(k, vmm.StateRunning), {Name: "vws-x", State: vmm.StateCrashed}}},
		{name: "several records, each on its own",
			recs: []*record{staging, deployedRec("b", stateRunning, false), deployedRec("c", stateShutdown, false), deployedRec("d", statePaused, true)},
			doms: []vmm.Domain{domOf("b", vmm.StateShutOff), domOf("d", vmm.StateShutOff)},
			want: []change{{Kind: abortStaging, Key: k}, {Kind: observe, Key: "b", State: stateShutdown}, {Kind: redefine, Key: "c"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := plan(tc.recs, tc.doms)
			if tc.detail != "" {
				if len(got) != 1 || !strings.Contains(got[0].Detail, tc.detail) {
					t.Errorf("detail: got %+v, want one change whose detail says %q", got, tc.detail)
				}
			}
			for i := range got {
				if (got[i].Kind == observe || got[i].Kind == finishShutdown) && got[i].From == "" {
					t.Errorf("observe %+v does not say which recorded state it compared", got[i])
				}
				got[i].Detail, got[i].From = "", ""
			}
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestPlanObserveFrom: an observation names the recorded state it was planned from, so
// apply can tell when an operation changed the workspace meanwhile.
func TestPlanObserveFrom(t *testing.T) {
	got := plan([]*record{deployedRec("a", stateRunning, false), deployedRec("b", statePaused, false)},
		[]vmm.Domain{forcedDom("a"), domOf("b", vmm.StateRunning)})
	if len(got) != 2 || got[0].From != stateRunning || got[1].From != statePaused {
		t.Fatalf("plan: %+v", got)
	}
}

// TestPlanVanishedDetail: the reason a vanished running workspace is corrupted says
// what was lost and how to recover, since it reaches the client as the Detail.
func TestPlanVanishedDetail(t *testing.T) {
	got := plan([]*record{deployedRec("k", stateRunning, false)}, nil)
	if len(got) != 1 {
		t.Fatalf("plan: %+v", got)
	}
	for _, want := range []string{"vanished", "running", "RAM", "Trash"} {
		if !strings.Contains(got[0].Detail, want) {
			t.Errorf("detail %q does not say %q", got[0].Detail, want)
		}
	}
}

func TestJournalRoundTrip(t *testing.T) {
	j := &journal{dir: t.TempDir()}
	if recs, errs := j.all(); len(recs) != 0 || len(errs) != 0 {
		t.Fatalf("empty journal: %v %v", recs, errs)
	}
	a := &record{Key: "b-ws", Name: "second", WorkspaceAddress: "http://127.0.0.1:1/wsrf/services/WorkspaceService", WSAVersion: 2,
		Token: "tok", Phase: phaseDeployed, State: stateRunning, Detail: "d", Hot: false,
		OverlayDigest: "sha256:" + strings.Repeat("a", 64), StateAtCheckout: stateShutdown,
		Spec: vmm.Spec{Name: domainName("b-ws"), UUID: domainUUID("b-ws"), MemoryMiB: 128, CPUs: 1,
			Disks: []vmm.Disk{{Path: "/x/run.qcow2", Format: "qcow2", Target: "vda", Boot: true}},
			NICs:  []vmm.NIC{{MAC: derivedMAC("b-ws", 0), Kind: "network", Source: "default"}}},
		Overlay: "/x/overlay.qcow2", Run: "/x/run.qcow2"}
	b := &record{Key: "a-ws", Phase: phaseStaging}
	for _, r := range []*record{a, b} {
		if err := j.put(r); err != nil {
			t.Fatal(err)
		}
		if r.Version != journalVersion {
			t.Errorf("put left version %d", r.Version)
		}
	}
	got, err := j.get("b-ws")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, a) {
		t.Errorf("get:\n got %+v\nwant %+v", got, a)
	}
	// A put replaces the record; so does a volatile one. What was reported lives in
	// memory only: a restarted manager reports every workspace once more.
	a.State, a.Hot, a.MemoryFile = statePaused, true, "/x/memory.save"
	if err := j.putVolatile(a); err != nil {
		t.Fatal(err)
	}
	a.Reported = "paused/deployed"
	if err := j.put(a); err != nil {
		t.Fatal(err)
	}
	a.Reported = ""
	recs, errs := j.all()
	if len(errs) != 0 || len(recs) != 2 || recs[0].Key != "a-ws" || recs[1].Key != "b-ws" {
		t.Fatalf("all: %+v %v", recs, errs)
	}
	if !reflect.DeepEqual(recs[1], a) || !reflect.DeepEqual(recs[0], b) {
		t.Errorf("all:\n got %+v %+v\nwant %+v %+v", recs[0], recs[1], b, a)
	}
	if err := j.remove("a-ws"); err != nil {
		t.Fatal(err)
	}
	if err := j.remove("a-ws"); err != nil {
		t.Errorf("removing an absent record: %v", err)
	}
	if _, err := j.get("a-ws"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("get after remove: %v", err)
	}
	if recs, _ := j.all(); len(recs) != 1 {
		t.Errorf("all after remove: %+v", recs)
	}
}

func TestJournalVersionMismatch(t *testing.T) {
	j := &journal{dir: t.TempDir()}
	if err := j.put(&record{Key: "good", Phase: phaseDeployed, State: stateShutdown}); err != nil {
		t.Fatal(err)
	}
	for key, body := range map[string]string{
		"future":  `{"version": 2, "key": "future", "phase": "deployed"}`,
		"ancient": `{"key": "ancient", "phase": "deployed"}`,
		"garbled": `{"version": 1, "key": `,
	} {
		if err := os.WriteFile(filepath.Join(j.dir, key+".json"), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := j.get(key)
		if err == nil {
			t.Errorf("%s: a record this manager cannot read was accepted", key)
		} else if !strings.Contains(err.Error(), key) {
			t.Errorf("%s: error %q does not name the record", key, err)
		}
	}
	if _, err := j.get("future"); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("future version: %v", err)
	}
	recs, errs := j.all()
	if len(recs) != 1 || recs[0].Key != "good" || len(errs) != 3 {
		t.Errorf("all: %d records %+v, errors %v; want the good one and three errors", len(recs), recs, errs)
	}
	// The unreadable records stay for an operator (or a newer vws) to look at.
	if _, err := os.Stat(filepath.Join(j.dir, "future.json")); err != nil {
		t.Errorf("an unreadable record was removed: %v", err)
	}
}

func TestJournalRemovesLeftoverTmp(t *testing.T) {
	j := &journal{dir: t.TempDir()}
	if err := j.put(&record{Key: "ws", Phase: phaseDeployed, State: stateShutdown}); err != nil {
		t.Fatal(err)
	}
	// A write interrupted before its rename: half a record beside the whole one.
	tmp := filepath.Join(j.dir, "ws.json.tmp")
	if err := os.WriteFile(tmp, []byte(`{"version": 1, "key": "ws", "pha`), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(j.dir, "new.json.tmp") // a first write that never landed
	if err := os.WriteFile(other, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	recs, errs := j.all()
	if len(errs) != 0 || len(recs) != 1 || recs[0].State != stateShutdown {
		t.Fatalf("all: %+v %v", recs, errs)
	}
	for _, p := range []string{tmp, other} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", filepath.Base(p), err)
		}
	}
	ents, _ := os.ReadDir(j.dir)
	if len(ents) != 1 || ents[0].Name() != "ws.json" {
		t.Errorf("journal directory holds %v", ents)
	}
	// A put leaves no temporary file either.
	if err := j.put(recs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("put left %s: %v", tmp, err)
	}
}

// TestJournalVolatile: a volatile change is what this process reads, the disk keeps
// the last durable record (a restart takes running/paused from libvirt), and a
// durable put or a removal supersedes it.
func TestJournalVolatile(t *testing.T) {
	dir := t.TempDir()
	j := &journal{dir: dir}
	r := &record{Key: "k", Phase: phaseDeployed, State: stateShutdown}
	if err := (&journal{dir: dir}).putVolatile(r); err == nil {
		t.Fatal("a volatile change without a durable record was accepted")
	}
	if err := j.put(r); err != nil {
		t.Fatal(err)
	}
	r.State = stateRunning
	if err := j.putVolatile(r); err != nil {
		t.Fatal(err)
	}
	if got, _ := j.get("k"); got.State != stateRunning {
		t.Fatalf("this process reads %q, want running", got.State)
	}
	if got, _ := (&journal{dir: dir}).get("k"); got.State != stateShutdown {
		t.Fatalf("the disk holds %q, want the durable shutdown", got.State)
	}
	if recs, _ := j.all(); len(recs) != 1 || recs[0].State != stateRunning {
		t.Fatalf("all: %+v", recs)
	}
	r.State, r.Hot = statePaused, true
	if err := j.put(r); err != nil {
		t.Fatal(err)
	}
	if got, _ := (&journal{dir: dir}).get("k"); got.State != statePaused || !got.Hot {
		t.Fatalf("after a durable put the disk holds %+v", got)
	}
	r.State = stateRunning
	j.putVolatile(r)
	if err := j.remove("k"); err != nil {
		t.Fatal(err)
	}
	if _, err := j.get("k"); !os.IsNotExist(err) {
		t.Fatalf("removed record still readable: %v", err)
	}
}

// TestEventsAskForARound: a stop or crash of one of vws's domains asks the
// reconciler for a round at once (a burst asks once); the states vws's own
// operations cause, and other domains, do not.
func TestEventsAskForARound(t *testing.T) {
	m := &Manager{kick: make(chan struct{}, 1)}
	asked := func() bool {
		select {
		case <-m.kick:
			return true
		default:
			return false
		}
	}
	for _, c := range []struct {
		e    vmm.Event
		want bool
	}{
		{vmm.Event{Domain: domainName("k1"), Kind: vmm.EventStopped}, true},
		{vmm.Event{Domain: domainName("k1"), Kind: vmm.EventCrashed}, true},
		{vmm.Event{Domain: domainName("k1"), Kind: vmm.EventSuspended}, false},
		{vmm.Event{Domain: domainName("k1"), Kind: vmm.EventResumed}, false},
		{vmm.Event{Domain: domainName("k1"), Kind: vmm.EventStarted}, false},
		{vmm.Event{Domain: "someone-elses-vm", Kind: vmm.EventStopped}, false},
	} {
		m.onEvent(c.e)
		if got := asked(); got != c.want {
			t.Errorf("%+v: asked for a round %v, want %v", c.e, got, c.want)
		}
	}
	for range 5 {
		m.onEvent(vmm.Event{Domain: domainName("k2"), Kind: vmm.EventStopped})
	}
	if !asked() || asked() {
		t.Error("a burst of five stops did not ask for exactly one round")
	}
}

// crashHV is a hypervisor of one domain that notes, at each call, the journal record
// a manager killed right there would come back to (the one on disk).
type crashHV struct {
	t   *testing.T
	dir string // the journal's
	key string
	// managedSave: the domain has a managed-save image RestoreManagedSave may resume.
	managedSave bool
	dom         *vmm.Domain // nil: no domain
	shut        vmm.State   // what Shutdown leaves
	// forced is what Shutdown reports; onDisk, by call, the record on disk then.
	forced bool
	onDisk map[string]*record
	// fail, by call, makes it fail changing nothing (Save writes its file first, as
	// libvirtd does).
	fail map[string]error
	// dieOnSave: a failing Save takes the guest's QEMU down with it (crashed).
	dieOnSave bool
	// lastRun is what libvirt's log says of the domain's latest run; nil: no log.
	lastRun *vmm.LastRun
}

func (h *crashHV) LastRun(string) (vmm.LastRun, error) {
	if h.lastRun == nil {
		return vmm.LastRun{}, vmm.ErrNoRunLog
	}
	return *h.lastRun, nil
}

func (h *crashHV) at(op string) {
	r, err := (&journal{dir: h.dir}).get(h.key) // a fresh journal reads the disk
	if err != nil {
		h.t.Fatalf("%s: the journal on disk: %v", op, err)
	}
	if h.onDisk == nil {
		h.onDisk = map[string]*record{}
	}
	h.onDisk[op] = r
}

func (h *crashHV) set(st vmm.State, forced, saved bool) {
	d := domOf(h.key, st)
	d.Forced, d.Saved = forced, saved
	h.dom = &d
}

func (h *crashHV) Host(context.Context) (vmm.HostInfo, error)            { return vmm.HostInfo{}, nil }
func (h *crashHV) SavedMemoryMiB(context.Context, string) (int64, error) { return 256, nil }
func (h *crashHV) RestoreManagedSave(_ context.Context, _ string, paused bool) error {
	if !h.managedSave {
		h.t.Fatal("a managed save was restored")
	}
	h.managedSave = false
	h.set(vmm.StateRunning, false, false)
	if paused {
		h.set(vmm.StatePaused, false, false)
	}
	return nil
}
func (h *crashHV) RemoveManagedSave(context.Context, string) error {
	h.t.Fatal("a managed save was removed")
	return nil
}
func (h *crashHV) DomainType() string { return "kvm" }
func (h *crashHV) Define(_ context.Context, s vmm.Spec) error {
	h.at("define")
	if h.dom == nil {
		h.set(vmm.StateShutOff, false, false)
	}
	return nil
}
func (h *crashHV) Start(context.Context, string) error {
	h.at("start")
	h.set(vmm.StateRunning, false, false)
	return nil
}
func (h *crashHV) StartPaused(context.Context, string) error {
	h.at("start")
	h.set(vmm.StatePaused, false, false)
	return nil
}
func (h *crashHV) Pause(context.Context, string) error {
	h.set(vmm.StatePaused, false, false)
	return nil
}
func (h *crashHV) Resume(context.Context, string) error {
	h.at("resume")
	h.set(vmm.StateRunning, false, false)
	return nil
}
func (h *crashHV) Shutdown(context.Context, string, time.Duration) (bool, error) {
	h.at("shutdown")
	if err := h.fail["shutdown"]; err != nil {
		return false, err
	}
	h.set(vmm.StateShutOff, h.forced, false)
	return h.forced, nil
}
func (h *crashHV) Stop(context.Context, string) error {
	h.at("stop")
	if err := h.fail["stop"]; err != nil {
		return err
	}
	if h.dom != nil && (h.dom.State == vmm.StateRunning || h.dom.State == vmm.StatePaused) {
		h.set(vmm.StateShutOff, true, false)
	}
	return nil
}
func (h *crashHV) Save(_ context.Context, _, path string) error {
	h.at("save")
	if err := h.fail["save"]; err != nil {
		if werr := os.WriteFile(path, []byte("RAM being written"), 0o600); werr != nil {
			h.t.Fatal(werr)
		}
		if h.dieOnSave {
			h.set(vmm.StateCrashed, false, false)
		}
		return err
	}
	// A complete image of libvirt's QEMU driver, and the domain saved.
	if err := os.WriteFile(path, []byte("LibvirtQemudSave and the RAM"), 0o600); err != nil {
		h.t.Fatal(err)
	}
	h.set(vmm.StateShutOff, false, true)
	return nil
}
func (h *crashHV) Restore(_ context.Context, _ string, _ vmm.Spec, paused bool) error {
	h.at("restore")
	if err := h.fail["restore"]; err != nil {
		return err
	}
	h.set(vmm.StateRunning, false, false)
	if paused {
		h.set(vmm.StatePaused, false, false)
	}
	return nil
}
func (h *crashHV) Undefine(context.Context, string) error {
	h.at("undefine")
	h.dom = nil
	return nil
}
func (h *crashHV) State(context.Context, string) (vmm.State, error) {
	if err := h.fail["state"]; err != nil {
		return 0, err
	}
	if h.dom == nil {
		return 0, vmm.ErrNoDomain
	}
	return h.dom.State, nil
}
func (h *crashHV) List(context.Context, string) ([]vmm.Domain, error) {
	if h.dom == nil {
		return nil, nil
	}
	return []vmm.Domain{*h.dom}, nil
}

// crashManager is a manager over a temporary directory and hv, holding key deployed
// in state (serialized when hot, its memory image in place), with a real overlay
// and run disk, and no Repository (no token: nothing is checked in or reported).
func crashManager(t *testing.T, key, state string, hot bool) (*Manager, *crashHV, *record) {
	t.Helper()
	dir := t.TempDir()
	hv := &crashHV{t: t, dir: filepath.Join(dir, "journal"), key: key}
	m := &Manager{cfg: Config{Dir: dir, Host: "h", GracePeriod: time.Second}, hv: hv, journal: &journal{dir: hv.dir},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), cache: &cache{dir: filepath.Join(dir, "cache")},
		freeBytes: func(string) (int64, error) { return 10 << 30, nil }} // room for a serialize
	ws := m.workspaceDir(key)
	for _, d := range []string{hv.dir, ws} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	rec := &record{Key: key, WorkspaceAddress: "http://127.0.0.1:1/wsrf/services/WorkspaceService", WSAVersion: int(wsa.V200508),
		Phase: phaseDeployed, State: state, Hot: hot, Spec: vmm.Spec{Name: domainName(key), UUID: domainUUID(key)},
		Overlay: filepath.Join(ws, "overlay.qcow2"), Run: filepath.Join(ws, "run.qcow2")}
	if err := qcow2.CreateOverlay(rec.Overlay, filepath.Join(dir, "base.img"), "raw", 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := qcow2.CreateOverlay(rec.Run, rec.Overlay, "qcow2", 1<<20); err != nil {
		t.Fatal(err)
	}
	switch {
	case hot:
		rec.MemoryFile = filepath.Join(ws, "memory.save")
		if err := os.WriteFile(rec.MemoryFile, []byte("RAM"), 0o600); err != nil {
			t.Fatal(err)
		}
		hv.set(vmm.StateShutOff, false, true)
	case state == stateCorrupted:
	case state == stateShutdown:
		hv.set(vmm.StateShutOff, false, false)
	default:
		hv.set(vmm.StateRunning, false, false)
	}
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	if state == statePaused && !hot {
		m.journal.putVolatile(rec) // as Pause leaves it: the disk says running
		hv.set(vmm.StatePaused, false, false)
	}
	return m, hv, rec.clone()
}

// restartPlan is what a manager restarted on the record r would plan, libvirt holding
// dom (nil: none).
func restartPlan(r *record, dom *vmm.Domain) []change {
	var doms []vmm.Domain
	if dom != nil {
		doms = append(doms, *dom)
	}
	got := plan([]*record{r}, doms)
	for i := range got {
		got[i].From = ""
	}
	return got
}

// TestShutdownCrashPoints: a manager killed anywhere inside a Normal shutdown, a Trash
// or the discarding of a memory image comes back (its journal as on disk then, libvirt
// as the operation left it) to the right conclusion: the shutdown it forced off is
// shut down, not corrupted; a Trash and a discard are finished, not left serialized
// with stale RAM or with no memory image at all. Between the op's first effect and
// its outcome nothing else is journaled, so the record at its first libvirt call is
// the record at every crash point up to the outcome.
func TestShutdownCrashPoints(t *testing.T) {
	const k = "ws-crash"
	ctx := context.Background()

	t.Run("Normal, forced off after grace", func(t *testing.T) {
		for _, from := range []string{stateRunning, statePaused} {
			m, hv, rec := crashManager(t, k, from, false)
			hv.forced = true
			if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeNormal, time.Second); err != nil {
				t.Fatal(err)
			}
			r := hv.onDisk["shutdown"]
			if got, want := restartPlan(r, hv.dom), []change{{Kind: finishShutdown, Key: k, State: stateShutdown,
				Detail: "the guest did not power off in time; forced off"}}; !reflect.DeepEqual(got, want) {
				t.Errorf("from %s: killed as the guest was forced off, the restart plans %+v; want %+v", from, got, want)
			}
			if r, _ := (&journal{dir: hv.dir}).get(k); r.State != stateShutdown || r.Pending != "" {
				t.Errorf("from %s: the shutdown left %+v on disk", from, r)
			}
		}
	})

	t.Run("Trash of a serialized workspace", func(t *testing.T) {
		m, hv, rec := crashManager(t, k, statePaused, true)
		if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeTrash, 0); err != nil {
			t.Fatal(err)
		}
		r := hv.onDisk["stop"]
		// Killed after the disk was reset, the memory image still there.
		if got, want := restartPlan(r, hv.dom), []change{{Kind: finishTrash, Key: k}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("killed inside the Trash, the restart plans %+v; want %+v", got, want)
		}
		// The restart finishes it: the image goes, the workspace is shut down.
		if err := os.WriteFile(rec.MemoryFile, []byte("RAM"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := m.journal.put(r); err != nil {
			t.Fatal(err)
		}
		m.apply(ctx, change{Kind: finishTrash, Key: k})
		if got, _ := (&journal{dir: hv.dir}).get(k); got.State != stateShutdown || got.Hot || got.Pending != "" || got.MemoryFile != "" {
			t.Errorf("after the restart the record is %+v; want shut down, not serialized, nothing pending", got)
		}
		if _, err := os.Stat(rec.MemoryFile); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the memory image of the trashed deployment is kept (stat: %v)", err)
		}
	})

	t.Run("Trash of a running workspace", func(t *testing.T) {
		m, hv, rec := crashManager(t, k, stateRunning, false)
		if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeTrash, 0); err != nil {
			t.Fatal(err)
		}
		// The domain is off by the Trash's own forced stop.
		if got, want := restartPlan(hv.onDisk["stop"], hv.dom), []change{{Kind: finishTrash, Key: k}}; !reflect.DeepEqual(got, want) {
			t.Errorf("killed after the Trash forced the domain off, the restart plans %+v; want %+v", got, want)
		}
	})

	t.Run("Trash of a corrupted workspace whose domain vanished", func(t *testing.T) {
		m, hv, rec := crashManager(t, k, stateCorrupted, false)
		if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeTrash, 0); err != nil {
			t.Fatal(err)
		}
		// Killed as the domain was being defined again.
		if got, want := restartPlan(hv.onDisk["define"], nil), []change{{Kind: finishTrash, Key: k}}; !reflect.DeepEqual(got, want) {
			t.Errorf("killed inside the Trash, the restart plans %+v; want %+v", got, want)
		}
	})

	t.Run("Normal of a serialized workspace discards its memory image", func(t *testing.T) {
		m, hv, rec := crashManager(t, k, statePaused, true)
		// The removal fails (a directory with something in it): the op stops there, its
		// journal on disk as a crash right after the removal would leave it.
		os.Remove(rec.MemoryFile)
		if err := os.MkdirAll(filepath.Join(rec.MemoryFile, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeNormal, 0); err == nil {
			t.Fatal("the removal of the memory image did not fail")
		}
		r, err := (&journal{dir: hv.dir}).get(k)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := restartPlan(r, hv.dom), []change{{Kind: finishDrop, Key: k}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("killed while discarding the memory image, the restart plans %+v; want %+v", got, want)
		}
		os.RemoveAll(rec.MemoryFile) // a crash after the removal
		m.apply(ctx, change{Kind: finishDrop, Key: k})
		if got, _ := (&journal{dir: hv.dir}).get(k); got.State != stateShutdown || got.Hot || got.Pending != "" {
			t.Errorf("after the restart the record is %+v; want shut down, not serialized", got)
		}
	})

	// Serialize journals its mark before the save: libvirtd finishes a save whose
	// manager died, and a restarted libvirtd no longer says why the domain is off
	// ("saved" becomes "unknown"), so only the mark tells the saved RAM from a guest
	// that powered off.
	t.Run("Serialize", func(t *testing.T) {
		for _, from := range []string{stateRunning, statePaused} {
			m, hv, rec := crashManager(t, k, from, false)
			if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeSerialize, 0); err != nil {
				t.Fatal(err)
			}
			killed := hv.onDisk["save"]
			if killed.Pending != pendingSerialize {
				t.Fatalf("from %s: the record on disk during the save is %+v; want the serialize marked", from, killed)
			}
			if r, _ := (&journal{dir: hv.dir}).get(k); r.State != statePaused || !r.Hot || r.Pending != "" {
				t.Errorf("from %s: the serialize left %+v on disk", from, r)
			}
			mem := m.workspaceDir(k) + "/memory.save"
			restartWith := func(image string, dom vmm.Domain) *record {
				t.Helper()
				if err := m.journal.put(killed.clone()); err != nil {
					t.Fatal(err)
				}
				os.Remove(mem)
				if image != "" {
					if err := os.WriteFile(mem, []byte(image), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				hv.dom = &dom
				m.reconcile(ctx)
				r, err := (&journal{dir: hv.dir}).get(k)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			// The save finished; libvirtd restarted before the manager did.
			if r := restartWith("LibvirtQemudSave and the RAM", domOf(k, vmm.StateShutOff)); r.State != statePaused || !r.Hot || r.MemoryFile != mem || r.Pending != "" {
				t.Errorf("from %s: after a save libvirtd finished and forgot, the record is %+v; want serialized", from, r)
			}
			// The domain ended before the image was finished: the RAM is lost.
			if r := restartWith("LibvirtQemudPart and half the RAM", domOf(k, vmm.StateShutOff)); r.State != stateCorrupted || r.Hot || !strings.Contains(r.Detail, "incomplete") {
				t.Errorf("from %s: after a save cut off mid-image, the record is %+v; want corrupted, saying why", from, r)
			} else if _, err := os.Stat(mem); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("from %s: the incomplete memory image is kept (stat: %v)", from, err)
			}
			// Still saving (libvirt keeps the guest paused for the whole save): wait.
			if r := restartWith("LibvirtQemudPart", busyDom(k)); r.Pending != pendingSerialize {
				t.Errorf("from %s: with the save under way the record became %+v; want it left as it was", from, r)
			} else if _, err := os.Stat(mem); err != nil {
				t.Errorf("from %s: the image being written was removed: %v", from, err)
			}
			// Paused with no save under way: the save failed (libvirtd restarted) and
			// left the guest paused; what it wrote goes.
			if r := restartWith("LibvirtQemudPart", domOf(k, vmm.StatePaused)); r.State != statePaused || r.Hot || r.Pending != "" {
				t.Errorf("from %s: paused after a failed save, the record is %+v; want paused in RAM, nothing pending", from, r)
			} else if _, err := os.Stat(mem); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("from %s: the failed save's file is kept (stat: %v)", from, err)
			}
		}
		// The save failed (libvirtd, restarted, resumed the guest): it runs on, and
		// what the save wrote is no memory image.
		m, hv, rec := crashManager(t, k, stateRunning, false)
		if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeSerialize, 0); err != nil {
			t.Fatal(err)
		}
		if err := m.journal.put(hv.onDisk["save"]); err != nil {
			t.Fatal(err)
		}
		hv.set(vmm.StateRunning, false, false)
		m.reconcile(ctx)
		if r, _ := (&journal{dir: hv.dir}).get(k); r.State != stateRunning || r.Hot || r.Pending != "" {
			t.Errorf("after a save that did not happen the record is %+v; want running, nothing pending", r)
		}
		if _, err := os.Stat(m.workspaceDir(k) + "/memory.save"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed save's file is kept (stat: %v)", err)
		}
	})

	// An Undeploy of a workspace libvirt saved by itself (managed save) restores it
	// paused and saves it to memory.save: that save is a Serialize's, journaled first,
	// so one libvirtd finishes after a crash is adopted like a Serialize's.
	t.Run("Undeploy of a managed save", func(t *testing.T) {
		m, hv, rec := crashManager(t, k, statePaused, true)
		os.Remove(rec.MemoryFile)
		rec.ManagedSave, rec.MemoryFile = true, ""
		if err := m.journal.put(rec); err != nil {
			t.Fatal(err)
		}
		hv.managedSave = true
		hv.set(vmm.StateShutOff, false, true)
		if err := m.managedSaveToFile(ctx, rec); err != nil {
			t.Fatal(err)
		}
		killed := hv.onDisk["save"]
		if killed.Pending != pendingSerialize || killed.Hot || killed.ManagedSave {
			t.Fatalf("the record on disk during the save is %+v; want paused in RAM, the serialize marked", killed)
		}
		if got, want := restartPlan(killed, &vmm.Domain{Name: domainName(k), UUID: domainUUID(k), State: vmm.StateShutOff}), []change{{Kind: adoptSave, Key: k}}; !reflect.DeepEqual(got, want) {
			t.Errorf("killed during the save, libvirtd restarted, the restart plans %+v; want %+v", got, want)
		}
		if r, _ := (&journal{dir: hv.dir}).get(k); !r.Hot || r.ManagedSave || r.Pending != "" || r.MemoryFile == "" {
			t.Errorf("after the save the record is %+v; want serialized to memory.save, nothing pending", r)
		}
	})

	// A restore journals the workspace not serialized before it removes the spent
	// image; a manager killed in between finds a memory image no record holds, and
	// removes it at restart (one a serialized record holds is kept).
	t.Run("memory image spent by a restore", func(t *testing.T) {
		for _, hot := range []bool{false, true} {
			m, _, _ := crashManager(t, k, statePaused, hot)
			mem := m.workspaceDir(k) + "/memory.save"
			if !hot {
				if err := os.WriteFile(mem, []byte("LibvirtQemudSave spent"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			m.recover(ctx)
			_, err := os.Stat(mem)
			if gone := errors.Is(err, os.ErrNotExist); gone == hot {
				t.Errorf("serialized %v: after the restart the memory image is gone: %v", hot, gone)
			}
		}
	})

	t.Run("undo of a deploy that failed after recording it deployed", func(t *testing.T) {
		m, hv, rec := crashManager(t, k, stateShutdown, false)
		if err := m.undoDeploy(ctx, rec); err != nil {
			t.Fatal(err)
		}
		// Killed after the domain went: the undo is finished, not the domain defined
		// again over the files the undo goes on to delete.
		if got, want := restartPlan(hv.onDisk["undefine"], nil), []change{{Kind: abortStaging, Key: k}}; !reflect.DeepEqual(got, want) {
			t.Errorf("killed inside the undo, the restart plans %+v; want %+v", got, want)
		}
	})
}

// TestUnfinishedDiscardRefusesOtherOperations: a Trash or a discard of saved RAM that
// failed part-way leaves the workspace's disk and RAM image apart; until it is
// finished, a Start or Unpause (which would restore stale RAM), an Undeploy (which
// would upload it) or another shutdown is refused with what to do, and repeating the
// shutdown finishes it.
func TestUnfinishedDiscardRefusesOtherOperations(t *testing.T) {
	const k = "ws-unfinished"
	ctx := context.Background()
	refused := func(t *testing.T, m *Manager, rec *record, repeat string, ops map[string]func() error) {
		t.Helper()
		for name, op := range ops {
			err := op()
			if !errors.Is(err, errdefs.ErrState) || !strings.Contains(errdefs.Advice(err), "vws shutdown EPR "+repeat) {
				t.Errorf("%s while unfinished: %v (advice %q); want a state fault saying to repeat the shutdown %s", name, err, errdefs.Advice(err), repeat)
			}
		}
	}

	t.Run("discard of saved RAM", func(t *testing.T) {
		m, _, rec := crashManager(t, k, statePaused, true)
		os.Remove(rec.MemoryFile)
		if err := os.MkdirAll(filepath.Join(rec.MemoryFile, "x"), 0o700); err != nil { // the removal fails
			t.Fatal(err)
		}
		epr := workspaceEPR(rec)
		if _, err := m.Shutdown(ctx, epr, ModeNormal, 0); err == nil {
			t.Fatal("the removal of the memory image did not fail")
		}
		refused(t, m, rec, "--mode normal", map[string]func() error{
			"Start":     func() error { _, err := m.Start(ctx, epr); return err },
			"Unpause":   func() error { _, err := m.Unpause(ctx, epr); return err },
			"Undeploy":  func() error { _, err := m.Undeploy(ctx, epr); return err },
			"Serialize": func() error { _, err := m.Shutdown(ctx, epr, ModeSerialize, 0); return err },
		})
		os.RemoveAll(rec.MemoryFile)
		if _, err := m.Shutdown(ctx, epr, "", 0); err != nil {
			t.Fatalf("repeating the shutdown: %v", err)
		}
		if _, err := m.Start(ctx, epr); err != nil {
			t.Fatalf("Start once the discard is finished: %v", err)
		}
	})

	t.Run("Trash", func(t *testing.T) {
		m, _, rec := crashManager(t, k, statePaused, true)
		os.Remove(rec.Run)
		if err := os.MkdirAll(filepath.Join(rec.Run, "x"), 0o700); err != nil { // the reset fails
			t.Fatal(err)
		}
		epr := workspaceEPR(rec)
		if _, err := m.Shutdown(ctx, epr, ModeTrash, 0); err == nil {
			t.Fatal("the reset of the disk did not fail")
		}
		refused(t, m, rec, "--mode trash", map[string]func() error{
			"Start":    func() error { _, err := m.Start(ctx, epr); return err },
			"Unpause":  func() error { _, err := m.Unpause(ctx, epr); return err },
			"Undeploy": func() error { _, err := m.Undeploy(ctx, epr); return err },
			"Normal":   func() error { _, err := m.Shutdown(ctx, epr, ModeNormal, 0); return err },
		})
		os.RemoveAll(rec.Run)
		if _, err := m.Shutdown(ctx, epr, ModeTrash, 0); err != nil {
			t.Fatalf("repeating the Trash: %v", err)
		}
		if r, _ := m.journal.get(k); r.State != stateShutdown || r.Hot || r.Pending != "" {
			t.Fatalf("after the repeated Trash: %+v", r)
		}
	})
}

// TestRemoteErrKnowsWhatNeverLeft: a call that could not connect to the Repository
// changed nothing there, one that broke off after connecting may have.
func TestRemoteErrKnowsWhatNeverLeft(t *testing.T) {
	_, dialErr := net.Dial("tcp", "127.0.0.1:1") // nothing listens on port 1
	if dialErr == nil {
		t.Skip("something listens on 127.0.0.1:1")
	}
	refused := remoteErr("check the workspace out", fmt.Errorf("call x: %w", &url.Error{Op: "Post", URL: "x", Err: dialErr}))
	if !unreachable(refused) || outcomeUnknown(refused) || !strings.Contains(errdefs.Advice(refused), "nothing was changed") {
		t.Errorf("connection refused: unreachable %v, outcome unknown %v, advice %q", unreachable(refused), outcomeUnknown(refused), errdefs.Advice(refused))
	}
	cut := remoteErr("check the workspace out", fmt.Errorf("call x: %w", &url.Error{Op: "Post", URL: "x", Err: io.ErrUnexpectedEOF}))
	if !unreachable(cut) || !outcomeUnknown(cut) || errdefs.Advice(cut) != "" {
		t.Errorf("cut off after connecting: unreachable %v, outcome unknown %v, advice %q", unreachable(cut), outcomeUnknown(cut), errdefs.Advice(cut))
	}
}

// TestRemoteErrSaysEachPartOnce: a Repository fault passed on by the Manager keeps its
// type and its advice, and neither its type's words nor its advice come twice.
func TestRemoteErrSaysEachPartOnce(t *testing.T) {
	fe := &client.FaultError{Type: "ResourceUnknownFault",
		Description: "resource unknown: no workspace 0123 in this repository (destroyed, or never created); check the EPR, or list the workspaces"}
	err := remoteErr("check the workspace out", fe)
	if !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Fatalf("%v is not a resource-unknown error", err)
	}
	shown := err.Error() + "; " + errdefs.Advice(err) // what a fault's description says
	for _, part := range []string{"resource unknown", "check the EPR"} {
		if n := strings.Count(shown, part); n != 1 {
			t.Errorf("%q says %q %d times", shown, part, n)
		}
	}
	if !strings.Contains(shown, "refused to check the workspace out: no workspace 0123") {
		t.Errorf("%q", shown)
	}
}

// TestRemoteErrKeepsEveryClientFault: a Repository fault that is the caller's to act
// on (here: the owner's quota) reaches the Deploy caller as that fault, not as the
// Manager's own failure; one that says the Manager's request was wrong stays the
// Manager's.
func TestRemoteErrKeepsEveryClientFault(t *testing.T) {
	quota := remoteErr("check the workspace out", &client.FaultError{Type: "WorkspaceQuotaExceededFault",
		Description: "quota exceeded: memory=1MiB of dn:/O=Grid/CN=q (rules:2): 0 MiB in use, this request needs 64 MiB more; shut down workspaces you no longer need, or ask for a larger quota"})
	if !errors.Is(quota, errdefs.ErrQuotaExceeded) || !strings.Contains(quota.Error(), "memory=1MiB") || !strings.Contains(errdefs.Advice(quota), "larger quota") {
		t.Errorf("a quota refusal passed on as %v (advice %q)", quota, errdefs.Advice(quota))
	}
	bad := remoteErr("check the workspace out", &client.FaultError{Type: "ServiceFault", Fault: &soap.Fault{Code: soap.CodeClient},
		Description: "bad request: host \"a b\" is not a host name"})
	for _, clientSide := range []error{errdefs.ErrBadRequest, errdefs.ErrQuotaExceeded, errdefs.ErrState, errdefs.ErrAuthorization} {
		if errors.Is(bad, clientSide) {
			t.Errorf("the Manager's own bad request passed on as the caller's %v: %v", clientSide, bad)
		}
	}
}

// TestCutOffCallsLeaveWhatLibvirtdMayStillDo: a hypervisor call whose outcome is
// unknown (libvirtd fell silent under it) keeps a shutdown's mark, so the reconciler
// finishes it or reads its effect right, and leaves a save's memory image for
// libvirtd to finish; a call that failed outright clears the mark and the debris.
func TestCutOffCallsLeaveWhatLibvirtdMayStillDo(t *testing.T) {
	const k = "ws-cutoff"
	ctx := context.Background()
	unknown := fmt.Errorf("pause: no answer: %w (%w)", errdefs.ErrHypervisor, vmm.ErrOutcomeUnknown)
	refused := fmt.Errorf("pause: unreachable: %w", errdefs.ErrHypervisor)
	for _, c := range []struct {
		mode, call string
		err        error
		pending    string
	}{
		{ModeTrash, "stop", unknown, pendingTrash},
		{ModeTrash, "stop", refused, ""},
		{ModeNormal, "shutdown", unknown, pendingShutdown},
		{ModeNormal, "shutdown", refused, ""},
	} {
		m, hv, rec := crashManager(t, k, stateRunning, false)
		hv.fail = map[string]error{c.call: c.err}
		if _, err := m.Shutdown(ctx, workspaceEPR(rec), c.mode, time.Second); !errors.Is(err, c.err) {
			t.Fatalf("%s with %s failing: %v", c.mode, c.call, err)
		}
		if r, _ := (&journal{dir: hv.dir}).get(k); r.Pending != c.pending || r.State != stateRunning {
			t.Errorf("%s whose %s failed (%v): the record is %s, pending %q; want running, pending %q", c.mode, c.call, c.err, r.State, r.Pending, c.pending)
		}
	}
	for _, c := range []struct {
		err  error
		kept bool
	}{{unknown, true}, {refused, false}} {
		m, hv, rec := crashManager(t, k, stateRunning, false)
		hv.fail = map[string]error{"save": c.err}
		if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeSerialize, 0); !errors.Is(err, c.err) {
			t.Fatalf("serialize with the save failing: %v", err)
		}
		_, err := os.Stat(filepath.Join(m.workspaceDir(k), "memory.save"))
		if kept := err == nil; kept != c.kept {
			t.Errorf("serialize whose save failed (%v): memory image kept %v, want %v", c.err, kept, c.kept)
		}
	}
}

// TestCutOffRestoreIsAwaited: a restore libvirtd fell silent under may still
// happen when it wakes. Until the reconciler has seen what libvirt did, no other
// operation may act on the serialized record (a Normal shutdown would discard the
// memory image of a guest about to run from it, an Undeploy would hand back that
// image beside a disk the guest has moved past); then the workspace is recorded
// running if the restore happened, and still serialized if it did not.
func TestCutOffRestoreIsAwaited(t *testing.T) {
	const k = "ws-cutoff-restore"
	ctx := context.Background()
	unknown := fmt.Errorf("restore: no answer: %w (%w)", errdefs.ErrHypervisor, vmm.ErrOutcomeUnknown)
	for _, happened := range []bool{true, false} {
		m, hv, rec := crashManager(t, k, statePaused, true)
		epr := workspaceEPR(rec)
		hv.fail = map[string]error{"restore": unknown}
		if _, err := m.Start(ctx, epr); !errors.Is(err, vmm.ErrOutcomeUnknown) {
			t.Fatalf("Start with the restore cut off: %v", err)
		}
		for _, op := range []struct {
			name string
			do   func() error
		}{
			{"Normal", func() error { _, err := m.Shutdown(ctx, epr, ModeNormal, 0); return err }},
			{"Trash", func() error { _, err := m.Shutdown(ctx, epr, ModeTrash, 0); return err }},
			{"Undeploy", func() error { _, err := m.Undeploy(ctx, epr); return err }},
			{"Start", func() error { _, err := m.Start(ctx, epr); return err }},
		} {
			if err := op.do(); !errors.Is(err, errdefs.ErrState) {
				t.Fatalf("%s after a restore cut off: %v; want it refused until the restore's outcome is known", op.name, err)
			}
		}
		if _, err := os.Stat(rec.MemoryFile); err != nil {
			t.Fatalf("the memory image a cut-off restore may still read is gone: %v", err)
		}
		delete(hv.fail, "restore")
		want := stateRunning
		if happened { // libvirtd wakes and finishes the restore
			hv.set(vmm.StateRunning, false, false)
		} else {
			want = statePaused
		}
		m.reconcile(ctx)
		r, err := (&journal{dir: hv.dir}).get(k)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != want || r.Hot == happened || r.Pending != "" {
			t.Errorf("restore happened %v: the record is %s, serialized %v, pending %q; want %s, serialized %v, nothing pending",
				happened, r.State, r.Hot, r.Pending, want, !happened)
		}
		if _, err := os.Stat(rec.MemoryFile); errors.Is(err, os.ErrNotExist) != happened {
			t.Errorf("restore happened %v: memory image removed %v", happened, errors.Is(err, os.ErrNotExist))
		}
		if !happened {
			if _, err := m.Start(ctx, epr); err != nil {
				t.Errorf("Start once the cut-off restore is known not to have happened: %v", err)
			}
		}
	}
}

func withPending(r *record, p string) *record { r.Pending = p; return r }

// spentRec is a serialized record, pending op, whose memory image its disk has moved
// past (imageSpent).
func spentRec(key, op string) *record {
	r := pendingRec(key, statePaused, true, op)
	r.Spent = "its disk was written after the image was saved"
	return r
}

// busyDom is a paused domain with a libvirt job under way (a save).
func busyDom(key string) vmm.Domain {
	d := domOf(key, vmm.StatePaused)
	d.Busy = true
	return d
}

// TestExistenceIsAskedSparingly: the reconciler asks a remote Repository whether a
// workspace still exists every existenceEvery, not every round, and the Repository
// in this process once, then only when it says it destroyed the workspace; an
// unanswered question is asked again next round.
func TestExistenceIsAskedSparingly(t *testing.T) {
	m := &Manager{kick: make(chan struct{}, 1), cfg: Config{LocalRepository: func() string { return "http://127.0.0.1:8080" }}}
	local := &record{Key: "ws-local", WorkspaceAddress: "http://127.0.0.1:8080/wsrf/services/WorkspaceService"}
	remote := &record{Key: "ws-remote", WorkspaceAddress: "https://repo.example.org:8443/wsrf/services/WorkspaceService"}
	if !m.isLocal(local) || m.isLocal(remote) {
		t.Fatalf("local: %v, remote: %v", m.isLocal(local), m.isLocal(remote))
	}
	t0 := time.Now()
	asked := func(r *record, at time.Duration) bool { return m.existence.due(r.Key, m.isLocal(r), t0.Add(at)) }
	for _, r := range []*record{local, remote} {
		if !asked(r, 0) {
			t.Errorf("%s: not asked on the first round", r.Key)
		}
		if asked(r, 2*time.Second) {
			t.Errorf("%s: asked again 2 s later", r.Key)
		}
	}
	if !asked(remote, existenceEvery) {
		t.Error("the remote Repository is not asked again after existenceEvery")
	}
	if asked(local, time.Hour) {
		t.Error("the Repository in this process is asked again unprompted")
	}
	m.WorkspaceDestroyed(local.Key)
	select {
	case <-m.kick:
	default:
		t.Error("WorkspaceDestroyed asked for no reconcile round")
	}
	if !asked(local, time.Hour+time.Second) || asked(local, time.Hour+2*time.Second) {
		t.Error("WorkspaceDestroyed did not have the workspace asked about exactly once")
	}
	m.existence.again(remote.Key) // unanswered
	if !asked(remote, existenceEvery+time.Second) {
		t.Error("an unanswered question is not asked again next round")
	}
	m.existence.keepOnly([]*record{remote})
	if !asked(local, 2*time.Hour) {
		t.Error("a key whose record went is still counted asked")
	}
}

// TestRetryBackoff: an undo or hand-back that keeps failing is retried the next
// round, then twice as long after each failure up to retryMax; success starts over.
func TestRetryBackoff(t *testing.T) {
	var b retryBackoff
	t0 := time.Now()
	if !b.due("k", t0) {
		t.Fatal("a first attempt is not due")
	}
	var waits []time.Duration
	now := t0
	for range 7 {
		w := b.failed("k", now, 2*time.Second)
		if b.due("k", now.Add(w-time.Millisecond)) || !b.due("k", now.Add(w)) {
			t.Fatalf("after waiting %v: due too early or not at all", w)
		}
		waits = append(waits, w)
		now = now.Add(w)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, retryMax, retryMax, retryMax}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	if !b.due("other", t0) {
		t.Fatal("another workspace waits for this one's failures")
	}
	b.succeeded("k")
	if w := b.failed("k", now, time.Hour); w != retryMax {
		t.Fatalf("after a success, a failure with hour-long rounds waits %v, want %v", w, retryMax)
	}
}

// TestUndeployCommitChecksRoom: folding the deployment's changes into the overlay at
// an undeploy is refused up front when the disk cannot take them, leaving the
// overlay untouched and saying where to free how much, and that the manager finishes
// the undeploy by itself.
func TestUndeployCommitChecksRoom(t *testing.T) {
	const k = "ws-commit-room"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("qemu-io", "-c", "write -P 0x5a 0 512k", rec.Run).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io: %v: %s", err, out)
	}
	before, err := os.ReadFile(rec.Overlay)
	if err != nil {
		t.Fatal(err)
	}
	m.freeBytes = func(string) (int64, error) { return 256 << 10, nil }
	_, err = m.uploadOverlay(context.Background(), rec)
	if !errors.Is(err, errNoRoom) || !strings.Contains(errdefs.Advice(err), "free at least") ||
		!strings.Contains(errdefs.Advice(err), "finishes the undeploy by itself") || strings.Contains(err.Error(), "--min-free") {
		t.Fatalf("an undeploy whose changes do not fit: %v (advice %q)", err, errdefs.Advice(err))
	}
	if after, _ := os.ReadFile(rec.Overlay); !bytes.Equal(after, before) {
		t.Fatal("the refused commit changed the overlay")
	}
}

// TestPowerOffReadFromTheRunLog: a guest found shut off for no reason libvirt still
// knows (libvirtd restarted since, the host did not) is taken as powered off only
// when libvirt's log of its run says so; a run that ended crashed or destroyed, or
// whose QEMU was killed, lost its RAM: corrupted.
func TestPowerOffReadFromTheRunLog(t *testing.T) {
	const k = "ws-runlog"
	for _, c := range []struct {
		run         *vmm.LastRun
		state, says string
	}{
		{&vmm.LastRun{Ended: true, Reason: "shutdown", EndedAt: "T"}, stateShutdown, detailPoweredOff},
		{nil, stateShutdown, detailPoweredOff},
		{&vmm.LastRun{Ended: true, Reason: "crashed", EndedAt: "T"}, stateCorrupted, "reason crashed"},
		{&vmm.LastRun{Ended: true, Reason: "destroyed", EndedAt: "T"}, stateCorrupted, "forced off outside vws"},
		{&vmm.LastRun{Killed: "terminating on signal 9"}, stateCorrupted, "killed"},
	} {
		m, hv, _ := crashManager(t, k, stateRunning, false)
		hv.set(vmm.StateShutOff, false, false) // libvirt's reason forgotten: not "forced", not "crashed"
		hv.lastRun = c.run
		m.reconcile(context.Background())
		r, err := m.journal.get(k)
		if err != nil || r.State != c.state || !strings.Contains(r.Detail, c.says) {
			t.Errorf("run %+v: %s %q (%v), want %s saying %q", c.run, r.State, r.Detail, err, c.state, c.says)
		}
	}
}

// A Serialize whose QEMU dies part-way does not say the workspace stays as it was
// (retry): its RAM is gone, and the answer says so and what to do.
func TestSerializeWhoseGuestDies(t *testing.T) {
	ctx := context.Background()
	for _, dies := range []bool{false, true} {
		m, hv, rec := crashManager(t, "k1", stateRunning, false)
		hv.fail = map[string]error{"save": fmt.Errorf("%w: save: operation failed: qemu unexpectedly closed the monitor", errdefs.ErrHypervisor)}
		hv.dieOnSave = dies
		_, err := m.Shutdown(ctx, workspaceEPR(rec), ModeSerialize, 0)
		if !errors.Is(err, errdefs.ErrHypervisor) {
			t.Fatalf("guest dies %v: %v, want a hypervisor failure", dies, err)
		}
		advice := errdefs.Advice(err)
		lost := strings.Contains(err.Error(), "ended while its RAM was being saved") && strings.Contains(advice, "--mode trash")
		if lost != dies {
			t.Errorf("guest dies %v: answer %q (advice %q) says the RAM is lost: %v", dies, err, advice, lost)
		}
		if _, statErr := os.Stat(filepath.Join(m.workspaceDir("k1"), "memory.save")); !os.IsNotExist(statErr) {
			t.Errorf("guest dies %v: the partial memory image stays: %v", dies, statErr)
		}
	}
}

// TestTakenAway: a workspace this host holds deployed is no longer its own when the
// Repository has it back in the repository, or deployed on another host than the one
// it was checked out under — not when this host was merely renamed since, nor while
// an undeploy or a deploy of it is under way here.
func TestTakenAway(t *testing.T) {
	rec := func(phase, as string) *record { return &record{Phase: phase, CheckedOutAs: as} }
	for _, tc := range []struct {
		name             string
		rec              *record
		deployment, host string
		taken            bool
		says             string
	}{
		{"deployed here", rec(phaseDeployed, "b"), "deployed", "b", false, ""},
		{"back in the repository", rec(phaseDeployed, "b"), "in-repository", "", true, "took the workspace back"},
		{"deployed on another host", rec(phaseDeployed, "b"), "deployed", "c", true, "deployed on c now"},
		{"staging on another host", rec(phaseDeployed, "b"), "staging", "c", true, "deployed on c now"},
		{"this host renamed since (checked out as b, now b2)", rec(phaseDeployed, "b"), "deployed", "b", false, ""},
		{"a record from before CheckedOutAs", rec(phaseDeployed, ""), "deployed", "c", false, ""},
		{"an undeploy under way here", rec(phaseUnstaging, "b"), "in-repository", "", false, ""},
		{"a deploy under way here", rec(phaseStaging, "b"), "staging", "b", false, ""},
	} {
		why, taken := takenAway(tc.rec, tc.deployment, tc.host)
		if taken != tc.taken || !strings.Contains(why, tc.says) {
			t.Errorf("%s: taken %v (%q), want %v saying %q", tc.name, taken, why, tc.taken, tc.says)
		}
	}
}

// TestRestoreUnderWayAtRestart: a manager killed during the restore of a serialized
// workspace (Start, Unpause, Deploy --state running) comes back to libvirtd still
// loading the RAM, the domain paused under the restore's job. Nothing is concluded
// until the job ends: the memory image is the guest's RAM until the restore has
// happened, and a restore that then fails leaves the workspace serialized, its image
// in place, not shut down with its RAM lost.
func TestRestoreUnderWayAtRestart(t *testing.T) {
	const k = "ws-restoring"
	ctx := context.Background()
	m, hv, rec := crashManager(t, k, statePaused, true)
	d := busyDom(k) // killed while libvirtd restores it
	hv.dom = &d
	m.reconcile(ctx)
	if _, err := os.Stat(rec.MemoryFile); err != nil {
		t.Fatalf("the memory image of a restore still under way was removed: %v", err)
	}
	if r, _ := (&journal{dir: hv.dir}).get(k); r.State != statePaused || !r.Hot || r.MemoryFile != rec.MemoryFile {
		t.Errorf("with the restore under way the record became %s, serialized %v; want it left serialized", r.State, r.Hot)
	}
	// The restore fails: the domain is shut off again, the image still its RAM.
	hv.set(vmm.StateShutOff, false, false)
	m.reconcile(ctx)
	if r, _ := (&journal{dir: hv.dir}).get(k); r.State != statePaused || !r.Hot || r.MemoryFile != rec.MemoryFile {
		t.Fatalf("after the restore failed the record is %s, serialized %v (%s); want serialized", r.State, r.Hot, r.Detail)
	}
	if _, err := m.Start(ctx, workspaceEPR(rec)); err != nil {
		t.Errorf("Start after the restore failed: %v", err)
	}
}

// TestSerializeCutOffBeforeItsImageReachedTheDisk: a host that lost power while a
// Serialize saved the RAM can come back with memory.save empty (created, nothing of
// it written out) or missing (libvirtd had not created it, or its creation never
// reached the disk), and the domain shut off. Under the serialize's mark that is this
// serialize cut off, not RAM saved outside vws with the disk intact: the workspace is
// recorded corrupted saying so, and an empty file goes with the RAM it never held.
func TestSerializeCutOffBeforeItsImageReachedTheDisk(t *testing.T) {
	for _, c := range []struct {
		name  string
		image []byte // nil: no file
	}{
		{"empty", []byte{}},
		{"missing", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := "ws-" + c.name + "-save"
			ctx := context.Background()
			m, hv, rec := crashManager(t, k, stateRunning, false)
			if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeSerialize, 0); err != nil {
				t.Fatal(err)
			}
			if err := m.journal.put(hv.onDisk["save"]); err != nil { // killed during the save
				t.Fatal(err)
			}
			mem := m.workspaceDir(k) + "/memory.save"
			os.Remove(mem)
			if c.image != nil {
				if err := os.WriteFile(mem, c.image, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			hv.set(vmm.StateShutOff, false, false) // the power failure ended it
			m.reconcile(ctx)
			r, err := (&journal{dir: hv.dir}).get(k)
			if err != nil {
				t.Fatal(err)
			}
			if r.State != stateCorrupted || r.Hot || r.Pending != "" || strings.Contains(r.Detail, "outside vws") || !strings.Contains(r.Detail, "serialize was cut off") {
				t.Errorf("after a serialize cut off before its image was written, the record is %s, serialized %v, pending %q: %q; want corrupted by the cut-off serialize",
					r.State, r.Hot, r.Pending, r.Detail)
			}
			if _, err := os.Stat(mem); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the memory image is kept (stat: %v)", err)
			}
		})
	}
}

// TestRestoredImageThatRanIsNotRestoredAgain: a Start restores a serialized workspace
// and its guest runs, writing its disk; the manager is killed before it journals the
// restore (or the disk refuses the record), and the guest then ends. The record on
// disk still says serialized (or restore pending) and the domain is off, as when QEMU
// died loading the image: restored again, the image's RAM would meet a disk that moved
// past it and corrupt the guest's file systems. The run disk, written after the image,
// tells the two apart: the workspace is recorded off (how the guest ended) and the
// spent image removed. A disk not written since keeps the image, and Start restores it.
func TestRestoredImageThatRanIsNotRestoredAgain(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		pending string
		dom     func(string) *vmm.Domain // nil: vanished
		written bool                     // the guest wrote its run disk after the save
		garbled bool                     // the run disk, modified after the save, cannot be read
		want    string
	}{
		{name: "ran, powered off", dom: func(k string) *vmm.Domain { d := domOf(k, vmm.StateShutOff); return &d }, written: true, want: stateShutdown},
		{name: "ran, QEMU killed", dom: func(k string) *vmm.Domain { d := domOf(k, vmm.StateCrashed); return &d }, written: true, want: stateCorrupted},
		{name: "restore cut off, ran, domain gone", pending: pendingRestore, written: true, want: stateCorrupted},
		{name: "restore cut off, ran, powered off", pending: pendingRestore, dom: func(k string) *vmm.Domain { d := domOf(k, vmm.StateShutOff); return &d }, written: true, want: stateShutdown},
		{name: "run disk unreadable", dom: func(k string) *vmm.Domain { d := domOf(k, vmm.StateShutOff); return &d }, garbled: true, want: stateShutdown},
		{name: "QEMU died loading the image", dom: func(k string) *vmm.Domain { d := domOf(k, vmm.StateCrashed); return &d }, want: statePaused},
		{name: "restore cut off, QEMU died loading the image", pending: pendingRestore, dom: func(k string) *vmm.Domain { d := domOf(k, vmm.StateShutOff); return &d }, want: statePaused},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := "ws-spent-" + strings.NewReplacer(" ", "-", ",", "").Replace(c.name)
			m, hv, rec := crashManager(t, k, statePaused, true)
			if c.pending != "" {
				r := rec.clone()
				r.Pending = c.pending
				if err := m.journal.put(r); err != nil {
					t.Fatal(err)
				}
			}
			// Saved a while ago; the restore opened the run disk since (QEMU does), which
			// alone writes nothing of the guest's.
			saved := time.Now().Add(-time.Hour)
			if err := os.Chtimes(rec.MemoryFile, saved, saved); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(rec.Run, time.Now(), time.Now()); err != nil {
				t.Fatal(err)
			}
			switch {
			case c.written:
				guestWrites(t, rec.Run)
			case c.garbled:
				if err := os.WriteFile(rec.Run, []byte("QFI"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			hv.dom = nil
			if c.dom != nil {
				hv.dom = c.dom(k)
			}
			m.reconcile(ctx) // the restarted manager
			r, err := (&journal{dir: hv.dir}).get(k)
			if err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(rec.MemoryFile)
			if c.want == statePaused {
				if r.State != statePaused || !r.Hot || r.MemoryFile != rec.MemoryFile || r.Pending != "" || statErr != nil {
					t.Fatalf("disk not written since the save: the record is %s, serialized %v, pending %q (%q), image: %v; want it serialized, its image kept",
						r.State, r.Hot, r.Pending, r.Detail, statErr)
				}
				if c.dom == nil || c.dom(k).State == vmm.StateCrashed {
					hv.set(vmm.StateShutOff, false, false)
				}
				if _, err := m.Start(ctx, workspaceEPR(rec)); err != nil {
					t.Errorf("Start of the workspace still serialized: %v", err)
				}
				return
			}
			if r.State != c.want || r.Hot || r.MemoryFile != "" || r.Pending != "" || !strings.Contains(r.Detail, "memory image is spent") {
				t.Errorf("the guest ran from its memory image and ended: the record is %s, serialized %v, image %q, pending %q (%q); want %s, not serialized, saying the image is spent",
					r.State, r.Hot, r.MemoryFile, r.Pending, r.Detail, c.want)
			}
			if !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("the spent memory image is kept (stat: %v)", statErr)
			}
		})
	}
}

// TestRestoredImageThatRanAndWasManagedSavedIsNotRestored: a Start restores a
// serialized workspace from its memory.save and the guest runs; before the restore is
// journaled (the manager killed, or the disk refusing the record) libvirt saves the
// guest's RAM by itself (libvirt-guests ON_SHUTDOWN=suspend at a host shutdown, virsh
// managedsave). The record on disk still says serialized from memory.save, and the
// domain is off with a managed-save image of RAM newer than it. The workspace is
// recorded serialized in libvirt's image, as a guest recorded running would be, and
// the stale memory.save removed: Start resumes libvirt's RAM, not the spent image onto
// a disk that moved past it, and Undeploy has no stale image to send.
func TestRestoredImageThatRanAndWasManagedSavedIsNotRestored(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		pending string
		written bool // the guest wrote its run disk after the save
	}{
		{name: "ran and wrote its disk", written: true},
		{name: "restore cut off, ran and wrote its disk", pending: pendingRestore, written: true},
		{name: "ran, its disk unwritten"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := "ws-msave-" + strings.NewReplacer(" ", "-", ",", "").Replace(c.name)
			m, hv, rec := crashManager(t, k, statePaused, true)
			if c.pending != "" {
				r := rec.clone()
				r.Pending = c.pending
				if err := m.journal.put(r); err != nil {
					t.Fatal(err)
				}
			}
			saved := time.Now().Add(-time.Hour)
			if err := os.Chtimes(rec.MemoryFile, saved, saved); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(rec.Run, time.Now(), time.Now()); err != nil {
				t.Fatal(err)
			}
			if c.written {
				guestWrites(t, rec.Run)
			}
			d := managedSavedDom(k)
			hv.dom, hv.managedSave = &d, true
			m.reconcile(ctx) // the restarted manager
			r, err := (&journal{dir: hv.dir}).get(k)
			if err != nil {
				t.Fatal(err)
			}
			if r.State != statePaused || !r.Hot || !r.ManagedSave || r.MemoryFile != "" || r.Pending != "" {
				t.Errorf("libvirt saved the RAM of the guest restored from memory.save: the record is %s, serialized %v, managed save %v, image %q, pending %q (%q); want serialized in libvirt's managed save",
					r.State, r.Hot, r.ManagedSave, r.MemoryFile, r.Pending, r.Detail)
			}
			if _, err := os.Stat(rec.MemoryFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the spent memory.save is kept (stat: %v)", err)
			}
			if _, err := m.Start(ctx, workspaceEPR(rec)); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if hv.onDisk["restore"] != nil || hv.managedSave {
				t.Errorf("Start restored the spent memory.save (%v), not libvirt's managed save (still there: %v)", hv.onDisk["restore"] != nil, hv.managedSave)
			}
		})
	}
}

// guestWrites allocates an L2 table in the qcow2 image at path, as a guest's first
// write to it does (and its modification time moves on).
func guestWrites(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h [48]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		t.Fatal(err)
	}
	l1 := int64(binary.BigEndian.Uint64(h[40:]))
	var e [8]byte
	binary.BigEndian.PutUint64(e[:], 1<<63|1<<20) // an L2 table at 1 MiB, copied
	if _, err := f.WriteAt(e[:], l1); err != nil {
		t.Fatal(err)
	}
	if w, err := qcow2.Unwritten(path); err != nil || w {
		t.Fatalf("the guest's write allocated nothing: unwritten %v, %v", w, err)
	}
}
