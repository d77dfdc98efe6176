package repository

import (
	"context"
	"fmt"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
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
	var req CheckInRequest
	err = r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
		if d := text(s, PropDeployment); d == "in-repository" {
			return errdefs.WithAdvice(&errdefs.StateError{Current: d, Requested: "reclaimed"}, "it is in the repository already: nothing to reclaim")
		}
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		host = text(s, PropHost)
		if err := r.stillSilent(s, host); err != nil {
			return err
		}
		req = CheckInRequest{Token: chain.Lock, OverlayDigest: chain.OverlayDigest, OverlaySize: chain.OverlaySize,
			MemoryDigest: chain.MemoryDigest, MemorySize: chain.MemorySize, State: "shutdown", reclaimFrom: host}
		if chain.MemoryDigest != "" {
			req.State = "paused"
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	req.detail = fmt.Sprintf("reclaimed from silent host %s by %s at %s; what the workspace did there since its check-out is lost",
		host, identity.From(ctx).String(), wsrf.FormatTime(r.now()))
	if state, _, err = r.CheckIn(ctx, key, req); err != nil {
		return "", "", err
	}
	r.audit.Record(ctx, "reclaim", key, "done", "host="+host+" state="+state)
	return state, host, nil
}

// stillSilent refuses to take a workspace from host unless the host has stopped
// announcing itself: a host that is heard from may be running it.
func (r *Repository) stillSilent(s *wsrf.Snapshot, host string) error {
	silent, _ := r.hosts.Silent(r.now())
	if _, ok := silent[host]; ok {
		return nil
	}
	return errdefs.WithAdvice(fmt.Errorf("%w: workspace %s is deployed on %s, which is not silent (it announces itself, or never did): it may be running there",
		errdefs.ErrState, s.Key, host),
		"undeploy it there (vws undeploy), or move it (vws move, vws host evacuate); a host that went down is listed silent by vws host list once its announcement expires")
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
