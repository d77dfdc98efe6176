// Package repository is the VW Repository: it owns workspace metadata (each
// workspace a WS-Resource) and, from the image-pool issue on, the image pool.
package repository

import (
	"context"
	"io/fs"
	"strconv"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

var vw = func(local string) wsa.QName { return vwsns.Q(vwsns.Workspace, local) }

// The workspace resource-property document and its properties.
var (
	WorkspaceDocument = vw("WorkspaceResourceProperties")
	PropName          = vw("name")
	PropCategory      = vw("category")
	PropState         = vw("state")
	PropCreationTime  = vw("creationTime")
	PropLifeCycle     = vw("lifeCycle")
	PropLastModified  = vw("lastModified")
	PropHardware      = vwsns.Q(vwsns.Hardware, "hardware")
	PropNetwork       = vwsns.Q(vwsns.Network, "network")
	PropSoftware      = vwsns.Q(vwsns.Software, "software")
	PropCapability    = vwsns.Q(vwsns.Capability, "capability")
	PropDeployment    = vw("deployment")
	PropHost          = vw("host")
	PropLockHolder    = vw("lockHolder")
	PropImageDigest   = vw("imageDigest")
	PropOwner         = vw("owner")
	PropEPR           = vw("EPR")
	PropManagerRef    = vw("managerReference")
)

// WorkspaceProperties lists every property of a workspace document, in the order the
// WSDL's document sequence declares them.
var WorkspaceProperties = []wsa.QName{PropCategory, PropState, PropEPR, PropCreationTime, PropLifeCycle,
	PropLastModified, PropHardware, PropNetwork, PropSoftware, PropCapability, PropDeployment, PropHost,
	PropManagerRef, PropLockHolder, PropImageDigest, PropOwner, PropName}

// writable: what a client may change of a workspace it manages. Resource requests and
// the startup job can change while the workspace sits in the repository; identity,
// state and deployment facts belong to the services.
var writable = map[wsa.QName]bool{PropHardware: true, PropCapability: true, PropLifeCycle: true}

// Config tunes the Repository.
type Config struct {
	// MaxLifetime bounds SetTerminationTime on workspaces; zero: unbounded.
	MaxLifetime time.Duration
	Store       wsrf.Store
	Now         func() time.Time
}

// Repository is the workspace home and the services over it.
type Repository struct {
	Workspaces *wsrf.Home
	now        func() time.Time
}

// New loads the workspace home.
func New(ctx context.Context, cfg Config) (*Repository, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	home, err := wsrf.NewHome(ctx, wsrf.HomeConfig{
		Service:     vwsns.WorkspaceService,
		Document:    WorkspaceDocument,
		Declared:    WorkspaceProperties,
		MaxLifetime: cfg.MaxLifetime,
		Store:       cfg.Store,
		Now:         cfg.Now,
		Writable: func(key string, q wsa.QName) error {
			if !writable[q] {
				return errdefs.WithAdvice(errdefs.ErrUnableToModify, q.Local+" is maintained by vws; writable are hardware, capability and lifeCycle")
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return &Repository{Workspaces: home, now: cfg.Now}, nil
}

// Close stops the workspace expiry scheduler.
func (r *Repository) Close() { r.Workspaces.Close() }

// WorkspaceService builds the per-workspace WS-Resource service.
func (r *Repository) WorkspaceService(contract fs.FS) (*container.Service, error) {
	svc, err := container.NewService(contract, "wsdl", vwsns.WorkspaceService, vwsns.WorkspaceKey)
	if err != nil {
		return nil, err
	}
	wsrf.HandleProperties(svc, r.Workspaces)
	wsrf.HandleModify(svc, r.Workspaces)
	wsrf.HandleLifetime(svc, r.Workspaces, r.now)
	for _, op := range []string{"Subscribe", "Clone", "CheckOut", "CheckIn", "ReportState"} {
		svc.Handle(op, container.NotImplemented(op))
	}
	return svc, nil
}

// RepositoryService builds the repository-wide service.
func (r *Repository) RepositoryService(contract fs.FS, version string) (*container.Service, error) {
	svc, err := container.NewService(contract, "wsdl", vwsns.RepositoryService, wsa.QName{})
	if err != nil {
		return nil, err
	}
	rq := func(l string) wsa.QName { return vwsns.Q(vwsns.Repository, l) }
	props := &wsrf.Singleton{
		DocName:  rq("WorkspaceRepositoryResourceProperties"),
		Declared: []wsa.QName{rq("WorkspaceCount"), rq("ImageCount"), rq("Version")},
		Now:      r.now,
		Build: func(ctx context.Context, d *dialect.Dialect) ([]*etree.Element, error) {
			return []*etree.Element{
				textElement(rq("WorkspaceCount"), strconv.Itoa(len(r.Workspaces.Keys()))),
				textElement(rq("Version"), version),
			}, nil
		},
	}
	wsrf.HandleProperties(svc, props)
	for _, op := range []string{"ListWorkspaces", "ListImages"} {
		svc.Handle(op, container.NotImplemented(op))
	}
	return svc, nil
}

func textElement(name wsa.QName, v string) *etree.Element {
	el := etree.NewElement("p:" + name.Local)
	el.CreateAttr("xmlns:p", name.Space)
	el.SetText(v)
	return el
}
