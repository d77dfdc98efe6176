package repository

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// hostRE is the schema's HostName.
var hostRE = regexp.MustCompile(`^[A-Za-z0-9\[][A-Za-z0-9.:\[\]\-]{0,259}$`)

var deploymentStates = map[string]bool{"in-repository": true, "staging": true, "deployed": true, "unstaging": true}
var workspaceStates = map[string]bool{"shutdown": true, "paused": true, "running": true, "corrupted": true}

// ImageRef is one image file a manager must stage, by content.
type ImageRef struct {
	Role, Digest, Format, Backing string
	Size                          int64
}

// Manifest is what CheckOut hands a manager: who owns the workspace, the lock, every
// image by digest and size (base, layers bottom first, overlay), and the description.
type Manifest struct {
	Key, Name, Owner string
	Issued           time.Time
	Holder, Token    string
	Images           []ImageRef
	Description      *etree.Element
}

// CheckOut locks workspace key for deployment on host and returns its manifest. A
// workspace is checked out to one host at a time.
func (r *Repository) CheckOut(ctx context.Context, key, host string) (*Manifest, error) {
	if !hostRE.MatchString(host) {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: host %q is not a host name", errdefs.ErrBadRequest, host), "send the manager's host name")
	}
	holder := host
	if id := identity.From(ctx); !id.IsAnonymous() {
		holder = id.DN
	}
	var m *Manifest
	err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if chain.Lock != "" {
			return errdefs.WithAdvice(&errdefs.LockedError{Holder: text(s, PropLockHolder) + " on " + text(s, PropHost)},
				"wait until that manager undeploys the workspace")
		}
		if err := inRepository(s, "staging"); err != nil {
			return err
		}
		overlay := filepath.Join(r.workspaceDir(key), chain.Overlay)
		od, osize, err := fileDigest(overlay)
		if err != nil {
			return fmt.Errorf("digest overlay: %w", err)
		}
		base, err := r.pool.Get(ctx, chain.Base)
		if err != nil {
			return err
		}
		now := r.now().UTC()
		chain.Lock = newID()
		m = &Manifest{Key: key, Name: text(s, PropName), Owner: text(s, PropOwner), Issued: now, Holder: holder, Token: chain.Lock,
			Description: describeSnapshot(s)}
		m.Images = append(m.Images, ImageRef{Role: "base", Digest: base.Digest, Format: base.Format, Size: base.Size})
		backing := base.Digest
		for _, l := range chain.Layers {
			m.Images = append(m.Images, ImageRef{Role: "layer", Digest: l.Digest, Format: "qcow2", Size: l.Size, Backing: backing})
			backing = l.Digest
		}
		m.Images = append(m.Images, ImageRef{Role: "overlay", Digest: od, Format: "qcow2", Size: osize, Backing: backing})
		setText(s, PropDeployment, "staging")
		setText(s, PropHost, host)
		setText(s, PropLockHolder, holder)
		setText(s, PropLastModified, wsrf.FormatTime(now))
		s.Private = chain.encode()
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.audit.Record(ctx, "check-out", key, "done", "host="+host)
	return m, nil
}

// describeSnapshot rebuilds the vw:virtualWorkspace description from a workspace's
// properties.
func describeSnapshot(s *wsrf.Snapshot) *etree.Element {
	d := etree.NewElement("vw:virtualWorkspace")
	d.CreateAttr("xmlns:vw", vwsns.Workspace)
	for _, q := range []wsa.QName{PropCategory, PropState, PropCreationTime, PropLifeCycle, PropLastModified, PropHardware, PropNetwork, PropSoftware, PropCapability} {
		if p := s.Property(q); p != nil {
			d.AddChild(p.Copy())
		}
	}
	return d
}

// CheckIn returns a checked-out workspace to the repository and releases its lock.
// The overlay digest must be the one the repository holds: staging changed overlays
// back (and saved memory) comes with the manager's upload path.
func (r *Repository) CheckIn(ctx context.Context, key, token, overlayDigest, state string) (string, time.Time, error) {
	if state == "" {
		state = "shutdown"
	}
	if !workspaceStates[state] {
		return "", time.Time{}, fmt.Errorf("%w: state %q is not shutdown, paused, running or corrupted", errdefs.ErrBadRequest, state)
	}
	now := r.now().UTC()
	err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if chain.Lock == "" || chain.Lock != token {
			holder := text(s, PropLockHolder)
			if holder == "" {
				holder = "nobody"
			}
			return errdefs.WithAdvice(&errdefs.LockedError{Holder: holder}, "only the manager that checked the workspace out may check it in, with its lock token")
		}
		od, _, err := fileDigest(filepath.Join(r.workspaceDir(key), chain.Overlay))
		if err != nil {
			return fmt.Errorf("digest overlay: %w", err)
		}
		if overlayDigest != od {
			return errdefs.WithAdvice(fmt.Errorf("%w: overlay %s has not been uploaded to the repository (it holds %s)", errdefs.ErrImageIntegrity, overlayDigest, od),
				"upload the changed overlay before checking in")
		}
		chain.Lock = ""
		s.Private = chain.encode()
		setText(s, PropDeployment, "in-repository")
		setText(s, PropState, state)
		setText(s, PropLastModified, wsrf.FormatTime(now))
		removeProp(s, PropHost)
		removeProp(s, PropLockHolder)
		removeProp(s, PropManagerRef)
		return nil
	})
	if err != nil {
		return "", time.Time{}, err
	}
	r.audit.Record(ctx, "check-in", key, "done", "state="+state)
	return state, now, nil
}

// ReportState records a state change a manager observed on its host.
func (r *Repository) ReportState(ctx context.Context, key, token, host, state, deployment string) (string, string, time.Time, error) {
	if !workspaceStates[state] {
		return "", "", time.Time{}, fmt.Errorf("%w: state %q is not shutdown, paused, running or corrupted", errdefs.ErrBadRequest, state)
	}
	if deployment != "" && !deploymentStates[deployment] {
		return "", "", time.Time{}, fmt.Errorf("%w: deployment %q is not in-repository, staging, deployed or unstaging", errdefs.ErrBadRequest, deployment)
	}
	now := r.now().UTC()
	var dep string
	err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		if chain.Lock == "" || chain.Lock != token || text(s, PropHost) != host {
			return errdefs.WithAdvice(&errdefs.LockedError{Holder: text(s, PropLockHolder) + " on " + text(s, PropHost)},
				"only the manager holding the workspace reports its state, with its lock token")
		}
		if deployment == "in-repository" {
			return fmt.Errorf("%w: a workspace returns to the repository by CheckIn, not ReportState", errdefs.ErrBadRequest)
		}
		setText(s, PropState, state)
		if deployment != "" {
			setText(s, PropDeployment, deployment)
		}
		setText(s, PropLastModified, wsrf.FormatTime(now))
		dep = text(s, PropDeployment)
		return nil
	})
	if err != nil {
		return "", "", time.Time{}, err
	}
	return state, dep, now, nil
}

// SOAP adapters.

func (r *Repository) checkOutHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: CheckOut needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	m, err := r.CheckOut(ctx, key, childText(req.Payload, vwsns.Workspace, "Host"))
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "CheckOutResponse")
	me := out.CreateElement("r:Manifest")
	me.CreateElement("r:WorkspaceKey").SetText(m.Key)
	if m.Name != "" {
		me.CreateElement("r:name").SetText(m.Name)
	}
	me.CreateElement("r:owner").SetText(m.Owner)
	me.CreateElement("r:Issued").SetText(wsrf.FormatTime(m.Issued))
	lock := me.CreateElement("r:Lock")
	lock.CreateElement("r:Holder").SetText(m.Holder)
	lock.CreateElement("r:Token").SetText(m.Token)
	lock.CreateElement("r:Acquired").SetText(wsrf.FormatTime(m.Issued))
	base := strings.TrimSuffix(req.Address, "/wsrf/services/"+vwsns.WorkspaceService)
	for _, img := range m.Images {
		ie := me.CreateElement("r:Image")
		ie.CreateElement("r:Role").SetText(img.Role)
		ie.CreateElement("r:Digest").SetText(img.Digest)
		ie.CreateElement("r:SizeBytes").SetText(strconv.FormatInt(img.Size, 10))
		ie.CreateElement("r:Format").SetText(img.Format)
		if img.Backing != "" {
			ie.CreateElement("r:BackingDigest").SetText(img.Backing)
		}
		if img.Role == "base" {
			ie.CreateElement("r:Location").SetText(base + "/images/" + img.Digest)
		}
	}
	me.AddChild(m.Description)
	return out, nil
}

func (r *Repository) checkInHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: CheckIn needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	p := req.Payload
	state, at, err := r.CheckIn(ctx, key, childText(p, vwsns.Workspace, "LockToken"), childText(p, vwsns.Workspace, "OverlayDigest"), childText(p, vwsns.Workspace, "State"))
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "CheckInResponse")
	out.CreateElement("r:State").SetText(state)
	out.CreateElement("r:Deployment").SetText("in-repository")
	out.CreateElement("r:LastModified").SetText(wsrf.FormatTime(at))
	return out, nil
}

func (r *Repository) reportStateHandler(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: ReportState needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	p := req.Payload
	state, dep, at, err := r.ReportState(ctx, key, childText(p, vwsns.Workspace, "LockToken"), childText(p, vwsns.Workspace, "Host"),
		childText(p, vwsns.Workspace, "State"), childText(p, vwsns.Workspace, "Deployment"))
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Workspace, "ReportStateResponse")
	out.CreateElement("r:State").SetText(state)
	out.CreateElement("r:Deployment").SetText(dep)
	out.CreateElement("r:LastModified").SetText(wsrf.FormatTime(at))
	return out, nil
}
