package manager

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/vws-grid/vws/vmm"
)

// TestTrashRefusedByTheDirectorySyncIsNotCarriedOut: a Trash whose mark reached the
// journal (renamed into place) but whose directory's sync failed is answered "nothing
// was done"; the reconciler must not then read that mark back and carry the Trash
// out, forcing the guest off and discarding the deployment's changes.
func TestTrashRefusedByTheDirectorySyncIsNotCarriedOut(t *testing.T) {
	const k = "ws-begin-sync"
	ctx := context.Background()
	m, hv, rec := crashManager(t, k, stateRunning, false)
	restore := failSyncAfterRename(t)
	if _, err := m.Shutdown(ctx, workspaceEPR(rec), ModeTrash, 0); err == nil {
		t.Fatal("Trash with the journal's directory sync failing succeeded")
	}
	restore()
	if r, _ := m.journal.get(k); r.Pending != "" {
		t.Errorf("Trash answered as not done, yet the manager's record says pending %q", r.Pending)
	}
	m.reconcile(ctx)
	if hv.dom.State != vmm.StateRunning {
		t.Errorf("Trash answered as not done, yet the reconciler left the domain %v", hv.dom.State)
	}
	if r := onDisk(t, m, k); r.Pending != "" || r.State != stateRunning {
		t.Errorf("Trash answered as not done, yet the journal says %s, pending %q", r.State, r.Pending)
	}
}

// TestUndeployRefusedByTheDirectorySyncStaysDeployed: an Undeploy whose unstaging
// record reached the journal but whose directory's sync failed is answered "the
// workspace stays deployed here"; the reconciler must not then read that record back
// and hand the workspace back after all.
func TestUndeployRefusedByTheDirectorySyncStaysDeployed(t *testing.T) {
	const k = "ws-undeploy-sync"
	ctx := context.Background()
	m, hv, rec := crashManager(t, k, stateShutdown, false)
	failSyncAfterRename(t)
	if _, err := m.Undeploy(ctx, workspaceEPR(rec)); err == nil {
		t.Fatal("Undeploy with the journal's directory sync failing succeeded")
	}
	recs, _ := m.journal.all()
	for _, c := range plan(recs, []vmm.Domain{*hv.dom}) {
		if c.Kind == finishUnstage {
			t.Errorf("Undeploy answered \"stays deployed\", yet the reconciler plans to finish the hand-back: %+v", c)
		}
	}
}

// failSyncAfterRename has every journal write fail as a directory's fsync failing
// (EIO) does: the record renamed into place, the error returned. The func it returns
// (also run at cleanup) makes the writes whole again.
func failSyncAfterRename(t *testing.T) (restore func()) {
	write := writeFileAtomic
	restore = func() { writeFileAtomic = write }
	t.Cleanup(restore)
	writeFileAtomic = func(path string, data []byte) error {
		if err := write(path, data); err != nil {
			return err
		}
		return &os.PathError{Op: "sync", Path: filepath.Dir(path), Err: syscall.EIO}
	}
	return restore
}
