package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/qcow2"
	"github.com/vws-grid/vws/internal/wsrf"
)

// sweep reconciles the files on disk with the workspace records after a crash:
//   - a workspace directory without a record (a create or clone that did not commit,
//     or a destroy that committed before removing files) is removed;
//   - files in a workspace directory other than its active overlay and memory image are
//     removed (interrupted uploads, check-ins that did not commit, superseded files), but
//     for the complete uploads (pending-…) of a workspace still checked out;
//   - a workspace whose memory image is missing loses it and is marked corrupted;
//   - a workspace whose active overlay is also a layer (a clone interrupted between
//     committing the clone and committing the source) is rolled forward onto a fresh
//     overlay above that layer, or, if no clone uses the layer, simply unlinked from it;
//   - layers no workspace uses are removed.
func (r *Repository) sweep(ctx context.Context) error {
	known := map[string]bool{}
	var keys []string
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		known[s.Key] = true
		keys = append(keys, s.Key)
		return true
	})
	dirs, err := os.ReadDir(filepath.Join(r.dir, "workspaces"))
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !known[d.Name()] {
			r.log.Warn("sweep: removing files of a workspace that has no record", "dir", d.Name())
			if err := os.RemoveAll(filepath.Join(r.dir, "workspaces", d.Name())); err != nil {
				return err
			}
		}
	}
	layerInodes, err := r.layerInodes()
	if err != nil {
		return err
	}
	used := r.usedLayers()
	// The home's expiry scheduler is already running: workspaces whose termination time
	// passed while vws was down are being destroyed meanwhile. One gone since the listing
	// above needs no sweeping; and the read lock keeps the layer collector those destroys
	// start away from a layer a roll-forward is adopting.
	r.layersMu.RLock()
	for _, key := range keys {
		if err := r.sweepWorkspace(ctx, key, layerInodes, used); err != nil && err != errNoChange && !errors.Is(err, errdefs.ErrResourceUnknown) {
			r.layersMu.RUnlock()
			return fmt.Errorf("workspace %s: %w", key, err)
		}
	}
	r.layersMu.RUnlock()
	r.collectLayers()
	return nil
}

func (r *Repository) sweepWorkspace(ctx context.Context, key string, layerInodes map[uint64]string, used map[string]bool) error {
	var superseded string
	err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		before := s.Private
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		dir := r.workspaceDir(key)
		entries, err := os.ReadDir(dir)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, e := range entries {
			switch name := e.Name(); {
			case name == chain.Overlay, chain.Memory != "" && name == chain.Memory:
			case chain.Lock != "" && pendingRE.MatchString(name):
				// A complete upload (synced, then renamed) of the current check-out:
				// the manager may still check in with it.
			default:
				r.log.Warn("sweep: removing a stray workspace file", "key", key, "file", name)
				os.Remove(filepath.Join(dir, name))
			}
		}
		if chain.Memory != "" {
			if _, err := os.Stat(filepath.Join(dir, chain.Memory)); err != nil {
				r.log.Error("sweep: workspace memory image missing; dropping it and marking the workspace corrupted", "key", key, "file", chain.Memory)
				chain.Memory, chain.MemoryDigest, chain.MemorySize = "", "", 0
				setImageDigest(s, "memory", "")
				setText(s, PropState, "corrupted")
				if err := r.seal(ctx, s, chain); err != nil {
					return err
				}
				s.Private = chain.encode()
			}
		}
		noChange := errNoChange
		if string(s.Private) != string(before) {
			noChange = nil // the memory repair above must be written
		}
		active := filepath.Join(dir, chain.Overlay)
		var st syscall.Stat_t
		if err := syscall.Stat(active, &st); err != nil {
			r.log.Error("sweep: workspace overlay missing; marking corrupted", "key", key, "file", active)
			setText(s, PropState, "corrupted")
			return nil
		}
		if st.Nlink < 2 {
			return noChange
		}
		layerID, isLayer := layerInodes[st.Ino]
		if !isLayer {
			return noChange
		}
		if !used[layerID] {
			// The clone never committed: the layer is just a second name.
			r.log.Warn("sweep: unlinking an interrupted clone's layer", "key", key, "layer", layerID)
			os.Remove(r.layerPath(layerID))
			return noChange
		}
		// The clone committed, the source did not: move the source onto the layer.
		digest, size, err := fileDigest(r.layerPath(layerID))
		if err != nil {
			return err
		}
		chain.Layers = append(chain.Layers, layer{ID: layerID, Digest: digest, Size: size})
		chain.Overlay = nextOverlayName(chain.Overlay)
		chain.OverlayDigest, chain.OverlaySize = "", 0
		if err := qcow2.CreateOverlay(filepath.Join(dir, chain.Overlay), r.layerPath(layerID), "qcow2", chain.VirtualSize); err != nil {
			return err
		}
		if err := syncDir(dir); err != nil {
			return err
		}
		if err := r.seal(ctx, s, chain); err != nil {
			return err
		}
		s.Private = chain.encode()
		r.log.Warn("sweep: finished an interrupted clone", "key", key, "layer", layerID)
		superseded = active
		return nil
	})
	if err == nil && superseded != "" {
		os.Remove(superseded) // its inode lives on as the layer
	}
	return err
}

// errNoChange ends a Modify without writing; sweep ignores it.
var errNoChange = fmt.Errorf("no change")

func (r *Repository) layerInodes() (map[uint64]string, error) {
	out := map[uint64]string{}
	entries, err := os.ReadDir(filepath.Join(r.dir, "layers"))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(r.dir, "layers", e.Name()), &st); err == nil {
			out[st.Ino] = strings.TrimSuffix(e.Name(), ".qcow2")
		}
	}
	return out, nil
}
