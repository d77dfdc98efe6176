package repository

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/imagepool"
)

// siblingURL is the URL of another service mounted beside the one req reached.
func siblingURL(req *container.Request, service string) string {
	i := strings.LastIndex(req.Address, "/")
	return req.Address[:i+1] + service
}

// WorkspaceEPR is the endpoint reference of workspace key in the caller's dialect.
func WorkspaceEPR(req *container.Request, key string) *wsa.EPR {
	k := etree.NewElement("vw:WorkspaceKey")
	k.CreateAttr("xmlns:vw", vwsns.Workspace)
	k.SetText(key)
	return &wsa.EPR{Version: req.Dialect.WSA, Address: siblingURL(req, vwsns.WorkspaceService), References: []*etree.Element{k}}
}

func child(el *etree.Element, ns, local string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			return c
		}
	}
	return nil
}

func childText(el *etree.Element, ns, local string) string {
	if c := child(el, ns, local); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return ""
}

func response(ns, local string) *etree.Element {
	e := etree.NewElement("r:" + local)
	e.CreateAttr("xmlns:r", ns)
	return e
}

// maxPreferredHosts bounds a registration's PreferredHosts (repository.xsd, as
// factory.xsd bounds fac:PreferredHost): each workspace's record keeps them.
const maxPreferredHosts = 64

// registerWorkspace answers RegisterWorkspace, the Factory's hand-over.
func (r *Repository) registerWorkspace(ctx context.Context, req *container.Request) (*etree.Element, error) {
	p := req.Payload
	desc := child(p, vwsns.Workspace, "virtualWorkspace")
	if desc == nil {
		return nil, fmt.Errorf("%w: RegisterWorkspace holds no vw:virtualWorkspace", errdefs.ErrBadRequest)
	}
	term, err := wsrf.ParseDateTime(childText(p, vwsns.Repository, "TerminationTime"))
	if err != nil {
		return nil, fmt.Errorf("%w: TerminationTime: %w", errdefs.ErrBadRequest, err)
	}
	spec := CreateSpec{
		Name: childText(p, vwsns.Repository, "Name"), Owner: childText(p, vwsns.Repository, "Owner"),
		Description: desc, BaseImage: childText(p, vwsns.Repository, "BaseImage"), Termination: term,
		KernelImage: childText(p, vwsns.Repository, "KernelImage"), InitrdImage: childText(p, vwsns.Repository, "InitrdImage"),
	}
	for _, c := range p.ChildElements() {
		switch {
		case c.Tag == "OwnerAttribute" && c.NamespaceURI() == vwsns.Repository:
			spec.OwnerAttributes = append(spec.OwnerAttributes, strings.TrimSpace(c.Text()))
		case c.Tag == "PreferredHost" && c.NamespaceURI() == vwsns.Repository:
			h := strings.TrimSpace(c.Text())
			if !hostRE.MatchString(h) {
				return nil, errdefs.WithAdvice(fmt.Errorf("%w: PreferredHost %q is not a host name", errdefs.ErrBadRequest, h),
					"send host names as hosts announce themselves (vws host list)")
			}
			spec.PreferredHosts = append(spec.PreferredHosts, h)
		}
	}
	if len(spec.PreferredHosts) > maxPreferredHosts {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: %d PreferredHosts; at most %d are taken", errdefs.ErrBadRequest, len(spec.PreferredHosts), maxPreferredHosts),
			"send fewer preferred hosts")
	}
	if s := childText(p, vwsns.Repository, "RequestedLifetime"); s != "" {
		if spec.RequestedLifetime, err = wsrf.ParseLifetime(s); err != nil {
			return nil, fmt.Errorf("%w: RequestedLifetime: %w", errdefs.ErrBadRequest, err)
		}
	}
	spec.RequestID = childText(p, vwsns.Repository, "RequestID")
	if len(spec.RequestID) > maxRequestIDLen {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: RequestID is %d characters; at most %d are taken", errdefs.ErrBadRequest, len(spec.RequestID), maxRequestIDLen),
			"send a shorter name for the registration")
	}
	created, err := r.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	out := response(vwsns.Repository, "RegisterWorkspaceResponse")
	WorkspaceEPR(req, created.Key).ChildElement(out, "r:WorkspaceReference", "wsa")
	out.CreateElement("r:Key").SetText(created.Key)
	return out, nil
}

func (r *Repository) clone(lt wsrf.LifetimePolicy) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		key, ok := req.ResourceKey()
		if !ok {
			return nil, fmt.Errorf("%w: Clone needs the workspace's key header", errdefs.ErrResourceUnknown)
		}
		p := req.Payload
		var lifetime time.Duration
		var at *time.Time
		var err error
		if s := childText(p, vwsns.Workspace, "RequestedLifetime"); s != "" {
			if lifetime, err = wsrf.ParseLifetime(s); err != nil {
				return nil, fmt.Errorf("%w: RequestedLifetime: %w", errdefs.ErrBadRequest, err)
			}
			if lifetime <= 0 {
				// Not "the default", as Create: a caller who asks for none is told so.
				return nil, errdefs.WithAdvice(fmt.Errorf("%w: RequestedLifetime %s is not a positive duration", errdefs.ErrBadRequest, s),
					"ask for a positive lifetime, or leave RequestedLifetime out for the site's default")
			}
			if childText(p, vwsns.Workspace, "RequestedTerminationTime") != "" {
				return nil, errdefs.WithAdvice(fmt.Errorf("%w: Clone asks for both RequestedLifetime and RequestedTerminationTime", errdefs.ErrBadRequest),
					"give one of them (the schema allows at most one)")
			}
		}
		if s := childText(p, vwsns.Workspace, "RequestedTerminationTime"); s != "" {
			t, err := wsrf.ParseDateTime(s)
			if err != nil {
				return nil, fmt.Errorf("%w: RequestedTerminationTime: %w", errdefs.ErrBadRequest, err)
			}
			at = &t
		}
		now := r.now()
		term, clamped, err := lt.Resolve(now, lifetime, at)
		if errors.Is(err, errdefs.ErrTermTimeRejected) {
			// As for Create: Clone declares no WS-RL fault; the request asks for more
			// than the site gives.
			reason := strings.TrimPrefix(err.Error(), errdefs.ErrTermTimeRejected.Error()+": ")
			return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:Clone", Reason: reason}, errdefs.Advice(err))
		}
		if err != nil {
			return nil, err
		}
		owner := identity.From(ctx).String()
		created, err := r.CloneRequesting(ctx, key, childText(p, vwsns.Workspace, "Name"), owner, term, lifetime)
		if err != nil {
			return nil, err
		}
		out := response(vwsns.Workspace, "CloneResponse")
		WorkspaceEPR(req, created.Key).ChildElement(out, "r:WorkspaceReference", "wsa")
		out.CreateElement("r:CurrentTime").SetText(wsrf.FormatTime(now))
		out.CreateElement("r:TerminationTime").SetText(wsrf.FormatTime(created.Termination))
		if clamped {
			out.CreateElement("r:LifetimeClamped").SetText("true")
		}
		return out, nil
	}
}

// Summary is one row of a workspace listing.
type Summary struct {
	Key, Name, Owner, Category, State, Deployment, Host string
	Created, Termination                                time.Time
}

// Filter selects workspaces in List; empty fields match everything.
type Filter struct {
	States, Deployments   []string
	Owner, Host, Category string
}

func (f Filter) match(s Summary) bool {
	in := func(v string, set []string) bool {
		if len(set) == 0 {
			return true
		}
		for _, x := range set {
			if x == v {
				return true
			}
		}
		return false
	}
	return in(s.State, f.States) && in(s.Deployment, f.Deployments) &&
		(f.Owner == "" || f.Owner == s.Owner) && (f.Host == "" || f.Host == s.Host) && (f.Category == "" || f.Category == s.Category)
}

// List returns the workspaces f selects, oldest first.
func (r *Repository) List(f Filter) []Summary {
	var out []Summary
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		sum := Summary{Key: s.Key, Name: text(s, PropName), Owner: text(s, PropOwner), Category: text(s, PropCategory),
			State: text(s, PropState), Deployment: text(s, PropDeployment), Host: text(s, PropHost)}
		sum.Created, _ = wsrf.ParseDateTime(text(s, PropCreationTime))
		if s.Termination != nil {
			sum.Termination = *s.Termination
		}
		if f.match(sum) {
			out = append(out, sum)
		}
		return true
	})
	sortSummaries(out)
	return out
}

// listWorkspaces answers ListWorkspaces.
func (r *Repository) listWorkspaces(ctx context.Context, req *container.Request) (*etree.Element, error) {
	var f Filter
	offset, max := 0, 1000
	for _, c := range req.Payload.ChildElements() {
		v := strings.TrimSpace(c.Text())
		switch c.Tag {
		case "State":
			f.States = append(f.States, v)
		case "Deployment":
			f.Deployments = append(f.Deployments, v)
		case "Owner":
			f.Owner = v
		case "Host":
			f.Host = v
		case "Category":
			f.Category = v
		case "Offset", "MaxResults":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: %s %q is not a count", errdefs.ErrBadRequest, c.Tag, v)
			}
			if c.Tag == "Offset" {
				offset = n
			} else {
				max = n
			}
		}
	}
	all := r.visible(ctx, r.List(f))
	out := response(vwsns.Repository, "ListWorkspacesResponse")
	for i := offset; i < len(all) && i < offset+max; i++ {
		summaryElement(out.CreateElement("r:Workspace"), req.Dialect, siblingURL(req, vwsns.WorkspaceService), all[i])
	}
	out.CreateElement("r:Total").SetText(strconv.Itoa(len(all)))
	return out, nil
}

// summaryElement fills w (whose "r" prefix is the repository namespace) with a
// WorkspaceSummaryType.
func summaryElement(w *etree.Element, d *dialect.Dialect, workspaceService string, s Summary) {
	{
		k := etree.NewElement("vw:WorkspaceKey")
		k.CreateAttr("xmlns:vw", vwsns.Workspace)
		k.SetText(s.Key)
		(&wsa.EPR{Version: d.WSA, Address: workspaceService, References: []*etree.Element{k}}).ChildElement(w, "r:WorkspaceReference", "wsa")
		w.CreateElement("r:Key").SetText(s.Key)
		if s.Name != "" {
			w.CreateElement("r:Name").SetText(s.Name)
		}
		w.CreateElement("r:Owner").SetText(s.Owner)
		w.CreateElement("r:Category").SetText(s.Category)
		w.CreateElement("r:State").SetText(s.State)
		w.CreateElement("r:Deployment").SetText(s.Deployment)
		if s.Host != "" {
			w.CreateElement("r:Host").SetText(s.Host)
		}
		w.CreateElement("r:CreationTime").SetText(wsrf.FormatTime(s.Created))
		w.CreateElement("r:TerminationTime").SetText(wsrf.FormatTime(s.Termination))
	}
}

// serviceBase is the WorkspaceService URL beside the service serving ctx's request.
func serviceBase(ctx context.Context) string {
	if req, ok := container.RequestFrom(ctx); ok {
		return siblingURL(req, vwsns.WorkspaceService)
	}
	return vwsns.WorkspaceService
}

// listImages answers ListImages.
func (r *Repository) listImages(ctx context.Context, req *container.Request) (*etree.Element, error) {
	imgs, err := r.pool.List(ctx)
	if err != nil {
		return nil, err
	}
	name := childText(req.Payload, vwsns.Repository, "Name")
	digest := childText(req.Payload, vwsns.Repository, "Digest")
	out := response(vwsns.Repository, "ListImagesResponse")
	n := 0
	for _, img := range imgs {
		if (name != "" && img.Name != name) || (digest != "" && img.Digest != digest) {
			continue
		}
		n++
		e := out.CreateElement("r:Image")
		e.CreateElement("r:Name").SetText(img.Name)
		e.CreateElement("r:Digest").SetText(img.Digest)
		e.CreateElement("r:Format").SetText(img.Format)
		e.CreateElement("r:SizeBytes").SetText(strconv.FormatInt(img.Size, 10))
		e.CreateElement("r:VirtualSizeBytes").SetText(strconv.FormatInt(img.VirtualSize, 10))
		if img.Arch != "" {
			e.CreateElement("r:Architecture").SetText(img.Arch)
		}
		e.CreateElement("r:Created").SetText(wsrf.FormatTime(img.Created))
		if sw := softwareElement(img); sw != nil {
			e.AddChild(sw)
		}
	}
	out.CreateElement("r:Total").SetText(strconv.Itoa(n))
	return out, nil
}

// softwareElement describes a pool image in the description's software vocabulary, so
// the Factory can match requests against it.
func softwareElement(img imagepool.Image) *etree.Element {
	if img.OS == "" && img.Kernel == "" && len(img.Libraries) == 0 {
		return nil
	}
	sw := etree.NewElement("sw:software")
	sw.CreateAttr("xmlns:sw", vwsns.Software)
	if img.OS != "" {
		// The pool writes OS as family[/distribution[/version]].
		parts := strings.SplitN(img.OS, "/", 3)
		os := sw.CreateElement("sw:os")
		os.CreateElement("sw:family").SetText(parts[0])
		if len(parts) > 1 {
			os.CreateElement("sw:distribution").SetText(parts[1])
		}
		if len(parts) > 2 {
			os.CreateElement("sw:version").SetText(parts[2])
		}
	}
	if img.Kernel != "" {
		sw.CreateElement("sw:kernel").CreateElement("sw:version").SetText(img.Kernel)
	}
	for _, l := range img.Libraries {
		name, version, _ := strings.Cut(l, "=")
		lib := sw.CreateElement("sw:library")
		lib.CreateElement("sw:name").SetText(name)
		if version != "" {
			lib.CreateElement("sw:version").SetText(version)
		}
	}
	return sw
}

func sortSummaries(s []Summary) {
	slices.SortFunc(s, func(a, b Summary) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
}
