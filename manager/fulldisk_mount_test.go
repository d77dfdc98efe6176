package manager

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

// TestAFullDiskIsNamedWhereItIs: the workspaces' directory (or the cache) may be a
// file system of its own, as ensureRoom allows. A write that filled it up must send
// the site administrator there, not to the manager's data directory, which has room.
func TestAFullDiskIsNamedWhereItIs(t *testing.T) {
	m, _, _ := spaceManager(t)
	m.freeBytes = func(dir string) (int64, error) {
		if dir == m.workspacesRoot() {
			return 0, nil // its own disk, full
		}
		return 50 << 30, nil
	}
	run := filepath.Join(m.workspacesRoot(), "k", "run.qcow2")
	full := fmt.Errorf("commit %s into its backing overlay: %w", run, &os.PathError{Op: "write", Path: run, Err: syscall.ENOSPC})
	got := m.adviseOnFullDisk(full, "")
	if a := errdefs.Advice(got); !strings.Contains(a, "free space in "+m.workspacesRoot()) {
		t.Errorf("the workspaces' file system is full; the advice sends the administrator elsewhere: %q", a)
	}
	if !strings.Contains(got.Error(), m.workspacesRoot()+" has 0 B free") {
		t.Errorf("the error does not say which file system is full: %v", got)
	}
}
