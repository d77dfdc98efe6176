package manager

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/vmm"
)

// change is one step the reconciler takes to bring the journal and the hypervisor
// into agreement.
type change struct {
	Kind   changeKind
	Key    string
	State  string // for observe: the state the workspace is really in
	From   string // for observe: the recorded state the plan compared
	Hot    bool
	Detail string
}

type changeKind int

const (
	abortStaging     changeKind = iota + 1 // a deploy died: undo it
	finishUnstage                          // an undeploy died: finish it
	observe                                // the domain is in another state than recorded
	redefine                               // a shut-down workspace's domain is gone: define it again
	adoptSave                              // libvirt saved the RAM; the serialize died before recording it
	adoptManagedSave                       // libvirt saved the RAM to its own file (managedsave): record it
	finishRestore                          // libvirt restored the RAM; the restore died before recording it
	finishShutdown                         // a Normal shutdown died: record where the domain ended
	finishTrash                            // a Trash died part-way: finish it
	finishDrop                             // discarding a memory image died part-way: finish it
	retryReport                            // the Repository has not heard the current state
	abandonSerialize                       // a Serialize's save did not happen: drop its partial file
	abandonRestore                         // a cut-off restore did not happen: the workspace stays serialized
	dropSpent                              // a restore's guest ran and ended unrecorded: its memory image is spent
)

// detailPoweredOff is why a workspace last seen running or paused is shut down, as far
// as libvirt tells (Manager.poweredOffDetail says more after a host restart).
const detailPoweredOff = "the guest powered off"

func isNoDomain(err error) bool { return errors.Is(err, vmm.ErrNoDomain) }

// plan compares the journal with the domains the hypervisor has, and says what to do.
// It is pure, so every case is table-tested without libvirt.
func plan(recs []*record, doms []vmm.Domain) []change {
	byName := map[string]vmm.Domain{}
	for _, d := range doms {
		byName[d.Name] = d
	}
	var out []change
	for _, r := range recs {
		switch r.Phase {
		case phaseStaging:
			out = append(out, change{Kind: abortStaging, Key: r.Key})
			continue
		case phaseUnstaging:
			out = append(out, change{Kind: finishUnstage, Key: r.Key})
			continue
		}
		d, exists := byName[domainName(r.Key)]
		c := change{Key: r.Key}
		switch {
		case exists && d.State == vmm.StateUnknown:
			// Unreachable or in transition is never "shut off": conclude nothing.
		case r.Hot && !r.ManagedSave && (r.Pending == "" || r.Pending == pendingRestore) &&
			exists && d.State == vmm.StateShutOff && d.ManagedSave:
			// Only a guest that ran has a managed save: restored from its memory image
			// and run from (the restore unrecorded), then saved by libvirt itself
			// (libvirt-guests at a host shutdown, virsh managedsave). libvirt's image is
			// its RAM now, the memory image spent, whether or not the disk reads written.
			c.Kind = adoptManagedSave
		case r.Spent != "" && r.Hot && (r.Pending == "" || r.Pending == pendingRestore) &&
			(!exists || (d.State == vmm.StateShutOff || d.State == vmm.StateCrashed) && !d.ManagedSave):
			// Restored and run from, then ended, unrecorded: not "the restore did not
			// happen". It ended as a guest recorded running would have.
			ran := r.clone()
			ran.State, ran.Hot, ran.Pending, ran.Spent = stateRunning, false, "", ""
			c.Kind, c.State, c.Detail = dropSpent, stateShutdown, detailPoweredOff
			for _, o := range plan([]*record{ran}, doms) {
				if o.Kind == observe {
					c.State, c.Detail = o.State, o.Detail
				}
			}
		case r.Pending == pendingSerialize && exists && d.State == vmm.StateShutOff && !d.ManagedSave:
			// The save this Serialize asked for ended the domain (libvirtd finishes it
			// when the manager dies); a restarted libvirtd no longer says "saved".
			c.Kind = adoptSave
		case r.Pending == pendingSerialize && exists && d.State == vmm.StateCrashed:
			// QEMU died under the save (libvirtd killed, the OOM killer): the RAM is
			// lost, and what the save wrote is no memory image.
			c.Kind, c.State, c.Detail = abandonSerialize, stateCorrupted, "its QEMU process died while a serialize saved its RAM"+
				"; the RAM is lost and the disk may be inconsistent (Shutdown Trash discards this deployment's changes, Undeploy keeps them)"
		case r.Pending == pendingSerialize && exists && d.State == vmm.StatePaused && d.Busy:
			// Still saving (libvirt keeps the guest paused for the whole save): wait.
		case r.Pending == pendingSerialize && exists && (d.State == vmm.StateRunning || d.State == vmm.StatePaused):
			// The save failed or was cancelled (a libvirtd restart ends it, and resumes
			// a guest the save had paused): what it wrote is no memory image, and the
			// guest is as the domain is.
			c.Kind, c.State = abandonSerialize, stateRunning
			if d.State == vmm.StatePaused {
				c.State = statePaused
			}
		case r.Pending == pendingRestore && exists && d.State == vmm.StatePaused && d.Busy:
			// Still restoring: wait.
		case r.Pending == pendingRestore && (!exists || d.State == vmm.StateShutOff || d.State == vmm.StateCrashed):
			// The cut-off restore did not bring the guest up: the memory image is
			// still its RAM. (A guest restored and running is finishRestore below.)
			c.Kind = abandonRestore
		case r.Pending == pendingTrash:
			// Every step of a Trash may be repeated, and the user asked for it.
			c.Kind = finishTrash
		case r.Pending == pendingDrop && r.Hot:
			c.Kind = finishDrop
		case r.Pending == pendingShutdown && exists && d.State == vmm.StateShutOff && !d.Saved:
			// Off, forced or not, because this shutdown did it: shutdown, not corrupted.
			c.Kind, c.State = finishShutdown, stateShutdown
			if d.Forced {
				c.Detail = "the guest did not power off in time; forced off"
			}
		case r.Pending == pendingShutdown && exists && d.State == vmm.StateCrashed:
			// The guest was being shut down when its QEMU ended otherwise than by its
			// own power-off (libvirtd killed mid-way takes QEMU with it): the shutdown
			// asked for happened, not cleanly — as a forced one.
			c.Kind, c.State, c.Detail = finishShutdown, stateShutdown,
				"its QEMU process ended during the shutdown (libvirtd stopped, or the guest crashed); forced off"
		case r.Pending == pendingShutdown && exists && (d.State == vmm.StateRunning || d.State == vmm.StatePaused):
			// The guest has not gone down (yet: it may still heed the ACPI request, and
			// is then seen powered off); the shutdown is no longer under way.
			c.Kind, c.State = finishShutdown, stateRunning
			if d.State == vmm.StatePaused {
				c.State = statePaused
			}
		case !exists && (r.State == stateShutdown || r.State == statePaused && r.Hot):
			// Nothing ran: the definition alone was lost.
			c.Kind = redefine
		case !exists && r.State != stateCorrupted:
			c.Kind, c.State, c.Detail = observe, stateCorrupted, "its domain vanished from the hypervisor while "+r.State+"; the RAM is lost, the disk is intact (Shutdown Trash redefines it)"
		case !exists:
		case d.State == vmm.StateCrashed && (r.State == stateRunning || r.State == statePaused && !r.Hot):
			// libvirt says "crashed" for a guest panic and for its QEMU process dying
			// (the OOM killer, a kill, a host crash): either way the RAM is gone.
			c.Kind, c.State, c.Detail = observe, stateCorrupted, "the guest crashed or its QEMU process died while "+r.State+
				"; the RAM is lost and the disk may be inconsistent (Shutdown Trash discards this deployment's changes, Undeploy keeps them)"
		case d.State == vmm.StateShutOff && d.ManagedSave && (r.State == stateRunning || r.State == statePaused && !r.Hot):
			// libvirt-guests suspends the guests at a host shutdown (ON_SHUTDOWN=suspend),
			// an administrator may run virsh managedsave: the RAM is in libvirt's file.
			c.Kind = adoptManagedSave
		case r.Hot && r.ManagedSave && d.State == vmm.StateShutOff && !d.ManagedSave:
			// The managed-save image is gone: an Undeploy moved the RAM to memory.save
			// and died before recording it, or someone removed the image.
			c.Kind = adoptSave
		case d.State == vmm.StateShutOff && d.Saved && (r.State == stateRunning || r.State == statePaused && !r.Hot):
			// Serialize's save finished (libvirtd completes it when the manager
			// dies) but was never recorded: the RAM is in a file, not lost.
			c.Kind = adoptSave
		case r.Hot && d.State == vmm.StatePaused && d.Busy:
			// A restore still loading the RAM (the manager died during Start, Unpause
			// or Deploy, and libvirtd went on): wait for its end. Its image is the RAM
			// until the guest runs from it.
		case r.Hot && (d.State == vmm.StateRunning || d.State == vmm.StatePaused) && r.State != stateCorrupted:
			// A restore finished but was never recorded: the guest runs on from its
			// memory image, which is spent (its disk has moved past it).
			c.Kind, c.State = finishRestore, stateRunning
			if d.State == vmm.StatePaused {
				c.State = statePaused
			}
		case d.State == vmm.StateShutOff && d.Forced && (r.State == stateRunning || r.State == statePaused && !r.Hot):
			// Not the guest's own power-off: someone destroyed the domain under us.
			c.Kind, c.State, c.Detail = observe, stateCorrupted, "its domain was forced off outside vws (virsh destroy?) while "+r.State+
				"; the RAM is lost and the disk may be inconsistent (Shutdown Trash discards this deployment's changes)"
		case d.State == vmm.StateShutOff && (r.State == stateRunning || r.State == statePaused && !r.Hot):
			c.Kind, c.State, c.Detail = observe, stateShutdown, detailPoweredOff
		case d.State == vmm.StateRunning && r.State != stateRunning && r.State != stateCorrupted:
			c.Kind, c.State = observe, stateRunning
		case d.State == vmm.StatePaused && (r.State == stateRunning || r.State == stateShutdown && !r.Hot) && !d.Busy:
			// (Paused for a libvirt job — a managed save, say — is not the guest paused:
			// the job's end says what it became.) Under a record that says shut down: a
			// Deploy --state paused that died before recording it, or virsh start
			// --paused behind vws's back; the guest holds RAM either way.
			c.Kind, c.State = observe, statePaused
		}
		if c.Kind == observe || c.Kind == finishShutdown {
			c.From = r.State
		}
		if c.Kind == 0 && r.Reported != r.reportKey() {
			c.Kind = retryReport
		}
		if c.Kind != 0 {
			out = append(out, c)
		}
	}
	return out
}

// recover runs once at start: reconcile, then remove workspace directories no record
// owns (a deploy that died before its first journal write).
func (m *Manager) recover(ctx context.Context) {
	m.reconcile(ctx)
	recs, _ := m.journal.all()
	known := map[string]bool{}
	for _, r := range recs {
		known[r.Key] = true
		// A memory image no record holds: spent by a restore that journaled its
		// outcome and died before removing it.
		if namesNoImage(r) {
			if unlock, ok := m.locks.tryLock(r.Key); ok {
				if cur, err := m.journal.get(r.Key); err == nil && namesNoImage(cur) {
					os.Remove(filepath.Join(m.workspaceDir(r.Key), "memory.save"))
				}
				unlock()
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(m.cfg.Dir, "workspaces"))
	for _, e := range ents {
		key := e.Name()
		if known[key] {
			continue
		}
		// A deploy that began meanwhile holds the lock and has journaled first.
		unlock, ok := m.locks.tryLock(key)
		if !ok {
			continue
		}
		if _, err := m.journal.get(key); errors.Is(err, os.ErrNotExist) {
			// Not under a domain still defined here: that one runs on these files, and
			// it is the record that is missing.
			if _, err := m.hv.State(ctx, domainName(key)); isNoDomain(err) {
				m.log.Info("remove files of a workspace this host does not hold", "workspace", key)
				os.RemoveAll(filepath.Join(m.cfg.Dir, "workspaces", key))
			} else if err == nil {
				m.log.Warn("files of a workspace this host holds no record of, under a domain defined here: kept", "workspace", key, "domain", domainName(key))
			}
		}
		unlock()
	}
}

// namesNoImage says whether r is of a deployed workspace that keeps no memory.save:
// one found in its directory is spent (by a restore, or a save cut off).
func namesNoImage(r *record) bool {
	return r.Phase == phaseDeployed && !r.Hot && r.Pending != pendingSerialize
}

// reconcile compares and acts. With the hypervisor unreachable it concludes nothing.
func (m *Manager) reconcile(ctx context.Context) {
	m.writeUnsaved()
	recs, errs := m.journal.all()
	for _, err := range errs {
		m.log.Error("unreadable journal record", "err", err)
	}
	if len(recs) == 0 {
		return
	}
	doms, err := m.hv.List(ctx, domainPrefix)
	if err != nil {
		m.log.Debug("reconcile: hypervisor unreachable", "err", err)
		return
	}
	if m.forgetDestroyed(ctx, recs) {
		if recs, _ = m.journal.all(); len(recs) == 0 {
			return
		}
	}
	for _, r := range recs {
		r.Reported = m.reportedState(r.Key)
		r.Spent = imageSpent(r)
	}
	for _, c := range plan(recs, doms) {
		m.apply(ctx, c)
	}
	if err := m.boot.reconciled(m.cfg.Dir); err != nil {
		m.log.Warn("record the host's boot ID", "err", err)
	}
}

// writeUnsaved writes out the records the disk refused after the hypervisor had
// acted (transition), each once no operation holds its workspace.
func (m *Manager) writeUnsaved() {
	for _, key := range m.journal.unsavedKeys() {
		unlock, ok := m.locks.tryLock(key)
		if !ok {
			continue
		}
		switch written, err := m.journal.writeUnsaved(key); {
		case err != nil:
			m.log.Debug("journal a record kept in memory: the disk still refuses it", "workspace", key, "err", err)
		case written:
			m.log.Info("journaled a workspace's record the disk had refused", "workspace", key)
			// A memory image kept while the disk held the record that named it (a
			// restore, a cut-off save) is named by none now.
			if r, err := m.journal.get(key); err == nil && namesNoImage(r) {
				os.Remove(filepath.Join(m.workspaceDir(key), "memory.save"))
			}
		}
		unlock()
	}
}

func (m *Manager) apply(ctx context.Context, c change) {
	// An operation in flight holds the lock and journals its own outcome: skip this
	// round rather than stall the others behind a long deploy.
	unlock, ok := m.locks.tryLock(c.Key)
	if !ok {
		return
	}
	handedOff := false // the lock went to a goroutine finishing an undeploy
	defer func() {
		if !handedOff {
			unlock()
		}
	}()
	rec, err := m.journal.get(c.Key)
	if err != nil {
		return // finished meanwhile
	}
	// The plan was made from a snapshot; under the lock, plan this workspace again
	// from fresh facts, so an operation that finished meanwhile is not undone.
	// List, not State: it also says whether a shut-off domain was forced off.
	doms, err := m.hv.List(ctx, domainName(c.Key))
	if err != nil {
		return // unreachable: conclude nothing
	}
	rec.Reported = m.reportedState(rec.Key)
	rec.Spent = imageSpent(rec)
	fresh := plan([]*record{rec}, doms)
	if len(fresh) == 0 {
		return
	}
	c = fresh[0]
	log := m.log.With("workspace", c.Key)
	if (c.Kind == abortStaging || c.Kind == finishUnstage) && !m.retries.due(c.Key, time.Now()) {
		return
	}
	// retry notes a failed undo or hand-back, and says when the next attempt is.
	retry := func(what string, err error) {
		log.Warn(what+"; will retry", "in", m.retries.failed(c.Key, time.Now(), m.cfg.ReconcileEvery), "err", err)
	}
	switch c.Kind {
	case abortStaging:
		// A Repository that accepts connections and never answers must not take the
		// round from the other workspaces (a guest that powered off would go
		// unrecorded for as long as it hangs): the undo gets half of what is left.
		ctx, cancel := halfOfRound(ctx)
		defer cancel()
		if rec.Token == "" {
			// Died between journal and check-out answer: ask again; the Repository
			// hands the same host its lock back.
			man, err := m.repo.checkOut(ctx, workspaceEPR(rec), m.checkedOutAs(rec), rec.CheckOutID, nil, nil)
			if unreachable(err) { // whether the first check-out went through is still open
				retry("undo an interrupted deploy: the repository is unreachable", err)
				return
			}
			if man != nil { // also when its manifest failed verification: the lock goes back
				rec.Token, rec.StateAtCheckout = man.Token, man.State
				if o := man.image("overlay"); o != nil {
					rec.OverlayDigest = o.Digest
				}
				if mem := man.image("memory"); mem != nil {
					rec.MemoryDigest = mem.Digest
				}
			}
		}
		if err := m.undoDeploy(ctx, rec); err != nil {
			retry("undo an interrupted deploy", err)
			return
		}
		m.retries.succeeded(c.Key)
		log.Info("undid an interrupted deploy")
	case finishUnstage:
		// Uploading the overlay and saved RAM takes what their size and the link take:
		// not within this round's deadline (it would be cut off at every retry) and
		// not holding up the other workspaces' reconciliation. The workspace's lock goes
		// with it, so no round starts it twice; the transfers bound themselves (a stall
		// gives up), and closing the manager stops it.
		handedOff = true
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer unlock()
			fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			defer cancel()
			go func() {
				select {
				case <-m.stop:
					cancel()
				case <-fctx.Done():
				}
			}()
			if _, _, err := m.finishUndeploy(fctx, rec); err != nil {
				var refused *uploadRefusedError
				if errors.As(err, &refused) && rec.Phase == phaseDeployed {
					m.retries.succeeded(c.Key) // nothing left to retry: keepDeployed said why
					return
				}
				retry("finish an interrupted undeploy", err)
				return
			}
			m.retries.succeeded(c.Key)
			log.Info("finished an interrupted undeploy")
		}()
	case redefine:
		if err := m.hv.Define(ctx, rec.Spec); err != nil {
			log.Warn("redefine a lost domain", "err", err)
			return
		}
		log.Info("redefined a lost domain")
	case observe:
		if rec.State != c.From || rec.Phase != phaseDeployed {
			// An operation changed the workspace after the plan was made (a Trash
			// forces the domain off and then records shutdown): look again next round.
			return
		}
		if c.State == stateShutdown && rec.Hot {
			return
		}
		if c.Detail == detailPoweredOff {
			c.State, c.Detail = m.poweredOffOutcome(rec.Spec.Name)
		}
		log.Info("workspace changed state on its own", "from", rec.State, "to", c.State, "why", c.Detail)
		if err := m.transition(ctx, rec, c.State, c.Detail); err != nil {
			log.Error("record observed state", "err", err)
		}
	case adoptSave:
		mem := m.workspaceDir(rec.Key) + "/memory.save"
		fi, err := os.Stat(mem)
		// Under this serialize's mark, no image or an empty one is the save cut off
		// before any of it reached the disk (the host lost power): unfinished, as below.
		none := errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0
		if cutOff := none && rec.Pending == pendingSerialize; !cutOff && (err != nil || fi.Size() == 0) {
			detail := "its domain's RAM was saved outside vws (virsh save?) while " + rec.State +
				"; this host has no memory image of it, the disk is intact (Shutdown Trash discards this deployment's changes)"
			if rec.ManagedSave {
				detail = "the RAM libvirt had saved for it (managed save) was removed; the disk is intact (Shutdown Trash discards this deployment's changes)"
				rec.Hot, rec.ManagedSave = false, false
			}
			log.Warn("workspace changed state on its own", "from", rec.State, "to", stateCorrupted, "why", detail)
			if err := m.transition(ctx, rec, stateCorrupted, detail); err != nil {
				log.Error("record observed state", "err", err)
			}
			return
		}
		if unfinished, err := vmm.SaveImageUnfinished(mem); none || err == nil && unfinished {
			// The domain ended before libvirt finished the image (QEMU died mid-save):
			// the RAM is lost, as in a forced off.
			detail := "its serialize was cut off before libvirt finished saving the RAM (the memory image was incomplete or not written at all, and is removed); " +
				"the RAM is lost and the disk may be inconsistent (Shutdown Trash discards this deployment's changes)"
			log.Warn("workspace changed state on its own", "from", rec.State, "to", stateCorrupted, "why", detail)
			if err := m.transition(ctx, rec, stateCorrupted, detail); err != nil {
				log.Error("record observed state", "err", err)
				return
			}
			// Journaled first, removed after, as everywhere. Kept while only memory
			// holds the record; the restart sweep removes it then.
			if !m.journal.kept(rec.Key) {
				os.Remove(mem)
			}
			return
		}
		if err := fsutil.SyncFile(mem); err != nil { // libvirtd does not sync what it saved
			log.Error("make a memory image durable; will retry", "err", err)
			return
		}
		rec.Hot, rec.ManagedSave, rec.MemoryFile, rec.MemoryDigest = true, false, mem, ""
		log.Info("recorded a serialize that finished unrecorded (the manager restarted, or libvirtd answered it late)")
		if err := m.transition(ctx, rec, statePaused, "serialized: RAM saved"); err != nil {
			log.Error("record a finished serialize", "err", err)
		}
	case adoptManagedSave:
		// Left where libvirt keeps it: Start resumes it from there (RestoreManagedSave),
		// as libvirt-guests does at boot with ON_BOOT=start (seen as a finished
		// restore); Undeploy moves it into memory.save first; Trash removes it.
		detail := "serialized: libvirt saved its RAM (virsh managedsave, or libvirt-guests at a host shutdown) while " + rec.State + "; Start resumes it where it stopped"
		spent := rec.MemoryFile
		if rec.Hot {
			// Serialized still on record: restored and run from unrecorded, so its
			// memory image is older than libvirt's, and never to be restored or sent.
			detail = "serialized: libvirt saved its RAM (virsh managedsave, or libvirt-guests at a host shutdown) after it was restored and ran" +
				" (the restore not recorded); its older memory image is spent and removed; Start resumes it where libvirt stopped it"
		}
		rec.Hot, rec.ManagedSave, rec.MemoryFile, rec.MemoryDigest = true, true, "", ""
		log.Info("recorded RAM libvirt saved", "from", rec.State, "spent image", spent)
		if err := m.transition(ctx, rec, statePaused, detail); err != nil {
			log.Error("record a managed save", "err", err)
			return
		}
		// Journaled first, removed after, as restore does.
		if spent != "" && !m.journal.kept(rec.Key) {
			if err := os.Remove(spent); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("remove a spent memory image", "err", err)
			}
		}
	case finishRestore:
		spent := rec.MemoryFile
		rec.Hot, rec.ManagedSave, rec.MemoryFile, rec.MemoryDigest = false, false, "", ""
		log.Info("recorded a restore that finished unrecorded (the manager restarted, or libvirtd answered it late)", "state", c.State)
		if err := m.transition(ctx, rec, c.State, "restored from its memory image"); err != nil {
			log.Error("record a finished restore", "err", err)
			return
		}
		// Journaled first, removed after, as restore does: not while the disk still
		// holds the record that names it (the restart sweep removes it then).
		if spent != "" && !m.journal.kept(rec.Key) {
			if err := os.Remove(spent); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("remove a spent memory image", "err", err)
			}
		}
	case finishShutdown:
		if rec.State != c.From || rec.Pending != pendingShutdown {
			return
		}
		log.Info("recorded a shutdown left unfinished (the manager restarted, or libvirtd stopped answering during it)", "state", c.State, "detail", c.Detail)
		if err := m.transition(ctx, rec, c.State, c.Detail); err != nil {
			log.Error("record an interrupted shutdown", "err", err)
		}
	case finishTrash:
		if err := m.hv.Stop(ctx, rec.Spec.Name); err != nil && !isNoDomain(err) {
			log.Warn("finish an interrupted Trash; will retry", "err", err)
			return
		}
		// A domain lost meanwhile (or the corrupted state Trash was undoing) is
		// defined anew, as Trash does.
		define := rec.State == stateCorrupted || !slices.ContainsFunc(doms, func(d vmm.Domain) bool { return d.Name == rec.Spec.Name })
		if err := m.trash(ctx, rec, define); err != nil {
			log.Warn("finish an interrupted Trash; will retry", "err", err)
			return
		}
		log.Info("finished a Trash left unfinished (the manager restarted, or libvirtd stopped answering during it)")
	case finishDrop:
		if err := m.dropMemory(ctx, rec); err != nil {
			log.Warn("finish discarding a memory image; will retry", "err", err)
			return
		}
		log.Info("finished discarding a memory image, as a shutdown left unfinished had begun to")
	case abandonSerialize:
		os.Remove(m.workspaceDir(rec.Key) + "/memory.save")
		log.Info("a serialize left unfinished did not save the RAM", "state", c.State, "why", c.Detail)
		if err := m.transition(ctx, rec, c.State, c.Detail); err != nil {
			log.Error("record an abandoned serialize", "err", err)
		}
	case abandonRestore:
		// Only the mark goes: what else the domain says (gone, its managed-save
		// image removed) the next round reads as for any serialized workspace.
		log.Info("a restore left unfinished did not restore the guest; it stays serialized")
		if err := m.transition(ctx, rec, rec.State, rec.Detail); err != nil {
			log.Error("record an abandoned restore", "err", err)
		}
	case dropSpent:
		if c.Detail == detailPoweredOff {
			c.State, c.Detail = m.poweredOffOutcome(rec.Spec.Name)
		}
		spent := rec.MemoryFile
		detail := "its memory image is spent (" + rec.Spent + "): removed, not restored onto a disk that moved past it; " + c.Detail
		rec.Hot, rec.ManagedSave, rec.MemoryFile, rec.MemoryDigest = false, false, "", ""
		log.Warn("workspace changed state on its own", "from", stateSerialized, "to", c.State, "why", detail)
		if err := m.transition(ctx, rec, c.State, detail); err != nil {
			log.Error("record observed state", "err", err)
			return
		}
		// Journaled first, removed after, as restore does (the restart sweep removes
		// it once the disk takes the record).
		if spent != "" && !m.journal.kept(rec.Key) {
			if err := os.Remove(spent); err != nil && !errors.Is(err, os.ErrNotExist) {
				log.Warn("remove a spent memory image", "err", err)
			}
		}
	case retryReport:
		m.report(rec)
	}
}

// imageSpent says why rec's memory image no longer holds the RAM of its disks as they
// are now, "" when it does (or rec keeps none of its own: libvirt removes a managed-save
// image once it restored it). The domain cannot tell QEMU dying while it loaded the
// image (still the RAM) from a guest that ran from it and ended before its restore was
// journaled (the manager killed, the disk refusing the record): restored again, the
// image's page cache would meet a disk that moved past it and corrupt the guest's file
// systems. The disks tell: a save completes after QEMU's last write to them, so one
// modified after the image was written was written since; one a deploy made after
// fetching the image holds nothing while no guest wrote it. What cannot be read counts
// as spent: stale RAM is never restored.
func imageSpent(rec *record) string {
	if !rec.Hot || rec.ManagedSave || rec.MemoryFile == "" {
		return ""
	}
	img, err := os.Stat(rec.MemoryFile)
	if err != nil {
		return fmt.Sprintf("it cannot be read: %v", err)
	}
	disks := []string{rec.Run}
	for _, d := range scratchDisks(rec.Spec) {
		disks = append(disks, d.Path)
	}
	for _, disk := range disks {
		fi, err := os.Stat(disk)
		if err != nil {
			return fmt.Sprintf("whether its disk was written since cannot be read: %v", err)
		}
		if !fi.ModTime().After(img.ModTime()) {
			continue
		}
		switch unwritten, err := qcow2.Unwritten(disk); {
		case err != nil:
			return fmt.Sprintf("whether its disk was written since cannot be read: %v", err)
		case !unwritten:
			return "its disk " + filepath.Base(disk) + " was written at " + fi.ModTime().UTC().Format(time.RFC3339) +
				", after the image was saved at " + img.ModTime().UTC().Format(time.RFC3339) + ": the guest was restored from it and ran"
		}
	}
	return ""
}

// forgetDestroyed removes, domain and files, every workspace the Repository no longer
// knows — destroyed by its owner or by its lifetime while it was out on this host —
// or no longer has out here: reclaimed while this host was silent (down, or cut off),
// which the Repository records as back in the repository while this host still holds
// it deployed. It reports whether it removed any.
func (m *Manager) forgetDestroyed(ctx context.Context, recs []*record) bool {
	// The questions get half of the round at most, and a Repository that leaves one
	// unanswered is not asked again this round: one that accepts connections and
	// never answers must not leave the round no time for the hypervisor (a guest
	// that powered off would go unrecorded, its memory still counted, as long as it
	// hangs).
	ctx, cancel := halfOfRound(ctx)
	defer cancel()
	now := time.Now()
	m.existence.keepOnly(recs)
	byRepository := map[string][]*record{} // by Repository base URL, in journal order
	due := 0
	for _, rec := range recs {
		if rec.Token == "" || !m.existence.due(rec.Key, m.isLocal(rec), now) {
			continue
		}
		repository := repositoryBase(rec.WorkspaceAddress)
		byRepository[repository] = append(byRepository[repository], rec)
		due++
	}
	// Each Repository is asked on its own: one that hangs holds back the questions
	// about its own workspaces only, not those of the others this host deploys for
	// (whose workspaces, listed after its, would otherwise never be asked about).
	answers := make(chan whereabouts, due)
	for _, list := range byRepository {
		go func() {
			unanswered := false
			for _, rec := range list {
				if unanswered || ctx.Err() != nil {
					answers <- whereabouts{rec: rec}
					continue
				}
				deployment, host, err := m.repo.whereabouts(ctx, rec)
				unanswered = err != nil && !errors.Is(err, errdefs.ErrResourceUnknown) && unreachable(err)
				answers <- whereabouts{rec: rec, asked: true, deployment: deployment, host: host, err: err}
			}
		}()
	}
	removed := false
	for range due {
		a := <-answers
		rec := a.rec
		if !a.asked {
			m.existence.again(rec.Key)
			continue
		}
		why, reclaimed := "the repository destroyed the workspace", false
		switch {
		case errors.Is(a.err, errdefs.ErrResourceUnknown):
		case a.err != nil:
			m.existence.again(rec.Key) // unanswered: ask next round
			continue
		default:
			if why, reclaimed = takenAway(rec, a.deployment, a.host); !reclaimed {
				continue
			}
		}
		unlock, ok := m.locks.tryLock(rec.Key)
		if !ok {
			continue
		}
		if cur, err := m.journal.get(rec.Key); err != nil || cur.Token != rec.Token || (reclaimed && cur.Phase != phaseDeployed) {
			// Changed meanwhile (an undeploy began, or the workspace was handed back
			// and deployed here again under another lock: the answer was about the
			// old deployment): the next round asks again.
			unlock()
			continue
		}
		if err := m.removeLocal(ctx, rec); err != nil {
			m.log.Warn("remove a workspace no longer out here; will retry", "workspace", rec.Key, "why", why, "err", err)
		} else {
			m.log.Info(why+": domain and files removed", "workspace", rec.Key)
			removed = true
		}
		unlock()
	}
	return removed
}

// whereabouts is a Repository's answer where a workspace is (forgetDestroyed).
type whereabouts struct {
	rec              *record
	asked            bool // false: not asked this round (its Repository hung, or time ran out)
	deployment, host string
	err              error
}

// halfOfRound is ctx ending halfway to its deadline (ctx itself without one): what
// waits on a Repository in a reconcile round, which may hang, leaves the rest of the
// round to the hypervisor's checks.
func halfOfRound(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(deadline)/2))
}

// checkedOutAs is the host name rec's workspace was checked out under: the Repository
// knows the deployment by it, also after the host was renamed (--host-name).
func (m *Manager) checkedOutAs(rec *record) string {
	if rec.CheckedOutAs != "" {
		return rec.CheckedOutAs
	}
	return m.cfg.Host // a record from before CheckedOutAs
}

// takenAway says why a workspace this host holds deployed is no longer its own, by
// the Repository's deployment and host of it: back in the repository (an undeploy
// journals unstaging before it checks in, so only a reclaim does that while the
// record says deployed), or deployed on another host since.
func takenAway(rec *record, deployment, host string) (string, bool) {
	if rec.Phase != phaseDeployed {
		return "", false
	}
	const reclaimed = "reclaimed from this host while it was silent; what it did here since is not kept"
	switch {
	case deployment == "in-repository":
		return "the repository took the workspace back (" + reclaimed + ")", true
	case rec.CheckedOutAs != "" && host != "" && host != rec.CheckedOutAs:
		return "the repository has the workspace deployed on " + host + " now (" + reclaimed + ")", true
	}
	return "", false
}

// existenceEvery is how often the reconciler asks a remote Repository whether a
// workspace deployed here still exists (a Destroy, or the end of its lifetime, ends
// it there): each question is a SOAP call that Repository logs and audits, so not
// every round. A Repository in this process tells the manager at once instead
// (WorkspaceDestroyed), and is asked at start and when it does.
const existenceEvery = 30 * time.Second

// existenceChecks paces forgetDestroyed's questions, by workspace key.
type existenceChecks struct {
	mu    sync.Mutex
	asked map[string]time.Time // when last asked; absent: not since this process started
	now   map[string]bool      // ask next round (told destroyed, or unanswered)
}

// due says whether to ask about key now, and counts it asked if so.
func (e *existenceChecks) due(key string, local bool, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	last, asked := e.asked[key]
	switch {
	case e.now[key], !asked, !local && now.Sub(last) >= existenceEvery:
	default:
		return false
	}
	delete(e.now, key)
	if e.asked == nil {
		e.asked = map[string]time.Time{}
	}
	e.asked[key] = now
	return true
}

// keepOnly forgets the keys no record has any more.
func (e *existenceChecks) keepOnly(recs []*record) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for key := range e.asked {
		if !slices.ContainsFunc(recs, func(r *record) bool { return r.Key == key }) {
			delete(e.asked, key)
		}
	}
}

// again has key asked about next round.
func (e *existenceChecks) again(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.now == nil {
		e.now = map[string]bool{}
	}
	e.now[key] = true
}

// WorkspaceDestroyed is the Repository in this process saying it destroyed the
// workspace key: if it is deployed here, the reconciler confirms it with that
// Repository and removes its domain and files now.
func (m *Manager) WorkspaceDestroyed(key string) {
	m.existence.again(key)
	select {
	case m.kick <- struct{}{}:
	default: // a round is already asked for
	}
}

// isLocal says whether rec's workspace belongs to the Repository in this process.
func (m *Manager) isLocal(rec *record) bool {
	if m.cfg.LocalRepository == nil {
		return false
	}
	own, err := parseRepoScope(m.cfg.LocalRepository())
	u, uerr := url.Parse(rec.WorkspaceAddress)
	return err == nil && uerr == nil && own.covers(u)
}

// retryMax bounds the wait between the reconciler's attempts at an undo or hand-back
// that keeps failing.
const retryMax = 30 * time.Second

// retryBackoff spaces the reconciler's retries of an undo or a hand-back that keeps
// failing (a full disk, a Repository that refuses): the next round at first, then
// twice as long after each failure, up to retryMax — not a qemu-img run and a warning
// every round for as long as the disk stays full.
type retryBackoff struct {
	mu   sync.Mutex
	next map[string]time.Time
	wait map[string]time.Duration
}

// due says whether key's next attempt may be made now.
func (b *retryBackoff) due(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !now.Before(b.next[key])
}

// failed records a failed attempt and returns the wait before the next one: first,
// then doubled each time.
func (b *retryBackoff) failed(key string, now time.Time, first time.Duration) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.next == nil {
		b.next, b.wait = map[string]time.Time{}, map[string]time.Duration{}
	}
	w := min(max(first, time.Second), retryMax)
	if prev, ok := b.wait[key]; ok {
		w = min(2*prev, retryMax)
	}
	b.wait[key], b.next[key] = w, now.Add(w)
	return w
}

// succeeded forgets key's failures.
func (b *retryBackoff) succeeded(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.next, key)
	delete(b.wait, key)
}
