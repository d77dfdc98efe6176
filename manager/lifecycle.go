package manager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/cidata"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/policy"
	"github.com/vws-grid/vws/vmm"
)

// Workspace states (the paper's) and deployment states, as the Repository knows them.
const (
	stateShutdown  = "shutdown"
	stateRunning   = "running"
	statePaused    = "paused"
	stateCorrupted = "corrupted"
)

// Shutdown modes.
const (
	ModeNormal    = "Normal"
	ModeTrash     = "Trash"
	ModeSerialize = "Serialize"
)

// stateSerialized is the state a Serialize asks for, as a WorkspaceStateFault names
// it: paused, with the RAM in a memory image.
const stateSerialized = "paused (serialized)"

// requestedState is the state the operation op leads a workspace to, which a
// WorkspaceStateFault refusing it names: op as the refusals name it ("Start",
// "Shutdown (Trash)"), or a Shutdown's mode alone; "" for none vws knows.
func requestedState(op string) string {
	switch strings.TrimSuffix(strings.TrimPrefix(op, "Shutdown ("), ")") {
	case "Deploy":
		return phaseDeployed
	case "Start", "Unpause":
		return stateRunning
	case "Pause":
		return statePaused
	case ModeNormal, ModeTrash:
		return stateShutdown
	case ModeSerialize:
		return stateSerialized
	case "Undeploy":
		return "in-repository"
	}
	return ""
}

// Shutdowns under way (record.Pending): each is journaled before its first step, so
// a manager killed part-way comes back knowing what it was doing.
const (
	pendingShutdown = "shutdown" // Normal: the guest is asked to power off, forced off after grace
	pendingTrash    = "trash"    // Trash: forced off, changes and saved RAM discarded
	pendingDrop     = "drop"     // Normal of a serialized workspace: its memory image discarded
	// Serialize: libvirtd is saving the RAM to memory.save. A restarted libvirtd
	// forgets why a domain is shut off ("saved" becomes "unknown"), so this mark, not
	// the shut-off reason, tells a finished save from a guest that powered off.
	pendingSerialize = "serialize"
	// A restore (Start, Unpause) libvirtd fell silent under, journaled once it is cut
	// off: libvirtd may still bring the guest up from the memory image when it
	// wakes, so nothing may discard, upload or restore that image until the
	// reconciler has seen whether it did.
	pendingRestore = "restore"
)

// Result is a workspace's state after an operation.
type Result struct {
	State      string
	Deployment string
	Host       string
	// OverlayDigest is what Undeploy checked in.
	OverlayDigest string
}

func keyOf(epr *wsa.EPR) (string, error) {
	if epr == nil {
		return "", fmt.Errorf("%w: no workspace reference", errdefs.ErrBadRequest)
	}
	var keys []*etree.Element
	for _, r := range epr.References {
		if r.Tag == "WorkspaceKey" && r.NamespaceURI() == vwsns.Workspace {
			keys = append(keys, r)
		}
	}
	switch {
	case len(keys) == 0:
		return "", errdefs.WithAdvice(fmt.Errorf("%w: the workspace reference has no vw:WorkspaceKey", errdefs.ErrResourceUnknown),
			"pass the EPR that Create returned")
	case len(keys) > 1:
		return "", errdefs.WithAdvice(fmt.Errorf("%w: the workspace reference has %d vw:WorkspaceKey parameters", errdefs.ErrBadRequest, len(keys)),
			"pass the EPR that Create returned, which has one")
	}
	// Trimmed as the WorkspaceService reads it: pretty-printed EPR files indent it.
	key := strings.TrimSpace(keys[0].Text())
	if !keyRE.MatchString(key) {
		return "", fmt.Errorf("%w: %q is not a workspace key", errdefs.ErrResourceUnknown, key)
	}
	return key, nil
}

// deployed returns the journal record of a workspace deployed here, for the
// operation name (class op) the caller in ctx may do to it. The caller is decided on
// before anything is said of the workspace's phase, when its owner is known.
func (m *Manager) deployed(ctx context.Context, key string, op policy.Operation, name string) (*record, error) {
	rec, err := m.journal.get(key)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: workspace %s is not deployed on host %s", errdefs.ErrResourceUnknown, key, m.cfg.Host),
			"deploy it here first, or ask the manager of the host it is deployed on (the workspace's vw:managerReference)")
	}
	if err != nil {
		return nil, err
	}
	if rec.Owner != "" || rec.Phase == phaseDeployed {
		if err := m.authorize(ctx, op, name, rec); err != nil {
			return nil, err
		}
	}
	switch rec.Phase {
	case phaseDeployed:
		return rec, nil
	case phaseUnstaging:
		// An undeploy that failed part-way, which the reconciler finishes.
		return nil, errdefs.WithAdvice(&errdefs.StateError{Current: phaseUnstaging, Requested: requestedState(name),
			Err: fmt.Errorf("%w: workspace %s is unstaging on host %s (being handed back to the Repository); %s is refused", errdefs.ErrState, key, m.cfg.Host, name)},
			"the manager finishes the hand-back by itself; then deploy the workspace again")
	default:
		// A deploy that failed or lost its check-out answer, which the reconciler undoes.
		return nil, errdefs.WithAdvice(&errdefs.StateError{Current: rec.Phase, Requested: requestedState(name),
			Err: fmt.Errorf("%w: workspace %s is %s on host %s (a deploy not finished); %s is refused", errdefs.ErrState, key, rec.Phase, m.cfg.Host, name)},
			"the manager undoes the unfinished deploy by itself; then deploy the workspace again")
	}
}

// Deploy checks the workspace out, stages its images, defines its domain and leaves
// it in state initial ("" or shutdown, running, paused). On any failure everything is
// undone: no domain, no file, and the lock is released.
func (m *Manager) Deploy(ctx context.Context, epr *wsa.EPR, initial string) (Result, error) {
	key, err := keyOf(epr)
	if err != nil {
		return Result{}, err
	}
	switch initial {
	case "", stateShutdown, stateRunning, statePaused:
	default:
		return Result{}, fmt.Errorf("%w: initial state %q is not shutdown, running or paused", errdefs.ErrBadRequest, initial)
	}
	if err := m.checkRepository(epr.Address); err != nil {
		return Result{}, err
	}
	defer m.offerChanged() // deployed workspaces, cached images and free memory
	defer m.syncs.hold()() // staged images are written out after it (cachesync.go)
	unlock, err := m.lockWorkspace(ctx, key, "Deploy")
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	if held, err := m.journal.get(key); err != nil && !errors.Is(err, os.ErrNotExist) {
		// A record this manager cannot read (damaged, or written by a newer vws) is of
		// a workspace that may be deployed here: a new deployment would overwrite it,
		// and undoing that one would remove the guest and its disk.
		m.log.Error("deploy refused: the journal record of the workspace cannot be read", "workspace", key, "err", err)
		// Which phase the record says is unreadable too; that there is one says the
		// workspace is deployed here, in one phase or another.
		return Result{}, errdefs.WithAdvice(&errdefs.StateError{Current: phaseDeployed, Requested: phaseDeployed,
			Err: fmt.Errorf("%w: this host keeps a record of workspace %s that it cannot read; Deploy is refused", errdefs.ErrState, key)},
			"the site admin of this host must look at its journal record (the manager's log names it); deploy the workspace on another host meanwhile")
	} else if err == nil {
		rec := held
		// Only a caller who may manage the workspace learns its state here; the owner
		// is the one its signed manifest named. A record without one is a check-out
		// not yet answered: whose the workspace is is not known, so nothing is told.
		if rec.Owner == "" {
			// Staging, as such a record is, and said no further than the message does.
			return Result{}, errdefs.WithAdvice(&errdefs.StateError{Current: phaseStaging, Requested: phaseDeployed,
				Err: fmt.Errorf("%w: workspace %s has a deploy under way on this host; Deploy is refused", errdefs.ErrState, key)},
				"the manager finishes or undoes that deploy by itself; deploy the workspace again then")
		}
		if err := m.authorize(ctx, policy.Manage, "Deploy", rec); err != nil {
			return Result{}, err
		}
		return Result{}, errdefs.WithAdvice(&errdefs.StateError{Current: rec.Phase + "/" + rec.State + " on " + m.cfg.Host, Requested: "staging"},
			"it is already deployed here")
	}
	if err := m.refuseWhileDraining(key); err != nil {
		return Result{}, err
	}
	// A new deployment: what the reporter told the Repository of an earlier one on
	// this host (a failed deploy reported deployed, then undone) must not pass for
	// this one's report, or its first state (shutdown/deployed again) is never sent
	// and the Repository keeps the check-out's "staging".
	m.reported.Delete(key)
	// Ask the hypervisor first: with libvirtd down nothing must be checked out.
	host, err := m.hv.Host(ctx)
	if err != nil {
		return Result{}, err
	}
	// Journal the intent before the check-out, so a crash right after it is found.
	rec := &record{Key: key, WorkspaceAddress: epr.Address, WSAVersion: int(epr.Version), CheckedOutAs: m.cfg.Host, Phase: phaseStaging, CheckOutID: rand.Text()}
	// The cache images this deploy stages stay pinned until it ends; its journal
	// record keeps them from eviction after that. A failed deploy leaves them (and a
	// .part to resume) evictable: the budget holds from then on.
	defer func() {
		m.cache.unpin(rec.Shared)
		m.evictCache()
	}()
	if err := m.journal.put(rec); err != nil {
		m.journal.remove(key) // what a failed write may have left
		return Result{}, m.adviseOnFullDisk(fmt.Errorf("journal: %w; nothing was done", err), "deploy the workspace on another host")
	}
	// Again, now that the record is there: a drain that began since the check above
	// lists this deploy among the host's workspaces, or is seen here — never neither.
	if err := m.refuseWhileDraining(key); err != nil {
		m.journal.remove(key)
		return Result{}, err
	}
	caller := identity.From(ctx)
	// The Repository is called with the workspace's address and key alone, as every
	// later call is: other reference parameters of the caller's EPR would go along
	// as SOAP headers, in the manager's name.
	man, err := m.repo.checkOut(ctx, workspaceEPR(rec), m.cfg.Host, rec.CheckOutID, m.selfEPR(epr.Version), &caller)
	if err != nil {
		switch {
		case man != nil:
			// Checked out, but the manifest failed verification: hand the lock back.
			rec.Token, rec.StateAtCheckout = man.Token, man.State
			if o := man.image("overlay"); o != nil {
				rec.OverlayDigest = o.Digest
			}
			if mem := man.image("memory"); mem != nil {
				rec.MemoryDigest = mem.Digest
			}
			if uerr := m.undoDeploy(context.WithoutCancel(ctx), rec); uerr != nil {
				m.journal.put(rec) // the reconciler retries the hand-back
				m.log.Error("hand back a workspace whose manifest failed verification; the reconciler retries", "workspace", key, "err", uerr)
			}
		case !outcomeUnknown(err):
			m.journal.remove(key)
		default: // the reconciler asks again for the lock (if it was taken) and gives it back
			err = errdefs.WithAdvice(err, "the Repository may have locked the workspace to this host meanwhile: the manager gives the lock back by itself once the Repository answers again; deploy it then")
		}
		return Result{}, err
	}
	rec.Name, rec.Owner, rec.Token, rec.State, rec.StateAtCheckout = man.Name, man.Owner, man.Token, man.State, man.State
	rec.OverlayDigest = man.image("overlay").Digest
	if mem := man.image("memory"); mem != nil {
		rec.MemoryDigest = mem.Digest
	}
	if err := m.journal.put(rec); err != nil {
		m.undoDeploy(context.WithoutCancel(ctx), rec)
		return Result{}, m.adviseOnFullDisk(fmt.Errorf("journal: %w", err), "deploy the workspace on another host")
	}
	res, err := m.stageAndDefine(ctx, rec, man, host, initial)
	if err != nil {
		if uerr := m.undoDeploy(context.WithoutCancel(ctx), rec); uerr != nil {
			m.log.Error("undo a failed deploy; the reconciler retries", "workspace", key, "err", uerr)
		}
		return Result{}, m.adviseOnFullDisk(err, "deploy the workspace on another host")
	}
	return res, nil
}

// keyHostname is a host name made from a workspace key. The key is its Repository's
// choice, of any length from 1 and with '.' and '_', which a host name cannot hold.
func keyHostname(key string) string {
	part := []byte(key[:min(8, len(key))])
	for i, c := range part {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			part[i] = '-'
		}
	}
	// A key starts with a letter or digit (keyRE): something is left.
	return "ws-" + strings.TrimRight(string(part), "-")
}

func (m *Manager) stageAndDefine(ctx context.Context, rec *record, man *manifest, host vmm.HostInfo, initial string) (Result, error) {
	desc, err := m.valid.ValidateElement(man.Description)
	if err != nil {
		return Result{}, err
	}
	hot := man.image("memory") != nil
	if hot && man.State != statePaused {
		return Result{}, fmt.Errorf("%w: the manifest carries saved memory but the workspace is %s, not paused", errdefs.ErrImageIntegrity, man.State)
	}
	offer := m.offer(host)
	dir := m.workspaceDir(rec.Key)
	planned := stagedFiles{Disk: dir + "/run.qcow2", CIData: dir + "/cidata.iso", Console: dir + "/console.log", Dir: dir}
	if k := man.image("kernel"); k != nil {
		planned.Kernel = m.cache.path(k.Digest)
	}
	if i := man.image("initrd"); i != nil {
		planned.Initrd = m.cache.path(i.Digest)
	}
	// Check the description against this host before moving any bytes, with the
	// memory the account leaves (memory.go), held while the deploy stages a guest it
	// boots.
	var spec vmm.Spec
	releaseMemory, err := m.grantForDeploy(host, rec.Key, initial == stateRunning || initial == statePaused, func(free int64) (int64, error) {
		offer.FreeMiB = free
		s, err := buildSpec(rec.Key, desc, offer, planned)
		spec = s
		return int64(s.MemoryMiB), err
	})
	if err != nil {
		return Result{}, err
	}
	defer releaseMemory()
	if initial == stateRunning || initial == statePaused {
		if err := startableNetworks(spec, offer); err != nil {
			return Result{}, err
		}
	}
	// And the disk: a deploy that cannot fit fails here, having written nothing,
	// rather than part-way with a bare write error. The images counted as cached
	// stay pinned so that no eviction takes them before they are staged.
	defer m.pinManifest(man)()
	need := m.deployNeed(man)
	need.workspace += scratchBytes(spec)
	release, err := m.reserveRoom("deploy "+rec.Key, need, "workspace "+rec.Key, "deploy the workspace on another host")
	if err != nil {
		return Result{}, err
	}
	defer release()
	progress := &progressCell{}
	m.progress.Store(rec.Key, progress)
	defer m.progress.Delete(rec.Key)
	files, err := m.stageFiles(ctx, man, rec, func(done, total int64) { progress.done.Store(done); progress.total.Store(total) })
	if err != nil {
		return Result{}, err
	}
	spec, err = buildSpec(rec.Key, desc, offer, files)
	if err != nil {
		return Result{}, err
	}
	if hot {
		// The guest resumes with the memory it was saved with, not what this host
		// would grant the workspace afresh.
		saved, err := m.hv.SavedMemoryMiB(ctx, rec.MemoryFile)
		if err != nil {
			return Result{}, err
		}
		if err := restorableMemory(desc.Hardware.Memory, saved, offer.FreeMiB); err != nil {
			return Result{}, err
		}
		spec.MemoryMiB = int(saved)
	}
	hostname := man.Name
	if desc.Network != nil {
		for _, n := range desc.Network.NICs {
			if n.IP != nil && n.IP.Hostname != "" {
				hostname = n.IP.Hostname
				break
			}
		}
	}
	if !hostnameRE.MatchString(hostname) {
		hostname = keyHostname(rec.Key)
	}
	if err := cidata.Write(files.CIData, cidata.Config{InstanceID: rec.Key, Hostname: hostname, Startup: desc.Startup}); err != nil {
		return Result{}, fmt.Errorf("configuration CD: %w", err)
	}
	// In the workspace's directory, which an undone deploy removes whole (the
	// reconciler's too, after a crash): never uploaded.
	if err := createScratch(spec); err != nil {
		return Result{}, err
	}
	rec.Spec = spec
	rec.Hot = hot
	if err := m.journal.put(rec); err != nil {
		return Result{}, err
	}
	if err := m.hv.Define(ctx, spec); err != nil {
		return Result{}, err
	}
	rec.Phase = phaseDeployed
	if hot {
		rec.State = statePaused
	} else {
		rec.State = stateShutdown
	}
	if err := m.journal.put(rec); err != nil {
		return Result{}, err
	}
	m.report(rec)
	switch {
	case initial == stateRunning && hot:
		err = m.restore(ctx, rec, false)
	case initial == stateRunning:
		err = m.start(ctx, rec)
	case initial == statePaused && hot:
		// The schema's "paused": restored into memory, vCPUs stopped.
		err = m.restore(ctx, rec, true)
	case initial == statePaused:
		err = m.startPaused(ctx, rec)
	}
	if err != nil {
		return Result{}, err
	}
	return m.result(rec), nil
}

// undoDeploy removes what a failed deploy made and releases the lock unchanged.
func (m *Manager) undoDeploy(ctx context.Context, rec *record) error {
	if rec.Phase != phaseStaging {
		// The deploy failed after recording it deployed (its start or restore did):
		// journal the undo first. A crash part-way through it is then undone again by
		// the reconciler, not taken for a deployed workspace whose domain, files or
		// lock went missing (it would redefine the domain over deleted files).
		rec.Phase = phaseStaging
		if _, err := m.journal.putOrKeep(rec); err != nil {
			if !m.journal.kept(rec.Key) {
				return fmt.Errorf("journal the undo of a deploy: %w", err)
			}
			// The disk refuses the mark, but the undo must still happen, or a deploy
			// answered as failed leaves its guest defined and the lock held here. Kept
			// in memory, the mark has the reconciler finish it if a step below fails.
			m.log.Error("journal the undo of a deploy: undoing it with the mark kept in memory", "workspace", rec.Key, "err", err)
		}
	}
	if err := m.removeDomain(ctx, rec.Key); err != nil {
		return err
	}
	if err := m.removeWorkspaceDir(rec.Key); err != nil {
		return err
	}
	if rec.Token != "" {
		if err := m.repo.checkIn(ctx, rec, rec.OverlayDigest, rec.MemoryDigest, handBackState(rec.StateAtCheckout)); err != nil && !errors.Is(err, errdefs.ErrLocked) {
			return err
		}
	}
	return m.journal.remove(rec.Key)
}

// handBackState is the state an undone deploy checks the workspace in with: the one
// it was checked out in, except running, which an earlier Repository recorded of
// workspaces checked in so and now refuses at check-in. Without a memory image, a
// workspace nobody runs is shut down.
func handBackState(atCheckout string) string {
	if atCheckout == stateRunning {
		return stateShutdown
	}
	return atCheckout
}

// removeDomain stops and undefines a workspace's domain, if there is one.
func (m *Manager) removeDomain(ctx context.Context, key string) error {
	name := domainName(key)
	if err := m.hv.Stop(ctx, name); err != nil && !errors.Is(err, vmm.ErrNoDomain) {
		return err
	}
	if err := m.hv.Undefine(ctx, name); err != nil && !errors.Is(err, vmm.ErrNoDomain) {
		return err
	}
	return nil
}

// Start boots a shut-down workspace, or resumes a serialized one from its memory image.
func (m *Manager) Start(ctx context.Context, epr *wsa.EPR) (Result, error) {
	defer m.offerChanged() // free memory
	return m.op(ctx, epr, "Start", func(rec *record) error {
		if err := unfinishedDiscard(rec, "Start"); err != nil {
			return err
		}
		switch {
		case rec.State == stateShutdown:
			return m.start(ctx, rec)
		case rec.State == statePaused && rec.Hot:
			return m.restore(ctx, rec, false)
		}
		return &errdefs.StateError{Current: rec.State, Requested: stateRunning}
	})
}

// Pause suspends a running workspace's vCPUs; its RAM stays in the host's memory.
func (m *Manager) Pause(ctx context.Context, epr *wsa.EPR) (Result, error) {
	return m.op(ctx, epr, "Pause", func(rec *record) error {
		if err := unfinishedDiscard(rec, "Pause"); err != nil {
			return err
		}
		if rec.State != stateRunning {
			return &errdefs.StateError{Current: rec.State, Requested: statePaused}
		}
		return m.pause(ctx, rec)
	})
}

// Unpause resumes a paused workspace; a serialized one is restored from its memory image.
func (m *Manager) Unpause(ctx context.Context, epr *wsa.EPR) (Result, error) {
	return m.op(ctx, epr, "Unpause", func(rec *record) error {
		if err := unfinishedDiscard(rec, "Unpause"); err != nil {
			return err
		}
		if rec.State != statePaused {
			return &errdefs.StateError{Current: rec.State, Requested: stateRunning}
		}
		if rec.Hot {
			return m.restore(ctx, rec, false)
		}
		if err := m.hv.Resume(ctx, rec.Spec.Name); err != nil {
			return m.endedBefore(ctx, rec, stateRunning, err)
		}
		return m.transitionFast(rec, stateRunning)
	})
}

// Shutdown stops a workspace: Normal asks the guest (ACPI) and forces it off after
// grace; Trash forces it off and discards this deployment's changes; Serialize saves
// its RAM to a memory image ("hot image").
func (m *Manager) Shutdown(ctx context.Context, epr *wsa.EPR, mode string, grace time.Duration) (Result, error) {
	if grace <= 0 {
		grace = m.cfg.GracePeriod
	}
	defer m.offerChanged() // free memory
	normalized := mode
	if normalized == "" {
		normalized = ModeNormal
	}
	return m.op(ctx, epr, "Shutdown ("+normalized+")", func(rec *record) error {
		if err := unfinishedDiscard(rec, normalized); err != nil {
			return err
		}
		name := rec.Spec.Name
		switch mode {
		case ModeNormal, "":
			switch {
			case rec.State == stateRunning, rec.State == statePaused && !rec.Hot:
				// A guest that ended before this shutdown (crashed, forced off behind
				// vws's back, powered off by itself, unseen by the reconciler yet) is
				// recorded as the reconciler records it, not as shut down by this call.
				if c, ok := m.observedEnd(ctx, rec); ok {
					if err := m.transition(ctx, rec, c.State, c.Detail); err != nil {
						return err
					}
					if c.State == stateCorrupted {
						return errdefs.WithAdvice(&errdefs.StateError{Current: stateCorrupted, Requested: stateShutdown}, c.Detail)
					}
					return nil
				}
				// Journaled first: a domain found forced off after a crash was forced by
				// this shutdown (shutdown), not destroyed behind vws's back (corrupted).
				if err := m.begin(rec, pendingShutdown); err != nil {
					return err
				}
				if rec.State == statePaused {
					// A paused guest cannot hear the ACPI request.
					if err := m.hv.Resume(ctx, name); err != nil {
						m.abandon(rec, err)
						return err
					}
				}
				forced, err := m.hv.Shutdown(ctx, name, grace)
				if err != nil {
					m.abandon(rec, err)
					return err
				}
				detail := ""
				if forced {
					detail = fmt.Sprintf("the guest did not power off within %s; forced off", grace)
				} else if c, ok := m.observedEnd(ctx, rec); ok {
					// Off, but not by its own power-off (its QEMU died, or it was forced
					// off outside vws, during the grace): as a restarted manager says.
					detail = c.Detail
				}
				return m.transition(ctx, rec, stateShutdown, detail)
			case rec.State == statePaused && rec.Hot:
				return m.dropMemory(ctx, rec)
			}
			return &errdefs.StateError{Current: rec.State, Requested: stateShutdown}
		case ModeTrash:
			// Journaled first: a crash part-way would otherwise leave a forced-off domain
			// taken for corrupted, or a memory image kept beside the disk it was reset
			// under (a Start would resume stale RAM on it). The reconciler finishes it.
			if err := m.begin(rec, pendingTrash); err != nil {
				return err
			}
			if err := m.hv.Stop(ctx, name); err != nil && !errors.Is(err, vmm.ErrNoDomain) {
				m.abandon(rec, err) // nothing changed yet, unless libvirtd may still do it
				return err
			}
			return m.trash(ctx, rec, rec.State == stateCorrupted)
		case ModeSerialize:
			if rec.State == statePaused && rec.Hot {
				// Named as the state asked for: vws move reads "serialized already"
				// from the fault's states, not from its words.
				return &errdefs.StateError{Current: stateSerialized, Requested: stateSerialized}
			}
			if rec.State != stateRunning && rec.State != statePaused {
				return &errdefs.StateError{Current: rec.State, Requested: stateSerialized}
			}
			// Before anything is journaled or saved: the guest runs on untouched.
			if err := refuseRAMWithScratch(rec, "Serialize", stateSerialized); err != nil {
				return err
			}
			// Refuse before libvirt writes: a save that fills the disk fails late and
			// leaves the disk full; refused here, the guest runs on untouched.
			need := spaceNeed{workspace: int64(rec.Spec.MemoryMiB) << 20}
			release, err := m.reserveRoom("serialize "+rec.Key, need, fmt.Sprintf("serializing workspace %s (saving its %d MiB of RAM)", rec.Key, rec.Spec.MemoryMiB),
				"shut the workspace down (Normal) instead of serializing it; it keeps running as it is")
			if err != nil {
				return err
			}
			defer release()
			mem := m.workspaceDir(rec.Key) + "/memory.save"
			if err := m.begin(rec, pendingSerialize); err != nil {
				return err
			}
			if err := m.hv.Save(ctx, name, mem); err != nil {
				removeUnlessStillWritten(mem, err)
				m.abandon(rec, err)
				// A guest that powered itself off before or during the save (libvirt: "domain
				// is not running") had nothing to save and lost nothing: recorded as the
				// reconciler records it, and refused in that state.
				if !errors.Is(err, vmm.ErrOutcomeUnknown) {
					if c, ok := m.observedEnd(ctx, rec); ok && c.State != stateCorrupted {
						if err := m.transition(ctx, rec, c.State, c.Detail); err != nil {
							return err
						}
						return errdefs.WithAdvice(&errdefs.StateError{Current: c.State, Requested: stateSerialized,
							Err: fmt.Errorf("%w: workspace %s cannot be serialized: %s", errdefs.ErrState, rec.Key, c.Detail)},
							"it is shut down, its disk as the guest left it: start it again, or undeploy it")
					}
				}
				if lost := m.guestEnded(ctx, rec, err); lost != nil {
					return lost
				}
				return m.adviseOnFullDisk(err, "shut the workspace down (Normal) instead of serializing it")
			}
			// libvirtd does not sync what it saved: a power failure must not leave a
			// serialized record with a memory image the page cache never wrote out.
			if err := fsutil.SyncFile(mem); err != nil {
				return errdefs.WithAdvice(fmt.Errorf("make the memory image durable: %w", err),
					"the RAM is saved but not yet safely on disk; the manager records the workspace serialized once it is (check with vws status), and the host's disk may need the site administrator")
			}
			// The Repository's memory image (if any) no longer describes this file.
			rec.Hot, rec.MemoryFile, rec.MemoryDigest = true, mem, ""
			return m.transition(ctx, rec, statePaused, "serialized: RAM saved")
		}
		return fmt.Errorf("%w: shutdown mode %q is not Normal, Trash or Serialize", errdefs.ErrBadRequest, mode)
	})
}

// guestEnded is the answer to a failed save whose guest is no longer running (its
// QEMU died part-way: "qemu unexpectedly closed the monitor"), nil otherwise. Then the
// workspace did not stay as it was, which a hypervisor failure otherwise promises:
// its RAM is gone, and the reconciler records it corrupted.
func (m *Manager) guestEnded(ctx context.Context, rec *record, cause error) error {
	if errors.Is(cause, vmm.ErrOutcomeUnknown) {
		return nil // libvirtd may still be saving: the reconciler learns the outcome
	}
	st, err := m.hv.State(ctx, rec.Spec.Name)
	if err != nil && !errors.Is(err, vmm.ErrNoDomain) {
		return nil
	}
	if err == nil && st != vmm.StateShutOff && st != vmm.StateCrashed {
		return nil
	}
	select {
	case m.kick <- struct{}{}: // record it corrupted now, not at the next round
	default:
	}
	return errdefs.WithAdvice(fmt.Errorf("%w: serialize workspace %s: the guest's QEMU ended while its RAM was being saved (%v); its RAM is lost",
		errdefs.ErrHypervisor, rec.Key, cause),
		"the workspace is now corrupted: vws shutdown --mode trash brings it back, shut down, from its disk as it was deployed; or destroy it; tell the site administrator (the QEMU log on the host says why it ended)")
}

// removeUnlessStillWritten removes what a failed save left at mem, unless libvirtd
// may still be writing it: a save cut off by a silent libvirtd goes on when libvirtd
// wakes, and removing its file then would lose the guest's RAM (the reconciler
// records the save once libvirt reports the domain saved and the file is there).
func removeUnlessStillWritten(mem string, err error) {
	if !errors.Is(err, vmm.ErrOutcomeUnknown) {
		os.Remove(mem)
	}
}

// trash discards this deployment's changes and any saved RAM of a workspace whose
// domain is off, defining the domain anew when define; it ends shut down. Every step
// may be repeated: the reconciler uses it to finish a Trash a crash interrupted.
func (m *Manager) trash(ctx context.Context, rec *record, define bool) error {
	if err := resetRun(rec); err != nil {
		return fmt.Errorf("discard the deployment's changes: %w", err)
	}
	// What the guest wrote to its scratch disks is this deployment's too.
	if err := createScratch(rec.Spec); err != nil {
		return fmt.Errorf("discard the deployment's changes: %w", err)
	}
	if define {
		// Trash is the way back from a vanished domain: define it anew.
		if err := m.hv.Define(ctx, rec.Spec); err != nil {
			return err
		}
	}
	rec.Detail = ""
	return m.dropMemory(ctx, rec)
}

// dropMemory discards a saved memory image; the workspace ends shut down.
func (m *Manager) dropMemory(ctx context.Context, rec *record) error {
	began := false
	if rec.MemoryFile != "" || rec.ManagedSave {
		if rec.Pending == "" {
			// Journaled first: killed after the removal, the manager would come back
			// to a serialized workspace with no memory image, which neither starts nor
			// undeploys (the upload of the missing image fails at every retry).
			if err := m.begin(rec, pendingDrop); err != nil {
				return err
			}
			began = true
		}
	}
	if rec.ManagedSave {
		if err := m.hv.RemoveManagedSave(ctx, rec.Spec.Name); err != nil && !isNoDomain(err) {
			// libvirtd refused or could not be reached: nothing was removed, so this
			// call's drop is taken back and "nothing was changed" holds (one whose
			// outcome is unknown, or that the reconciler finishes, stays pending).
			if began {
				m.abandon(rec, err)
			}
			return err
		}
	}
	if rec.MemoryFile != "" {
		if err := os.Remove(rec.MemoryFile); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	rec.Hot, rec.ManagedSave, rec.MemoryFile, rec.MemoryDigest = false, false, "", ""
	return m.transition(ctx, rec, stateShutdown, "")
}

// begin journals, durably, that the shutdown op is under way on rec; the transition
// that records its outcome clears it.
func (m *Manager) begin(rec *record, op string) error {
	prev := rec.Pending
	rec.Pending = op
	if err := m.journal.put(rec); err != nil {
		rec.Pending = prev
		if prev != op {
			m.takeBack(rec, func(cur *record) bool { return cur.Pending == op })
		}
		return m.adviseOnFullDisk(fmt.Errorf("journal: %w; nothing was done", err), "")
	}
	return nil
}

// takeBack journals rec, as it was before a put the disk refused, if the refused
// record is read back all the same (refused says so of the record read): renamed into
// place before the directory's sync failed, it would have the reconciler carry out
// what the caller answers was not done. In memory at least, until the disk takes it.
func (m *Manager) takeBack(rec *record, refused func(*record) bool) {
	if cur, err := m.journal.get(rec.Key); err != nil || !refused(cur) {
		return
	}
	if _, err := m.journal.putOrKeep(rec); err != nil && !m.journal.kept(rec.Key) {
		m.log.Error("take back a journal record the disk refused", "workspace", rec.Key, "err", err)
	}
}

// unfinishedDiscard refuses op on a workspace whose Trash, or whose discarding of a
// memory image, failed part-way: until it is finished (by the reconciler within
// seconds, or by repeating it), its disk and saved RAM may not belong together, and a
// restore or an upload would carry stale RAM. Only the Shutdown that finishes it
// proceeds: Trash for a Trash; Normal or Trash for a discard. op is an operation name
// or, for Shutdown, its mode.
func unfinishedDiscard(rec *record, op string) error {
	var what, repeat string
	switch rec.Pending {
	case pendingSerialize, pendingShutdown, pendingRestore:
		// At rest, such a mark is a call libvirtd fell silent under: it may still
		// carry it out (finish a save, take the guest down, restore it). Another
		// operation now would overwrite the mark the reconciler reads the outcome by,
		// a repeated Serialize would remove the memory image libvirtd finished, and a
		// shutdown or an Undeploy would discard or hand back the image of a guest
		// about to run on from it.
		switch rec.Pending {
		case pendingSerialize:
			what = "a Serialize"
		case pendingShutdown:
			what = "a Normal shutdown"
		default:
			what = "a restore from its memory image"
		}
		return errdefs.WithAdvice(&errdefs.StateError{Current: rec.State, Requested: requestedState(op),
			Err: fmt.Errorf("%w: the outcome of %s of workspace %s is not known yet (libvirtd did not answer while it was under way); %s is refused until it is",
				errdefs.ErrState, what, rec.Key, op)},
			"the manager records the outcome by itself once libvirtd answers again (vws status shows it); repeat the operation then if it is still needed")
	case pendingTrash:
		if op == ModeTrash {
			return nil
		}
		what, repeat = "a Trash", "--mode trash"
	case pendingDrop:
		if op == ModeTrash || op == ModeNormal {
			return nil
		}
		what, repeat = "the discarding of its saved RAM", "--mode normal"
	default:
		return nil
	}
	return errdefs.WithAdvice(&errdefs.StateError{Current: rec.State, Requested: requestedState(op),
		Err: fmt.Errorf("%w: %s of workspace %s failed part-way and is not finished; %s is refused until it is", errdefs.ErrState, what, rec.Key, op)},
		"the manager finishes it by itself within seconds; or finish it now: vws shutdown EPR "+repeat)
}

// abandon clears the pending op of one that failed before changing anything.
// A call whose outcome is unknown (libvirtd fell silent under it, and may still
// carry it out) keeps the mark: the reconciler then finishes a Trash, and reads a
// domain it finds off as this Normal shutdown's doing (shut down, not corrupted); a
// guest still running is recorded running, for the caller to repeat the shutdown,
// as the fault advises.
func (m *Manager) abandon(rec *record, cause error) {
	if errors.Is(cause, vmm.ErrOutcomeUnknown) {
		return
	}
	rec.Pending = ""
	if err := m.journal.put(rec); err != nil {
		m.log.Error("clear the record of a failed shutdown", "workspace", rec.Key, "err", err)
	}
}

// op runs f, the operation name, on a deployed workspace under its lock.
func (m *Manager) op(ctx context.Context, epr *wsa.EPR, name string, f func(*record) error) (Result, error) {
	var res Result
	err := m.withDeployed(ctx, epr, policy.Manage, name, func(rec *record) error {
		if err := f(rec); err != nil {
			return err
		}
		res = m.result(rec)
		return nil
	})
	return res, err
}

// withDeployed runs f, the operation name, on the journal record of a workspace
// deployed here, under the workspace's lock, once the caller in ctx may do op to it.
func (m *Manager) withDeployed(ctx context.Context, epr *wsa.EPR, op policy.Operation, name string, f func(*record) error) error {
	key, err := keyOf(epr)
	if err != nil {
		return err
	}
	unlock, err := m.lockWorkspace(ctx, key, name)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := m.deployed(ctx, key, op, name)
	if err != nil {
		return err
	}
	return f(rec)
}

// lockWorkspace takes the workspace's lock for the operation name, waiting for the
// one under way while ctx lasts. A request whose caller hung up, or whose time bound
// passed, while it waited is not begun: it would otherwise run later for nobody (an
// Undeploy's caller gone, the reconciler would still carry it out).
func (m *Manager) lockWorkspace(ctx context.Context, key, name string) (func(), error) {
	unlock, err := m.locks.lockCtx(ctx, key, name)
	if err == nil && ctx.Err() != nil {
		// Got the lock as the wait ended: still not begun.
		unlock()
		err = fmt.Errorf("the request ended: %w", ctx.Err())
	}
	if err != nil {
		return nil, errdefs.WithAdvice(&errdefs.StateError{Current: busyPhase(err), Requested: requestedState(name),
			Err: fmt.Errorf("%w: %s of workspace %s was not begun: %w", errdefs.ErrState, name, key, err)},
			"retry once the operation under way has finished (vws status shows the workspace's state)")
	}
	return unlock, nil
}

// busyPhase is the deployment phase a workspace is in while the operation holding its
// lock (named in err, a wait for the lock given up) runs: staging under a Deploy,
// unstaging under an Undeploy, deployed under any other. Only the holder's name,
// which the refusal says anyway, is used: the caller is not yet authorized to learn
// the workspace's state. "" (unknown) for an unnamed holder (the reconciler, in any
// phase) and for a lock that came free as the request ended.
func busyPhase(err error) string {
	var busy *busyError
	if !errors.As(err, &busy) || busy.holder == "" {
		return ""
	}
	switch busy.holder {
	case "Deploy":
		return phaseStaging
	case "Undeploy":
		return phaseUnstaging
	}
	return phaseDeployed
}

// authorize decides op (the operation action, as the audit and a denial name it) on
// a deployed workspace for the caller in ctx, against the owner its signed manifest
// named.
func (m *Manager) authorize(ctx context.Context, op policy.Operation, action string, rec *record) error {
	if m.cfg.Authorize == nil {
		return nil
	}
	return m.cfg.Authorize(ctx, op, policy.Resource{Service: vwsns.ManagerService, Action: action, Key: rec.Key, Name: rec.Name, Owner: rec.Owner})
}

func (m *Manager) result(rec *record) Result {
	return Result{State: rec.State, Deployment: "deployed", Host: m.cfg.Host}
}

// readyToBoot checks what booting rec needs: its NICs on bridges this host publishes,
// its cached images intact (bootable) and room for its RAM (admitBoot, held until
// release).
func (m *Manager) readyToBoot(ctx context.Context, rec *record) (release func(), err error) {
	if err := m.onPublishedBridges(rec.Spec); err != nil {
		return nil, err
	}
	if err := m.bootable(ctx, rec); err != nil {
		return nil, err
	}
	return m.admitBoot(ctx, rec)
}

func (m *Manager) start(ctx context.Context, rec *record) error {
	release, err := m.readyToBoot(ctx, rec)
	if err != nil {
		return err
	}
	defer release()
	err = m.hv.Start(ctx, rec.Spec.Name)
	if errors.Is(err, vmm.ErrNoDomain) {
		// Undefined outside vws while shut down (virsh undefine): only the definition
		// is lost, and the record has it, as the reconciler's redefine does.
		if err = m.hv.Define(ctx, rec.Spec); err == nil {
			err = m.hv.Start(ctx, rec.Spec.Name)
		}
	}
	if err != nil {
		return err
	}
	// Durable: after a crash, a domain found off whose record says running vanished
	// with its RAM (corrupted), where one that says shutdown is simply off.
	return m.transition(ctx, rec, stateRunning, "")
}

// startPaused boots a workspace with its vCPUs stopped (Deploy with initial state
// paused): its job does not begin until Unpause.
func (m *Manager) startPaused(ctx context.Context, rec *record) error {
	release, err := m.readyToBoot(ctx, rec)
	if err != nil {
		return err
	}
	defer release()
	if err := m.hv.StartPaused(ctx, rec.Spec.Name); err != nil {
		return err
	}
	return m.transition(ctx, rec, statePaused, "")
}

func (m *Manager) pause(ctx context.Context, rec *record) error {
	if err := m.hv.Pause(ctx, rec.Spec.Name); err != nil {
		return m.endedBefore(ctx, rec, statePaused, err)
	}
	return m.transitionFast(rec, statePaused)
}

// endedBefore is the answer to a Pause or Unpause (to requested) that libvirt
// refused: a guest that ended before it (powered off, crashed, its domain gone),
// unseen by the reconciler yet, is recorded as the reconciler records it and the
// operation refused in that state; otherwise cause.
func (m *Manager) endedBefore(ctx context.Context, rec *record, requested string, cause error) error {
	if errors.Is(cause, vmm.ErrOutcomeUnknown) {
		return cause
	}
	c, ok := m.observedEnd(ctx, rec)
	if !ok {
		return cause
	}
	if err := m.transition(ctx, rec, c.State, c.Detail); err != nil {
		return err
	}
	return errdefs.WithAdvice(&errdefs.StateError{Current: c.State, Requested: requested}, c.Detail)
}

// restore resumes a serialized workspace from its memory image.
func (m *Manager) restore(ctx context.Context, rec *record, paused bool) error {
	release, err := m.readyToBoot(ctx, rec)
	if err != nil {
		return err
	}
	defer release()
	state := stateRunning
	if paused {
		state = statePaused
	}
	if rec.ManagedSave {
		err = m.hv.RestoreManagedSave(ctx, rec.Spec.Name, paused)
		if errors.Is(err, vmm.ErrNoManagedSave) {
			// The hypervisor's refusal, with the states only this record knows.
			return &errdefs.StateError{Current: rec.State, Requested: state, Err: err}
		}
	} else {
		err = m.hv.Restore(ctx, rec.MemoryFile, rec.Spec, paused)
	}
	if errors.Is(err, vmm.ErrOutcomeUnknown) {
		// libvirtd may still restore the guest: marked (in memory at least, should
		// the disk refuse it) so that the image stays until the reconciler knows.
		rec.Pending = pendingRestore
		if _, jerr := m.journal.putOrKeep(rec); jerr != nil && !m.journal.kept(rec.Key) {
			m.log.Error("journal a restore whose outcome is unknown", "workspace", rec.Key, "err", jerr)
		}
		return err
	}
	if err != nil {
		return err
	}
	spent := rec.MemoryFile
	rec.Hot, rec.ManagedSave, rec.MemoryFile, rec.MemoryDigest = false, false, "", ""
	// Journaled first, removed after: the image is spent once the guest runs on (its
	// disk has moved past it), but a record that still says hot must never lose it.
	// A crash in between leaves a stray memory.save, which recover removes.
	if err := m.transition(ctx, rec, state, "restored from its memory image"); err != nil {
		return err
	}
	// Not while the disk still holds the record that needs it: the restart sweep
	// removes it once the journal no longer names it.
	if spent != "" && !m.journal.kept(rec.Key) {
		os.Remove(spent)
	}
	return nil
}

// observedEnd is what the reconciler would record of rec's guest if it has ended (shut
// off or crashed), and whether it has: the plan made from libvirt's word, as after a
// restart. With the hypervisor unreadable nothing is concluded.
func (m *Manager) observedEnd(ctx context.Context, rec *record) (change, bool) {
	doms, err := m.hv.List(ctx, domainName(rec.Key))
	if err != nil {
		m.log.Debug("read the domain's state", "workspace", rec.Key, "err", err)
		return change{}, false
	}
	found := false
	for _, d := range doms {
		if d.Name != domainName(rec.Key) {
			continue
		}
		found = true
		if d.State != vmm.StateShutOff && d.State != vmm.StateCrashed {
			return change{}, false // still running or paused (or in transition): not ended
		}
	}
	if !found && rec.Pending == pendingShutdown {
		return change{}, false // a transient domain vanishes when this shutdown ends it
	}
	for _, c := range plan([]*record{rec.clone()}, doms) {
		if (c.Kind == observe || c.Kind == finishShutdown) && c.State != stateRunning && c.State != statePaused {
			if c.Kind == observe && c.Detail == detailPoweredOff {
				// As the reconciler reads it (apply): a shut-off reason libvirt forgot
				// is read from the host's boot and libvirt's log of the run, which may
				// say the guest lost its RAM rather than powered off.
				c.State, c.Detail = m.poweredOffOutcome(rec.Spec.Name)
			}
			return c, true
		}
	}
	return change{}, false
}

// transition records a new state in the journal, durably, as the outcome of any
// pending shutdown, and has the Repository told. The hypervisor has acted already:
// when the disk refuses the record (full), what happened still stands — it is not
// answered as a failure (a retry would meet a guest already running, a shutdown a
// state that is not the guest's), the record is kept in memory and reported, and
// the reconciler writes it once it can. A crash before then leaves the earlier
// record, which the reconciler squares with what libvirt runs, as after any crash.
func (m *Manager) transition(ctx context.Context, rec *record, state, detail string) error {
	rec.State, rec.Detail, rec.Pending = state, detail, ""
	if _, err := m.journal.putOrKeep(rec); err != nil {
		if !m.journal.kept(rec.Key) {
			return fmt.Errorf("journal: %w", err)
		}
		m.log.Error("journal a workspace's new state: kept in memory until the disk takes it", "workspace", rec.Key, "state", state,
			"dir", m.cfg.Dir, "err", err)
	}
	m.report(rec)
	// A guest that entered or left RAM changes the memory this host offers
	// (memory.go), whoever changed it: a restore by Unpause, the reconciler seeing a
	// guest power off. (Pause and Unpause of a guest in RAM go by transitionFast.)
	m.offerChanged()
	return nil
}

// transitionFast records running ⇄ paused in the journal for this process only. The
// durable record says running either way (so a domain found off after a crash is
// still known to have lost its RAM), and a restarted manager takes paused or running
// from libvirt. No disk write keeps Pause and Unpause close to the bare libvirt call.
func (m *Manager) transitionFast(rec *record, state string) error {
	rec.State, rec.Detail = state, ""
	if err := m.journal.putVolatile(rec); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	m.report(rec)
	return nil
}
