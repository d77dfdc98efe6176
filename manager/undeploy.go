package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/policy"
	"github.com/vws-grid/vws/vmm"
)

// Undeploy hands a shut-down, serialized or corrupted workspace back to the
// Repository: its changed overlay (and saved RAM) go up, it is checked in, and its
// domain and files leave this host.
func (m *Manager) Undeploy(ctx context.Context, epr *wsa.EPR) (Result, error) {
	defer m.offerChanged() // deployed workspaces and free memory
	var res Result
	err := m.withDeployed(ctx, epr, policy.Manage, "Undeploy", func(rec *record) error {
		if err := unfinishedDiscard(rec, "Undeploy"); err != nil {
			return err
		}
		switch {
		case rec.State == stateShutdown, rec.State == stateCorrupted, rec.State == statePaused && rec.Hot:
		default:
			return errdefs.WithAdvice(&errdefs.StateError{Current: rec.State, Requested: "in-repository"},
				"shut it down (Normal or Trash) or serialize it first")
		}
		// Ask the hypervisor first: with libvirtd down the hand-back cannot begin, and
		// nothing may change (the phase here and at the Repository) for a call that
		// is answered "nothing was changed".
		if _, err := m.hv.State(ctx, rec.Spec.Name); err != nil && !isNoDomain(err) {
			return err
		}
		if rec.Hot && rec.ManagedSave {
			// libvirt saved the RAM by itself (a host shutdown): it may resume here, on
			// the scratch disk it wrote to, but not go to the Repository without it.
			if err := refuseRAMWithScratch(rec, "Undeploy of the RAM libvirt saved", "in-repository"); err != nil {
				return errdefs.WithAdvice(err, "start it here (vws start) and shut it down normally, or discard its RAM (vws shutdown --mode normal); then undeploy it")
			}
			if err := m.managedSaveToFile(ctx, rec); err != nil {
				return err
			}
		}
		rec.Phase = phaseUnstaging
		if err := m.journal.put(rec); err != nil {
			rec.Phase = phaseDeployed
			m.takeBack(rec, func(cur *record) bool { return cur.Phase == phaseUnstaging })
			return m.adviseOnFullDisk(fmt.Errorf("journal: %w; the workspace stays deployed here", err), "")
		}
		m.report(rec)
		// On failure the record stays in phase unstaging: the reconciler finishes the
		// hand-back.
		digest, taken, err := m.finishUndeploy(ctx, rec)
		var left *leftoverError
		if errors.As(err, &left) {
			// Checked in: the workspace is in the repository, as answered; what is
			// left here is this host's to remove (the record stays unstaging).
			m.log.Warn("undeployed; removing the workspace's domain and files here failed, the manager retries", "workspace", rec.Key, "err", left.err)
			err = nil
		}
		if err != nil {
			// The hand-back has begun: a retry is refused, and the manager carries
			// it on by itself. Advice of its own (a full disk) stays; an unreachable
			// Repository's "nothing was changed; retry", or a failing one's "retry",
			// is not true of this call (its incident id stays in the message).
			var unreachable *unreachableError
			if errdefs.Advice(err) == "" || errors.As(err, &unreachable) || errors.Is(err, errdefs.ErrUnavailable) {
				err = errdefs.WithAdvice(err, "the workspace stays unstaging on this host and the manager retries the hand-back by itself; "+
					"if the error persists, tell the site administrator")
			}
			return err
		}
		if taken != nil {
			// The phase was deployed, so this is no check-in of ours cut short: the
			// Repository took the workspace back meanwhile (a reclaim), and nothing
			// went back with this call.
			return errdefs.WithAdvice(&errdefs.StateError{Current: taken.deployment, Requested: "in-repository",
				Err: fmt.Errorf("%w: %s before this undeploy (reclaimed from this host while it was silent): nothing was handed back, the local copy is removed, and what the workspace did here since is not kept",
					errdefs.ErrState, taken)}, "vws status EPR shows where it is now")
		}
		res = Result{State: rec.State, Deployment: "in-repository", OverlayDigest: digest}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

// managedSaveToFile moves the RAM libvirt saved for a workspace (managed save) into
// its memory.save, which the Repository takes like any serialized workspace's: the
// guest is restored paused and saved again. Done while the workspace is still
// deployed: cut short, the reconciler finds the guest paused in its RAM, or the file
// saved (adoptSave); nothing is lost either way.
func (m *Manager) managedSaveToFile(ctx context.Context, rec *record) error {
	need := spaceNeed{workspace: int64(rec.Spec.MemoryMiB) << 20}
	release, err := m.reserveRoom("undeploy "+rec.Key, need,
		fmt.Sprintf("undeploying workspace %s (writing its %d MiB of saved RAM for the repository)", rec.Key, rec.Spec.MemoryMiB),
		"discard its RAM (Shutdown Normal or Trash) and undeploy it then")
	if err != nil {
		return err
	}
	defer release()
	// The guest comes back into RAM until it is saved again: a boot like any other.
	admitted, err := m.admitBoot(ctx, rec)
	if err != nil {
		if errors.Is(err, errdefs.ErrMetadata) {
			err = errdefs.WithAdvice(err, "discard its RAM (Shutdown Normal or Trash) and undeploy it then, or shut down or serialize another guest on this host first")
		}
		return err
	}
	defer admitted()
	if err := m.hv.RestoreManagedSave(ctx, rec.Spec.Name, true); err != nil {
		if errors.Is(err, vmm.ErrNoManagedSave) {
			// The hypervisor's refusal, with the states only this record knows.
			return &errdefs.StateError{Current: rec.State, Requested: "in-repository", Err: err}
		}
		return err
	}
	mem := m.workspaceDir(rec.Key) + "/memory.save"
	// The guest is paused in its RAM now, and this save is a Serialize's: journaled as
	// one first, so that a save libvirtd finishes after a crash, or after its own
	// restart (which forgets that a save shut the domain off), is adopted rather than
	// taken for a power-off.
	rec.Hot, rec.ManagedSave, rec.MemoryFile, rec.MemoryDigest = false, false, "", ""
	rec.State, rec.Detail = statePaused, "restored from the RAM libvirt had saved, to save it for the repository"
	if err := m.begin(rec, pendingSerialize); err != nil {
		return err
	}
	if err := m.hv.Save(ctx, rec.Spec.Name, mem); err != nil {
		removeUnlessStillWritten(mem, err)
		if errors.Is(err, vmm.ErrOutcomeUnknown) {
			m.report(rec) // libvirtd may still finish it: the reconciler records what it finds
			return err
		}
		if terr := m.transition(ctx, rec, statePaused, "restored from the RAM libvirt had saved; saving it for the repository failed"); terr != nil {
			return errors.Join(err, terr)
		}
		return m.adviseOnFullDisk(err, "discard its RAM (Shutdown Normal or Trash) and undeploy it then")
	}
	if err := fsutil.SyncFile(mem); err != nil { // libvirtd does not sync what it saved
		return errdefs.WithAdvice(fmt.Errorf("make the memory image durable: %w", err),
			"the RAM is saved but not yet safely on disk; the manager records the workspace serialized once it is (check with vws status), and the host's disk may need the site administrator")
	}
	rec.Hot, rec.MemoryFile, rec.Pending, rec.Detail = true, mem, "", "serialized: RAM saved"
	if err := m.journal.put(rec); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// takenBack is where the Repository has a workspace it no longer has checked out to
// this host.
type takenBack struct {
	deployment string // the Repository's deployment state of it
	host       string // where it is deployed, unless in-repository
}

func (t *takenBack) String() string {
	if t.deployment == "in-repository" {
		return "the repository holds the workspace"
	}
	return "the repository has the workspace deployed on " + t.host
}

// finishUndeploy does the hand-back; every step may be repeated after a crash. When
// the Repository no longer has the workspace checked out to this host, only local
// clean-up remains, and taken says where it is instead.
func (m *Manager) finishUndeploy(ctx context.Context, rec *record) (digest string, taken *takenBack, err error) {
	if err := m.hv.Stop(ctx, rec.Spec.Name); err != nil && !isNoDomain(err) {
		return "", nil, err
	}
	// A crash after the check-in went through leaves the lock released (the
	// workspace in the repository, or already out on another host): only local
	// clean-up remains. An answer naming no host says nothing of another host (as in
	// takenAway): the hand-back goes on, and the Repository refuses it if the lock
	// is no longer this host's, rather than the changes being deleted unreturned.
	if dep, host, err := m.repo.whereabouts(ctx, rec); err != nil {
		return "", nil, err
	} else if dep == "in-repository" || host != "" && host != m.checkedOutAs(rec) {
		return rec.OverlayDigest, &takenBack{deployment: dep, host: host}, m.removeLocal(ctx, rec)
	}
	overlayDigest, err := m.uploadOverlay(ctx, rec)
	if err != nil {
		return "", nil, m.keepDeployed(rec, err)
	}
	memoryDigest := ""
	switch {
	case rec.Hot && rec.MemoryDigest != "":
		// Deployed serialized and never resumed: the Repository holds this image.
		memoryDigest = rec.MemoryDigest
	case rec.Hot && rec.MemoryFile != "":
		if memoryDigest, err = m.repo.upload(ctx, rec, "memory", rec.MemoryFile); err != nil {
			return "", nil, m.keepDeployed(rec, err)
		}
	}
	state := rec.State
	if err := m.repo.checkIn(ctx, rec, overlayDigest, memoryDigest, state); err != nil {
		return "", nil, err
	}
	if err := m.removeLocal(ctx, rec); err != nil {
		return overlayDigest, nil, &leftoverError{err}
	}
	return overlayDigest, nil, nil
}

// keepDeployed ends a hand-back whose upload the Repository refused for good
// (uploadRefusedError): sent again, the same bytes would be refused again, so the
// workspace goes back to deployed here rather than stay unstaging, every operation on
// it refused while the reconciler sends them for ever. Nothing is lost: the checked-out
// overlay holds the guest's changes, and the Repository kept nothing. Other errors
// are returned as they are, for the reconciler to retry.
func (m *Manager) keepDeployed(rec *record, err error) error {
	var refused *uploadRefusedError
	if !errors.As(err, &refused) {
		return err
	}
	rec.Phase = phaseDeployed
	if jerr := m.journal.put(rec); jerr != nil {
		rec.Phase = phaseUnstaging // as the journal still says: the reconciler tries again
		return fmt.Errorf("%s; recording the workspace deployed again failed: %w", err.Error(), jerr)
	}
	m.report(rec)
	m.log.Error("the repository refused the hand-back; the workspace stays deployed here", "workspace", rec.Key, "err", err)
	return errdefs.WithAdvice(err, "nothing was handed back: the workspace stays deployed on this host, "+rec.State+
		", and the repository keeps what it had; this deployment's changes are now in its overlay here (Shutdown Trash no longer discards them). "+
		"See to what the repository names (the site administrator of this host may have to repair the file), then undeploy again")
}

// headerless says whether the qcow2 file at path was created but its header not
// (wholly) written: empty, or cut short inside the header.
func headerless(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	_, err = qcow2.ReadInfo(path)
	return errors.Is(err, qcow2.ErrTruncated) || (fi.Size() == 0 && errors.Is(err, qcow2.ErrNotQCOW2))
}

// leftoverError is a hand-back the Repository took whose local clean-up (domain,
// files, record) failed: the undeploy is done, and the reconciler removes the rest.
type leftoverError struct{ err error }

func (e *leftoverError) Error() string {
	return "checked in; removing the workspace's domain and files here: " + e.err.Error()
}
func (e *leftoverError) Unwrap() error { return e.err }

// removeLocal removes a handed-back workspace from this host: domain, files, record.
func (m *Manager) removeLocal(ctx context.Context, rec *record) error {
	if err := m.removeDomain(ctx, rec.Key); err != nil {
		return err
	}
	if err := m.removeWorkspaceDir(rec.Key); err != nil {
		return err
	}
	if err := m.journal.remove(rec.Key); err != nil {
		return err
	}
	// Its images are no longer in use: a cache over its budget (everything was in
	// use) comes back within it now. They were in use until now, so they are the
	// most recently used, not as old as their staging.
	for _, d := range rec.Shared {
		m.cache.used(d)
	}
	m.evictCache()
	return nil
}

// removeWorkspaceDir removes a workspace's directory. Console reads (the host's
// properties, Console) take no workspace lock, and one may write the console index
// there: under consoleMu none is in flight, so none puts a file in the directory
// while it is removed (RemoveAll would fail: directory not empty); one that comes
// after finds no console log, or cannot create its index in the missing directory.
func (m *Manager) removeWorkspaceDir(key string) error {
	consoleMu.Lock()
	defer consoleMu.Unlock()
	return os.RemoveAll(m.workspaceDir(key))
}

// uploadOverlay folds the deployment's changes into the checked-out overlay and
// uploads it when anything changed; it returns the digest to check in.
func (m *Manager) uploadOverlay(ctx context.Context, rec *record) (string, error) {
	if headerless(rec.Run) {
		// A run disk whose header was never written out is one a kill cut off while
		// an earlier vws's resetRun made it anew in place, after the commit below: no
		// guest ever wrote to it, and qemu-img would refuse it at every retry. (A
		// damaged header on a disk with data is left to fail loudly.)
		if err := resetRun(rec); err != nil {
			return "", err
		}
	}
	if fi, err := os.Stat(rec.Run); err == nil {
		// The commit writes at most the clusters the deployment wrote, and qcow2
		// tables: refused up front, it leaves the checked-out overlay untouched rather
		// than half-written by a commit the disk cuts off. No --min-free floor: an
		// undeploy is how a host gets its space back.
		changed := fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			changed = st.Blocks * 512
		}
		const retried = "; the workspace stays unstaging here, and the manager finishes the undeploy by itself once there is room"
		release, err := m.reserveRoomAbove("undeploy "+rec.Key, spaceNeed{workspace: changed + ownFilesSlack}, 0,
			fmt.Sprintf("undeploying workspace %s (folding the %s its guest wrote into its overlay)", rec.Key, ibytes(changed)), "")
		if err != nil {
			return "", errdefs.WithAdvice(err, errdefs.Advice(err)+retried)
		}
		err = commitRun(ctx, rec.Run)
		release()
		if err != nil && isNoSpace(err) {
			err = m.adviseOnFullDisk(err, "")
			return "", errdefs.WithAdvice(err, errdefs.Advice(err)+retried)
		}
		if err != nil {
			return "", err
		}
		// Empty again: a repeated commit (after a crash) changes nothing.
		if err := resetRun(rec); err != nil {
			return "", err
		}
	}
	return m.repo.upload(ctx, rec, "overlay", rec.Overlay)
}
