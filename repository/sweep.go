package repository

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/beevik/etree"

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
//
// A repair that changes a record's images signs its manifest again, and only for a
// record the repository signed as it is before the repair (verifySeal: it matches its
// stored manifest, whose signature and signer check out): one edited outside vws is
// left as it is, with an error in the log, and CheckOut refuses it.
//
// The sweep is also the one place where a record without a signed manifest gets one:
// the upgrade from a store of before manifests were signed. Once every record has one,
// the sweep marks the store as fully sealed (the manifests_sealed row) and from then on
// a record without one is refused everywhere (unsealedError), not signed. The marker
// lives in the same store as the records: it is defence in depth against partial or
// careless edits of the store, not against someone who rewrites the database with full
// knowledge of it (who can delete the marker as well).
func (r *Repository) sweep(ctx context.Context) error {
	complete, err := r.sealsComplete(ctx)
	if err != nil {
		return err
	}
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
		if err := r.sweepWorkspace(ctx, key, layerInodes, used, complete); err != nil && err != errNoChange && !errors.Is(err, errdefs.ErrResourceUnknown) {
			r.layersMu.RUnlock()
			return fmt.Errorf("workspace %s: %w", key, err)
		}
	}
	r.layersMu.RUnlock()
	r.collectLayers()
	if !complete {
		return r.markSealed(ctx)
	}
	return nil
}

// markSealed marks the store as fully sealed (manifests_sealed) when every workspace
// record has a signed manifest; otherwise the next start tries again to sign the
// others (see sweep).
func (r *Repository) markSealed(ctx context.Context) error {
	var unsealed []string
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		if c, err := decodeChain(s.Private); err != nil || c.Seal == "" {
			unsealed = append(unsealed, s.Key)
		}
		return true
	})
	if len(unsealed) > 0 {
		r.log.Warn("sweep: workspace records from before manifests were signed remain unsigned (see the errors above); until they are signed or destroyed, the next start signs records without a signed manifest again",
			"keys", strings.Join(unsealed, " "))
		return nil
	}
	if _, err := r.db.ExecContext(ctx, `INSERT INTO manifests_sealed (id, since) VALUES (1, $1) ON CONFLICT DO NOTHING`, r.now().UnixMilli()); err != nil {
		return fmt.Errorf("mark the store as fully sealed: %w", err)
	}
	r.log.Info("sweep: every workspace record has a signed manifest; from now on a record without one is refused")
	return nil
}

func (r *Repository) sweepWorkspace(ctx context.Context, key string, layerInodes map[uint64]string, used map[string]bool, complete bool) error {
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
		active := filepath.Join(dir, chain.Overlay)
		// upgrade: a record from before manifests were signed, signed here as it is.
		upgrade := chain.Seal == "" && !complete
		if chain.Seal == "" && complete {
			r.log.Error("sweep: workspace record has no signed manifest, so it was changed outside vws; left as it is, and check-out refuses it",
				"key", key)
		}
		if upgrade {
			if err := r.sealUpgraded(ctx, s, chain); err != nil {
				r.log.Error("sweep: could not sign the manifest of a workspace record from before manifests were signed", "key", key, "err", err)
			} else {
				r.log.Info("sweep: signed the manifest of a workspace record from before manifests were signed", "key", key)
				upgrade = false // from here on a record like any other
			}
		}
		// resealable says whether a repair may sign the record again: decided once,
		// on the record as it was before any repair (a copy, as repairs change it).
		var verdict error
		decided := false
		orig := *chain
		orig.Layers = slices.Clone(chain.Layers)
		origProps := make([]*etree.Element, len(s.Props))
		for i, p := range s.Props {
			origProps[i] = p.Copy()
		}
		resealable := func() error {
			if !decided {
				decided = true
				if !upgrade { // an unsigned record of before the upgrade is signed as it is
					verdict = r.verifySeal(ctx, &wsrf.Snapshot{Key: key, Props: origProps}, &orig)
				}
			}
			return verdict
		}
		// reseal signs the repaired record; an upgraded record that still cannot be
		// signed is kept unsigned, as the upgrade above logged.
		reseal := func() error {
			if err := r.seal(ctx, s, chain); err != nil {
				if !upgrade {
					return err
				}
				chain.Seal = ""
			}
			s.Private = chain.encode()
			return nil
		}
		if chain.Memory != "" {
			if _, err := os.Stat(filepath.Join(dir, chain.Memory)); err != nil {
				if verr := resealable(); verr != nil {
					r.log.Error("sweep: workspace memory image missing, but the record does not match its signed manifest; left as it is, and check-out refuses it",
						"key", key, "file", chain.Memory, "mismatch", verr)
				} else {
					r.log.Error("sweep: workspace memory image missing; dropping it and marking the workspace corrupted", "key", key, "file", chain.Memory)
					chain.Memory, chain.MemoryDigest, chain.MemorySize = "", "", 0
					setImageDigest(s, "memory", "")
					setText(s, PropState, "corrupted")
					if err := reseal(); err != nil {
						return err
					}
				}
			}
		}
		noChange := errNoChange
		if string(s.Private) != string(before) {
			noChange = nil // the upgrade or the memory repair above must be written
		}
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
		// The clone committed, the source did not: move the source onto the layer. Its
		// record is still the one signed before the clone (the clone commits the
		// source's new record and manifest together), and the layer is its overlay's
		// inode: it must have the bytes the source's manifest names for the overlay,
		// or the roll-forward would sign other bytes.
		if verr := resealable(); verr != nil {
			r.log.Error("sweep: interrupted clone not finished: the source's record does not match its signed manifest; left as it is, and check-out refuses it",
				"key", key, "layer", layerID, "mismatch", verr)
			return noChange
		}
		digest, size, err := fileDigest(r.layerPath(layerID))
		if err != nil {
			return err
		}
		if orig.Seal != "" && digest != orig.OverlayDigest {
			r.log.Error("sweep: interrupted clone not finished: the source's overlay is not the one its signed manifest names; left as it is, and check-out refuses it",
				"key", key, "layer", layerID, "signed", orig.OverlayDigest, "file", digest)
			return noChange
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
		if err := reseal(); err != nil {
			return err
		}
		r.log.Warn("sweep: finished an interrupted clone", "key", key, "layer", layerID)
		superseded = active
		return nil
	})
	if err == nil && superseded != "" && r.durable(ctx, "sweep") {
		os.Remove(superseded) // its inode lives on as the layer
	}
	return err
}

// sealUpgraded signs, for the first time, the manifest of a record from before
// manifests were signed, as it is, with its overlay hashed again (as CheckOut did for
// such records before the sweep took this over).
func (r *Repository) sealUpgraded(ctx context.Context, s *wsrf.Snapshot, chain *diskChain) error {
	c := *chain
	var err error
	if c.OverlayDigest, c.OverlaySize, err = fileDigest(filepath.Join(r.workspaceDir(s.Key), c.Overlay)); err != nil {
		return fmt.Errorf("digest overlay: %w", err)
	}
	if err := r.seal(ctx, s, &c); err != nil {
		return err
	}
	*chain = c
	s.Private = chain.encode()
	return nil
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
