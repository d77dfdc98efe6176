package repository

import (
	"context"
	"fmt"
	"strings"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// Reclaim hands a workspace deployed on a silent host (its announcements stopped:
// the machine is down, or cut off) back to the repository as it was checked out: the
// lock is released, and the workspace is shut down, or paused with its memory image
// when it went out serialized. What the host changed since the check-out is lost, and
// said so in vw:stateDetail. A host that is heard from undeploys its workspaces
// itself; one that comes back after a reclaim finds the workspace no longer its own
// and removes its copy (the manager's reconciler).
func (r *Repository) Reclaim(ctx context.Context, key string) (state, host string, err error) {
	return r.takeBack(ctx, key, "reclaim", func(s *wsrf.Snapshot, host string) error { return r.stillSilent(s, host) },
		func(host string) string {
			return fmt.Sprintf("reclaimed from silent host %s by %s at %s; what the workspace did there since its check-out is lost",
				host, identity.From(ctx).String(), wsrf.FormatTime(r.now()))
		})
}

// Disown takes back a workspace whose manager, at managerAddress, says it holds no
// record of it (its host reinstalled, or its data lost, since the check-out), as
// Reclaim does. Only the manager it is checked out to may say so.
func (r *Repository) Disown(ctx context.Context, key, managerAddress string) (state string, err error) {
	if err := nameVouchesFor(identity.From(ctx), managerAddress); err != nil {
		r.audit.Record(ctx, "disown", key, "denied", err.Error())
		return "", errdefs.WithAdvice(fmt.Errorf("%w: Disown: %w", errdefs.ErrAuthorization, err), managerNameAdvice)
	}
	state, _, err = r.takeBack(ctx, key, "disown", func(s *wsrf.Snapshot, host string) error {
		if err := heldByCaller(ctx, s); err != nil {
			return err
		}
		// Or the caller announces the workspace's host under managerAddress now: the
		// host was reinstalled under a new address (notHeld names it such workspaces).
		if mgr := managerAddressOf(s); mgr != managerAddress && (mgr == "" || !r.announcesUnder(ctx, host, managerAddress)) {
			if mgr == "" {
				mgr = "a manager that gave no address"
			}
			return errdefs.WithAdvice(&errdefs.StateError{Current: text(s, PropDeployment), Requested: "in-repository",
				Err: fmt.Errorf("%w: workspace %s is checked out to the manager at %s, not to %s", errdefs.ErrState, s.Key, mgr, managerAddress)},
				"only the manager a workspace is checked out to may disown it; nothing was changed")
		}
		return nil
	}, func(host string) string {
		return fmt.Sprintf("taken back at %s from host %s, whose manager at %s no longer holds a record of it (the host was reinstalled, or the manager's data lost, since the check-out); what the workspace did there since its check-out is lost",
			wsrf.FormatTime(r.now()), host, managerAddress)
	})
	return state, err
}

// announcesUnder says whether the caller's live announcement of host names the
// manager at address.
func (r *Repository) announcesUnder(ctx context.Context, host, address string) bool {
	name, ok := r.hosts.AnnouncedManager(address, identity.From(ctx).String(), r.now())
	return ok && name == host
}

// managerAddressOf is the address of the manager a workspace is checked out to, ""
// when it is not, or its manager gave none.
func managerAddressOf(s *wsrf.Snapshot) string {
	ref := s.Property(PropManagerRef)
	if ref == nil || text(s, PropDeployment) == "in-repository" {
		return ""
	}
	epr, err := wsa.ParseEPR(ref)
	if err != nil {
		return ""
	}
	return epr.Address
}

// takeBack checks a workspace in as it was checked out, for a host that will not:
// allowed(s, host) decides under the workspace's lock, detail says what happened.
func (r *Repository) takeBack(ctx context.Context, key, op string, allowed func(s *wsrf.Snapshot, host string) error, detail func(host string) string) (state, host string, err error) {
	var req CheckInRequest
	err = r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
		if d := text(s, PropDeployment); d == "in-repository" {
			return errdefs.WithAdvice(&errdefs.StateError{Current: d, Requested: op + "ed"}, "it is in the repository already: nothing to take back")
		}
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		host = text(s, PropHost)
		if err := allowed(s, host); err != nil {
			return err
		}
		req = CheckInRequest{Token: chain.Lock, OverlayDigest: chain.OverlayDigest, OverlaySize: chain.OverlaySize,
			MemoryDigest: chain.MemoryDigest, MemorySize: chain.MemorySize, State: "shutdown",
			takeBack: func(s *wsrf.Snapshot) error { return allowed(s, host) }}
		if chain.MemoryDigest != "" {
			req.State = "paused"
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	req.detail = detail(host)
	if state, _, err = r.CheckIn(ctx, key, req); err != nil {
		return "", "", err
	}
	r.audit.Record(ctx, op, key, "done", "host="+host+" state="+state)
	return state, host, nil
}

// stillSilent refuses to take a workspace from host unless the host has stopped
// announcing itself: a host that is heard from may be running it.
func (r *Repository) stillSilent(s *wsrf.Snapshot, host string) error {
	now := r.now()
	holder := text(s, PropLockHolder)
	silent, _ := r.hosts.Silent(now)
	_, quiet := silent[host]
	// The name announced again, but by another identity than the one holding the
	// workspace: that one has not been heard from under it.
	if by := r.hosts.AnnouncedBy(host, now); !quiet && strings.HasPrefix(holder, "/") && by != "" && by != holder {
		quiet = true
	}
	if !quiet {
		return errdefs.WithAdvice(&errdefs.StateError{Current: text(s, PropDeployment), Requested: "in-repository",
			Err: fmt.Errorf("%w: workspace %s is deployed on %s, which is not silent (it announces itself, or never did): it may be running there",
				errdefs.ErrState, s.Key, host)},
			"undeploy it there (vws undeploy), or move it (vws move, vws host evacuate); a host that went down is listed silent by vws host list once its announcement expires")
	}
	// The name went quiet, but the manager holding the workspace still announces
	// itself under another (the host was renamed): it runs the workspace on.
	announcer := holder
	if !strings.HasPrefix(holder, "/") { // checked out over plain HTTP: the holder is the host name
		announcer = identity.Anonymous.String()
	}
	if name, ok := r.hosts.AnnouncedManager(managerAddressOf(s), announcer, now); ok {
		return errdefs.WithAdvice(&errdefs.StateError{Current: text(s, PropDeployment), Requested: "in-repository",
			Err: fmt.Errorf("%w: workspace %s is deployed on %s, whose manager at %s still announces itself, as %s: it may be running there",
				errdefs.ErrState, s.Key, host, managerAddressOf(s), name)},
			"undeploy it there (vws undeploy), or move it (vws move, vws host evacuate): the host was renamed, and its manager still holds what it checked out under the old name")
	}
	return nil
}

// reclaimHandler answers Reclaim on WorkspaceService.
func (r *Repository) reclaimHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: Reclaim needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	state, host, err := r.Reclaim(ctx, key)
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "ReclaimResponse")
	out.CreateElement("r:State").SetText(state)
	out.CreateElement("r:Host").SetText(host)
	return out, nil
}

// disownHandler answers Disown on WorkspaceService.
func (r *Repository) disownHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: Disown needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	ref := child(req.Payload, vwsns.Workspace, "ManagerReference")
	if ref == nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: Disown holds no vw:ManagerReference", errdefs.ErrBadRequest), "send the disowning manager's endpoint reference")
	}
	mgr, err := wsa.ParseEPR(ref)
	if err != nil || mgr.Address == "" {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: Disown: ManagerReference holds no wsa:Address", errdefs.ErrBadRequest), "send the disowning manager's endpoint reference")
	}
	state, err := r.Disown(ctx, key, mgr.Address)
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "DisownResponse")
	out.CreateElement("r:State").SetText(state)
	return out, nil
}
