package manager

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/tmpfstest"
	"github.com/vws-grid/vws/vmm"
)

// fillJournal moves m's journal onto a small tmpfs and fills it, so that every
// journal write fails with ENOSPC; the func it returns frees the space.
func fillJournal(t *testing.T, m *Manager) (free func()) {
	t.Helper()
	dir := m.journal.dir
	tmpfstest.MountOver(t, dir, "64k")
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0}, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	return func() { os.Remove(filler) }
}

// onDisk reads key's record as a restarted manager would.
func onDisk(t *testing.T, m *Manager, key string) *record {
	t.Helper()
	r, err := (&journal{dir: m.journal.dir}).get(key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStartOnAFullDiskStands: a Start whose guest libvirt booted is not answered as a
// failure because the disk refused the journal record: the guest runs, the manager
// says so (a retry would meet a running guest, a shutdown a state that is not the
// guest's), and the record is written once the disk has room.
func TestStartOnAFullDiskStands(t *testing.T) {
	const k = "ws-full-start"
	m, hv, rec := crashManager(t, k, stateShutdown, false)
	free := fillJournal(t, m)
	res, err := m.Start(context.Background(), workspaceEPR(rec))
	if err != nil || res.State != stateRunning {
		t.Fatalf("Start on a full disk: %+v, %v", res, err)
	}
	if hv.dom.State != vmm.StateRunning {
		t.Fatalf("the domain is %v", hv.dom.State)
	}
	if r, _ := m.journal.get(k); r.State != stateRunning || !m.journal.kept(k) {
		t.Fatalf("the manager's record says %s (kept in memory: %v)", r.State, m.journal.kept(k))
	}
	if got := onDisk(t, m, k).State; got != stateShutdown {
		t.Fatalf("the disk took the record after all (%s): the test filled nothing", got)
	}
	// A Shutdown now is refused before it acts (its intent cannot be journaled),
	// saying why and what to do, and the guest runs on.
	_, err = m.Shutdown(context.Background(), workspaceEPR(rec), ModeNormal, time.Second)
	if err == nil || !isNoSpace(err) || !strings.Contains(errdefs.Advice(err), "free space in") {
		t.Fatalf("Shutdown on a full disk: %v (advice %q)", err, errdefs.Advice(err))
	}
	if hv.dom.State != vmm.StateRunning {
		t.Fatalf("a refused shutdown left the domain %v", hv.dom.State)
	}
	m.writeUnsaved()
	if !m.journal.kept(k) {
		t.Fatal("the record counts as written while the disk is still full")
	}
	free()
	m.writeUnsaved()
	if got := onDisk(t, m, k).State; got != stateRunning || m.journal.kept(k) {
		t.Fatalf("after space was freed the disk says %s (kept in memory: %v)", got, m.journal.kept(k))
	}
}

// TestUndoOfADeployOnAFullDisk: a deploy that failed after recording the workspace
// deployed is undone although the disk refuses the undo's mark: no domain, files or
// record stay behind to be taken for a deployed workspace.
func TestUndoOfADeployOnAFullDisk(t *testing.T) {
	const k = "ws-full-undo"
	m, hv, rec := crashManager(t, k, stateShutdown, false)
	fillJournal(t, m)
	if err := m.undoDeploy(context.Background(), rec); err != nil {
		t.Fatalf("undo on a full disk: %v", err)
	}
	if hv.dom != nil {
		t.Fatalf("the domain stayed: %+v", hv.dom)
	}
	if _, err := os.Stat(m.journal.path(k)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the journal record stayed: %v", err)
	}
	if _, err := os.Stat(m.workspaceDir(k)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the workspace directory stayed: %v", err)
	}
}

// TestFinishedRestoreOnAFullDiskKeepsTheImageTheDiskNames: a restore that finished
// unrecorded (the manager restarted, or libvirtd answered late) is recorded by the
// reconciler; while the disk refuses that record, the record on disk still says
// serialized, and the memory image it names stays. Removed, a host restart (the guest
// off) would bring back a serialized workspace with no memory image: its Start fails,
// and its Undeploy is stuck unstaging, uploading a file that is gone.
func TestFinishedRestoreOnAFullDiskKeepsTheImageTheDiskNames(t *testing.T) {
	const k = "ws-full-finish-restore"
	m, hv, _ := crashManager(t, k, statePaused, true)
	hv.set(vmm.StateRunning, false, false) // libvirt restored it; the record says serialized
	free := fillJournal(t, m)
	m.apply(context.Background(), change{Kind: finishRestore, Key: k})
	if r, _ := m.journal.get(k); r.Hot || r.State != stateRunning {
		t.Fatalf("the finished restore is not recorded: %+v", r)
	}
	if r := onDisk(t, m, k); r.Hot && r.MemoryFile != "" {
		if _, err := os.Stat(r.MemoryFile); err != nil {
			t.Fatalf("the disk's record says serialized, its RAM in %s, but the image was removed: %v", r.MemoryFile, err)
		}
	} else {
		t.Fatalf("the disk took the record after all (%+v): the test filled nothing", r)
	}
	free()
	m.writeUnsaved()
	if r := onDisk(t, m, k); r.Hot || m.journal.kept(k) {
		t.Fatalf("after space was freed the disk says %+v (kept in memory: %v)", r, m.journal.kept(k))
	}
}

// TestRefusedShutdownKeepsAPause: a Pause is recorded for this process only (the
// disk keeps running); a Shutdown the full disk refuses before it acts changed
// nothing, so the manager still says paused — not running — and Unpause resumes
// the guest, rather than being refused as if it ran.
func TestRefusedShutdownKeepsAPause(t *testing.T) {
	const k = "ws-full-pause"
	ctx := context.Background()
	m, hv, rec := crashManager(t, k, stateRunning, false)
	epr := workspaceEPR(rec)
	if _, err := m.Pause(ctx, epr); err != nil {
		t.Fatal(err)
	}
	free := fillJournal(t, m)
	defer free()
	if _, err := m.Shutdown(ctx, epr, ModeNormal, time.Second); err == nil || !isNoSpace(err) {
		t.Fatalf("Shutdown on a full disk: %v", err)
	}
	if hv.dom.State != vmm.StatePaused {
		t.Fatalf("the refused Shutdown left the domain %v", hv.dom.State)
	}
	if r, _ := m.journal.get(k); r.State != statePaused {
		t.Errorf("after a refused Shutdown the manager says the paused guest is %s", r.State)
	}
	if _, err := m.Unpause(ctx, epr); err != nil {
		t.Errorf("Unpause of the paused guest: %v", err)
	}
}

// TestIncompleteSaveOutlivesItsUnwrittenRecord: a Serialize whose save libvirtd cut
// off leaves an incomplete image, recorded corrupted for that reason. Until the
// disk holds that record the image stays: a manager killed before then comes back
// to the serialize's mark and must find it, or it records the workspace corrupted
// for a save "outside vws" that never was.
func TestIncompleteSaveOutlivesItsUnwrittenRecord(t *testing.T) {
	const k = "ws-full-incomplete-save"
	ctx := context.Background()
	m, hv, rec := crashManager(t, k, stateRunning, false)
	rec.Pending = pendingSerialize
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	mem := m.workspaceDir(k) + "/memory.save"
	if err := os.WriteFile(mem, []byte("LibvirtQemudPart and half the RAM"), 0o600); err != nil {
		t.Fatal(err)
	}
	hv.set(vmm.StateShutOff, false, false)
	free := fillJournal(t, m)
	m.reconcile(ctx)
	if r, _ := m.journal.get(k); r.State != stateCorrupted {
		t.Fatalf("the incomplete save is not recorded: %+v", r)
	}
	if r := onDisk(t, m, k); r.Pending != pendingSerialize {
		t.Fatalf("the disk took the record after all (%+v): the test filled nothing", r)
	}
	// Killed now: restarted on the disk's record, once there is room.
	free()
	m.journal = &journal{dir: m.journal.dir}
	m.reconcile(ctx)
	if r := onDisk(t, m, k); r.State != stateCorrupted || !strings.Contains(r.Detail, "incomplete") {
		t.Errorf("after the restart the record is %s: %q; want corrupted by the incomplete save", r.State, r.Detail)
	}
	if _, err := os.Stat(mem); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the incomplete image is kept once the disk holds its record (stat: %v)", err)
	}
}

// TestSpentImageGoesOnceTheDiskTakesTheRecord: a Start that restored a serialized
// workspace on a full disk keeps the memory image while only memory holds the record
// that says it is spent (the disk's record still names it). Once the disk takes that
// record, nothing names the image any more: it goes then, not at some later restart
// of the manager, on the disk that was just full.
func TestSpentImageGoesOnceTheDiskTakesTheRecord(t *testing.T) {
	const k = "ws-full-spent-image"
	ctx := context.Background()
	m, hv, rec := crashManager(t, k, statePaused, true)
	free := fillJournal(t, m)
	if res, err := m.Start(ctx, workspaceEPR(rec)); err != nil || res.State != stateRunning {
		t.Fatalf("Start on a full disk: %+v, %v", res, err)
	}
	if r := onDisk(t, m, k); !r.Hot {
		t.Fatalf("the disk took the record after all (%+v): the test filled nothing", r)
	}
	if _, err := os.Stat(rec.MemoryFile); err != nil {
		t.Fatalf("the image the disk's record names was removed: %v", err)
	}
	free()
	m.reconcile(ctx)
	if r := onDisk(t, m, k); r.Hot || r.State != stateRunning || m.journal.kept(k) || hv.dom.State != vmm.StateRunning {
		t.Fatalf("after space was freed the disk says %+v (kept in memory: %v)", r, m.journal.kept(k))
	}
	if _, err := os.Stat(rec.MemoryFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spent memory image stays once no record names it (stat: %v)", err)
	}
}
