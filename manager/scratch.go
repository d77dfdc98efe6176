package manager

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/vmm"
)

// A scratch disk (hostfit.IsScratch) is created empty in the deployment's directory
// at each deploy and leaves with that directory: it is never uploaded, so each
// deployment gets a fresh one, like a cloud's ephemeral disk. Its contents do not
// survive an undeploy, and so no RAM image may leave this host for a workspace that
// has one: the guest would resume on a disk that lost what it had written.

// scratchPath is where the scratch disk at target lives in the directory dir.
func scratchPath(dir, target string) string {
	return filepath.Join(dir, "scratch-"+target+".qcow2")
}

// scratchDisks lists spec's scratch disks.
func scratchDisks(spec vmm.Spec) []vmm.Disk {
	var out []vmm.Disk
	for _, d := range spec.Disks {
		if d.Scratch {
			out = append(out, d)
		}
	}
	return out
}

// scratchBytes is the length of the empty scratch disks of spec as created: their
// qcow2 metadata. What a guest writes to them later is not counted, as the growth of
// its overlay is not: --min-free is kept for both.
func scratchBytes(spec vmm.Spec) int64 {
	var n int64
	for _, d := range scratchDisks(spec) {
		if b, err := qcow2.EmptySize(d.SizeMiB << 20); err == nil {
			n += b
		}
	}
	return n
}

// createScratch creates spec's scratch disks empty, each made aside and renamed into
// place (a kill leaves the old disk or the new one, never half a header), then syncs
// the directory. It is how a deploy makes them, and how Trash empties them.
func createScratch(spec vmm.Spec) error {
	disks := scratchDisks(spec)
	for _, d := range disks {
		fresh := d.Path + ".new"
		if err := os.Remove(fresh); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("scratch disk %s: %w", d.Target, err)
		}
		if err := qcow2.CreateEmpty(fresh, d.SizeMiB<<20); err != nil {
			return fmt.Errorf("create the scratch disk %s: %w", d.Target, err)
		}
		if err := os.Rename(fresh, d.Path); err != nil {
			os.Remove(fresh)
			return fmt.Errorf("create the scratch disk %s: %w", d.Target, err)
		}
	}
	if len(disks) == 0 {
		return nil
	}
	return fsutil.SyncDir(filepath.Dir(disks[0].Path))
}

// refuseRAMWithScratch refuses to save rec's RAM to a memory image (op: Serialize, or
// the undeploy of RAM libvirt saved) when its workspace has a scratch disk, before
// anything changes.
func refuseRAMWithScratch(rec *record, op, requested string) error {
	disks := scratchDisks(rec.Spec)
	if len(disks) == 0 {
		return nil
	}
	return errdefs.WithAdvice(&errdefs.StateError{Current: rec.State, Requested: requested,
		Err: fmt.Errorf("%w: workspace %s has an empty scratch disk (%s), whose contents are not kept: each deployment gets a new, empty one, so its RAM cannot be kept either; %s is refused, and nothing was changed",
			errdefs.ErrState, rec.Key, disks[0].Target, op)},
		"shut the workspace down normally (vws shutdown --mode normal) and deploy it afresh where it is to run; or leave the scratch disk out of the workspace's description (vws create with one that has none) to serialize it or move it with vws move")
}
