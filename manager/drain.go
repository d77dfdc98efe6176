package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wsrf"
)

// PropDraining says the host takes no new workspaces (maintenance): the one host
// property a site administrator writes.
var PropDraining = mq("Draining")

// drainingFile marks a draining host in the manager's directory, so that a restart
// (the maintenance itself, often) does not take workspaces back on by surprise.
const drainingFile = "draining"

func readDraining(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, drainingFile))
	return err == nil
}

// Draining says whether the host takes no new workspaces.
func (m *Manager) Draining() bool { return m.draining.Load() }

// SetDraining starts (on) or ends a drain: while it lasts, a Deploy of a workspace
// not already here is refused and the host's announcements say so, so that placement
// passes it over; what runs here runs on.
func (m *Manager) SetDraining(ctx context.Context, on bool) error {
	m.drainMu.Lock()
	defer m.drainMu.Unlock()
	path := filepath.Join(m.cfg.Dir, drainingFile)
	if on {
		if err := fsutil.WriteFileAtomic(path, []byte("draining since "+time.Now().UTC().Format(time.RFC3339)+" by "+identity.From(ctx).String()+"\n"), 0o600); err != nil {
			return fmt.Errorf("record the drain: %w", err)
		}
	} else if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("end the drain: %w", err)
	} else if err := fsutil.SyncDir(m.cfg.Dir); err != nil {
		return fmt.Errorf("end the drain: %w", err)
	}
	if m.draining.Swap(on) != on {
		m.log.Info("host drain changed", "draining", on, "by", identity.From(ctx).String())
		m.offerChanged()
	}
	return nil
}

// SetProperties answers SetResourceProperties on the host: only mgr:Draining is
// writable (Update or Insert with true or false; Delete ends a drain).
func (m *Manager) SetProperties(ctx context.Context, _ string, mods []wsrf.Modification) error {
	on := m.Draining()
	for _, mod := range mods {
		if mod.Property != PropDraining {
			return errdefs.WithAdvice(fmt.Errorf("%w: %s describes the host and is read-only; only %s may be set", errdefs.ErrUnableToModify, mod.Property, PropDraining),
				"send an Update of mgr:Draining (true or false), e.g. vws host drain URL")
		}
		if mod.Kind == wsrf.Delete {
			on = false
			continue
		}
		const advice = "send one mgr:Draining holding true (take no new workspaces) or false"
		if len(mod.Values) != 1 {
			return errdefs.WithAdvice(fmt.Errorf("%w: mgr:Draining takes one value, not %d", errdefs.ErrInvalidModification, len(mod.Values)), advice)
		}
		v, err := wsrf.ParseBoolean(mod.Values[0].Text())
		if err != nil {
			return errdefs.WithAdvice(fmt.Errorf("%w: mgr:Draining: %w", errdefs.ErrInvalidModification, err), advice)
		}
		on = v
	}
	return m.SetDraining(ctx, on)
}

// refuseWhileDraining is the refusal of a new deployment on a draining host.
func (m *Manager) refuseWhileDraining(key string) error {
	if !m.Draining() {
		return nil
	}
	// Refused before its check-out: this host has not taken the workspace from the
	// repository, where a Deploy expects it, and no other host's state is its to tell.
	return errdefs.WithAdvice(&errdefs.StateError{Current: "in-repository", Requested: phaseDeployed,
		Err: fmt.Errorf("%w: host %s is draining for maintenance and takes no new workspaces; workspace %s was not deployed", errdefs.ErrState, m.cfg.Host, key)},
		"deploy it on another host (vws deploy without --host lets the Repository choose), or ask the site administrator when the drain ends (vws host drain --off)")
}
