package manager

import (
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/policy"
)

var mq = func(l string) wsa.QName { return vwsns.Q(vwsns.Manager, l) }

// The Manager's host properties.
var (
	PropVMMType            = mq("VMMType")
	PropVMMVersion         = mq("VMMVersion")
	PropDomainType         = mq("DomainType")
	PropArchitecture       = mq("Architecture")
	PropCPUs               = mq("CPUs")
	PropMemoryTotal        = mq("MemoryTotal")
	PropMemoryFree         = mq("MemoryFree")
	PropHypervisorProblem  = mq("HypervisorProblem")
	PropDeployedWorkspaces = mq("DeployedWorkspaces")
	PropCachedImages       = mq("CachedImages")
	PropNetworks           = mq("Networks")
)

// Service builds the WorkspaceManagerService: a thin SOAP adapter over the Manager.
func (m *Manager) Service(contract fs.FS) (*container.Service, error) {
	svc, err := container.NewService(contract, "wsdl", vwsns.ManagerService, wsa.QName{})
	if err != nil {
		return nil, err
	}
	wsrf.HandleProperties(svc, &wsrf.Singleton{
		DocName: mq("WorkspaceManagerResourceProperties"),
		Declared: []wsa.QName{PropVMMType, PropVMMVersion, PropDomainType, PropArchitecture, PropCPUs, PropMemoryTotal,
			PropMemoryFree, PropHypervisorProblem, PropDeployedWorkspaces, PropCachedImages, PropNetworks, PropDraining},
		Build: m.hostProperties,
	})
	wsrf.HandleModify(svc, m)
	// Deploy, Start, Unpause (of a serialized workspace), Shutdown and Undeploy last
	// as long as their work: an image transfer, restoring or saving a guest's RAM, the
	// grace period a guest is given (a client may ask for minutes). The container's
	// handler timeout would cut them off midway — a Normal shutdown never reaching its
	// forced power-off — so they end with their work, or when the caller hangs up.
	svc.HandleUnbounded("Deploy", func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		epr, err := workspaceRef(req.Payload)
		if err != nil {
			return nil, err
		}
		initial := childText(req.Payload, "InitialState")
		// Each of these may wait long for the workspace's lock (lockWorkspace): it does
		// so without the request's tree, or its share of the parse budget.
		container.DoneReading(ctx, epr)
		res, err := m.Deploy(ctx, epr, initial)
		if err != nil {
			return nil, err
		}
		out := response("DeployResponse", res.State)
		out.CreateElement("mgr:Deployment").SetText(res.Deployment)
		out.CreateElement("mgr:Host").SetText(res.Host)
		return out, nil
	})
	simple := func(op string, handle func(string, container.Handler), f func(context.Context, *wsa.EPR) (Result, error)) {
		handle(op, func(ctx context.Context, req *container.Request) (*etree.Element, error) {
			epr, err := workspaceRef(req.Payload)
			if err != nil {
				return nil, err
			}
			container.DoneReading(ctx, epr)
			res, err := f(ctx, epr)
			if err != nil {
				return nil, err
			}
			return response(op+"Response", res.State), nil
		})
	}
	simple("Start", svc.HandleUnbounded, m.Start)
	simple("Pause", svc.Handle, m.Pause)
	simple("Unpause", svc.HandleUnbounded, m.Unpause)
	svc.HandleUnbounded("Shutdown", func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		epr, err := workspaceRef(req.Payload)
		if err != nil {
			return nil, err
		}
		grace := m.cfg.GracePeriod
		if s := childText(req.Payload, "GracePeriod"); s != "" {
			if grace, err = wsrf.ParseDuration(s); err != nil || grace <= 0 {
				return nil, fmt.Errorf("%w: GracePeriod %q is not a positive xs:duration", errdefs.ErrBadRequest, s)
			}
		}
		mode := childText(req.Payload, "Mode")
		container.DoneReading(ctx, epr)
		res, err := m.Shutdown(ctx, epr, mode, grace)
		if err != nil {
			return nil, err
		}
		return response("ShutdownResponse", res.State), nil
	})
	svc.HandleUnbounded("Undeploy", func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		epr, err := workspaceRef(req.Payload)
		if err != nil {
			return nil, err
		}
		container.DoneReading(ctx, epr)
		res, err := m.Undeploy(ctx, epr)
		if err != nil {
			return nil, err
		}
		out := response("UndeployResponse", res.State)
		out.CreateElement("mgr:Deployment").SetText(res.Deployment)
		if res.OverlayDigest != "" {
			out.CreateElement("mgr:OverlayDigest").SetText(res.OverlayDigest)
		}
		return out, nil
	})
	svc.Handle("Console", func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		epr, err := workspaceRef(req.Payload)
		if err != nil {
			return nil, err
		}
		var offset int64
		max := MaxConsoleRead
		if s := childText(req.Payload, "Offset"); s != "" {
			if offset, err = strconv.ParseInt(s, 10, 64); err != nil {
				return nil, fmt.Errorf("%w: Offset %q is not an integer", errdefs.ErrBadRequest, s)
			}
		}
		if s := childText(req.Payload, "MaxBytes"); s != "" {
			if max, err = strconv.Atoi(s); err != nil || max < 1 || max > MaxConsoleRead {
				return nil, fmt.Errorf("%w: MaxBytes %q is not between 1 and %d", errdefs.ErrBadRequest, s, MaxConsoleRead)
			}
		}
		c, err := m.Console(ctx, epr, offset, max)
		if err != nil {
			return nil, err
		}
		out := etree.NewElement("mgr:ConsoleResponse")
		out.CreateAttr("xmlns:mgr", vwsns.Manager)
		out.CreateElement("mgr:Offset").SetText(strconv.FormatInt(c.Offset, 10))
		out.CreateElement("mgr:Size").SetText(strconv.FormatInt(c.Size, 10))
		out.CreateElement("mgr:Text").SetText(base64.StdEncoding.EncodeToString(c.Data))
		return out, nil
	})
	return svc, nil
}

func response(local, state string) *etree.Element {
	out := etree.NewElement("mgr:" + local)
	out.CreateAttr("xmlns:mgr", vwsns.Manager)
	out.CreateElement("mgr:State").SetText(state)
	return out
}

// workspaceRef reads the request's WorkspaceReference EPR.
func workspaceRef(p *etree.Element) (*wsa.EPR, error) {
	var ref *etree.Element
	for _, c := range p.ChildElements() {
		if c.Tag != "WorkspaceReference" {
			continue
		}
		if c.NamespaceURI() != vwsns.Manager {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: WorkspaceReference in namespace %q, not %s", errdefs.ErrBadRequest, c.NamespaceURI(), vwsns.Manager),
				"qualify it as the service's WSDL does (mgr:WorkspaceReference)")
		}
		if ref != nil {
			// Which of two the caller meant is a guess: refuse rather than act on one.
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: more than one WorkspaceReference", errdefs.ErrBadRequest), "pass one workspace EPR per request")
		}
		ref = c
	}
	if ref == nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: no WorkspaceReference", errdefs.ErrBadRequest), "pass the workspace EPR that Create returned")
	}
	epr, err := wsa.ParseEPR(ref)
	if err != nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: WorkspaceReference: %w", errdefs.ErrBadRequest, err), "pass the workspace EPR that Create returned")
	}
	return epr, nil
}

// hostProperties describes the host: hypervisor, capacity, what runs, what is cached.
func (m *Manager) hostProperties(ctx context.Context, d *dialect.Dialect) ([]*etree.Element, error) {
	var props []*etree.Element
	var nets *etree.Element
	if h, err := m.hv.Host(ctx); err == nil {
		if nets = networksElement("mgr", m.offer(h)); nets != nil {
			nets.CreateAttr("xmlns:mgr", vwsns.Manager)
		}
		props = append(props,
			wsrf.TextProperty(PropVMMType, h.VMMType),
			wsrf.TextProperty(PropVMMVersion, h.VMMVersion),
			wsrf.TextProperty(PropDomainType, h.DomainType),
			wsrf.TextProperty(PropArchitecture, h.Arch),
			wsrf.TextProperty(PropCPUs, strconv.Itoa(h.CPUs)),
			wsrf.TextProperty(PropMemoryTotal, strconv.FormatInt(h.MemoryMiB, 10)),
			// Not the kernel's free memory: what the guests in RAM have not committed
			// (memory.go), as announced and as a boot is admitted against.
			wsrf.TextProperty(PropMemoryFree, strconv.FormatInt(m.uncommittedMiB(h, ""), 10)))
	} else {
		// The hypervisor cannot be read: say what is known without inventing
		// capacity, and why the rest is missing.
		m.log.Warn("host properties: hypervisor unreachable", "err", err)
		if dt := m.hv.DomainType(); dt != "" {
			props = append(props, wsrf.TextProperty(PropDomainType, dt))
		}
		props = append(props, wsrf.TextProperty(PropHypervisorProblem, err.Error()))
	}
	dep := etree.NewElement("mgr:DeployedWorkspaces")
	dep.CreateAttr("xmlns:mgr", vwsns.Manager)
	recs, _ := m.journal.all()
	for _, r := range recs {
		// A user sees the workspaces they may inspect; the site's admins see all.
		if m.cfg.Visible != nil && !m.cfg.Visible(ctx, policy.Resource{Service: vwsns.ManagerService, Key: r.Key, Name: r.Name, Owner: r.Owner}) {
			continue
		}
		w := dep.CreateElement("mgr:Workspace")
		w.CreateElement("mgr:Key").SetText(r.Key)
		if r.Name != "" {
			w.CreateElement("mgr:Name").SetText(r.Name)
		}
		if r.WorkspaceAddress != "" {
			epr := workspaceEPR(r)
			epr.Version = d.WSA
			epr.ChildElement(w, "mgr:WorkspaceReference", "wsa")
		}
		state := r.State
		if state == "" {
			state = stateShutdown
		}
		w.CreateElement("mgr:State").SetText(state)
		w.CreateElement("mgr:Deployment").SetText(r.Phase)
		if r.CheckedOutAs != "" {
			w.CreateElement("mgr:Host").SetText(r.CheckedOutAs)
		}
		if r.Spec.MemoryMiB > 0 {
			w.CreateElement("mgr:MemoryMiB").SetText(strconv.Itoa(r.Spec.MemoryMiB))
		}
		if r.Spec.Name != "" {
			w.CreateElement("mgr:Domain").SetText(r.Spec.Name)
		}
		if r.Detail != "" {
			w.CreateElement("mgr:Detail").SetText(r.Detail)
		}
		if r.Spec.ConsoleLog != "" {
			if tail := consoleTail(r.Spec.ConsoleLog, 2048); tail != "" {
				w.CreateElement("mgr:ConsoleTail").SetText(tail)
			}
		}
	}
	props = append(props, dep)
	ci := etree.NewElement("mgr:CachedImages")
	ci.CreateAttr("xmlns:mgr", vwsns.Manager)
	for _, c := range m.cache.list() {
		img := ci.CreateElement("mgr:Image")
		img.CreateElement("mgr:Digest").SetText(c.Digest)
		img.CreateElement("mgr:SizeBytes").SetText(strconv.FormatInt(c.Size, 10))
	}
	props = append(props, ci)
	if nets != nil {
		props = append(props, nets)
	}
	props = append(props, wsrf.TextProperty(PropDraining, strconv.FormatBool(m.Draining())))
	return props, nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
