package factory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/imagepool"
)

// Registration is what the Factory hands the Repository for a new workspace.
type Registration struct {
	Description *etree.Element
	Name, Owner string
	// OwnerAttributes are the creator's VO attributes: group quotas may count by them.
	OwnerAttributes []string
	BaseImage       string // pool digest
	// KernelImage and InitrdImage are the pool digests of a direct-kernel-boot
	// workspace's kernel and initrd; "" when not asked for.
	KernelImage, InitrdImage string
	Termination              time.Time
	RequestedLifetime        time.Duration
	// RequestID names this registration, the same in every repeat of it: a repeat
	// after a lost answer is answered with the workspace the first one made.
	RequestID string
	// PreferredHosts are fac:PreferredHost's host names, in order: the Repository
	// keeps them, and its placement ranks those that fit first.
	PreferredHosts []string
}

// SOAPRegistry reaches the Repository over its SOAP interface, as every component
// reaches every other, even when they share a process.
type SOAPRegistry struct {
	Client *client.Client
	// URL is the Repository's base URL ("http://host:port"); a function because the
	// embedded server learns its own address only once it listens.
	URL func() string
}

func (r *SOAPRegistry) epr() *wsa.EPR {
	return &wsa.EPR{Version: wsa.V200508, Address: strings.TrimRight(r.URL(), "/") + "/wsrf/services/" + vwsns.RepositoryService}
}

// ListImages returns the pool's images with the software they carry.
func (r *SOAPRegistry) ListImages(ctx context.Context) ([]imagepool.Image, error) {
	body := etree.NewElement("repo:ListImages")
	body.CreateAttr("xmlns:repo", vwsns.Repository)
	resp, err := r.Client.Invoke(ctx, r.epr(), "ListImages", body)
	if err != nil {
		return nil, unavailable(ctx, "list its images", err)
	}
	var out []imagepool.Image
	for _, e := range resp.SelectElements("Image") {
		img := imagepool.Image{
			Name: childText(e, "Name"), Digest: childText(e, "Digest"), Format: childText(e, "Format"),
		}
		img.Size, _ = strconv.ParseInt(childText(e, "SizeBytes"), 10, 64)
		img.VirtualSize, _ = strconv.ParseInt(childText(e, "VirtualSizeBytes"), 10, 64)
		img.Arch = childText(e, "Architecture")
		if sw := e.SelectElement("software"); sw != nil {
			if os := sw.SelectElement("os"); os != nil {
				img.OS = joinNonEmpty("/", childText(os, "family"), childText(os, "distribution"), childText(os, "version"))
			}
			if k := sw.SelectElement("kernel"); k != nil {
				img.Kernel = childText(k, "version")
			}
			for _, l := range sw.SelectElements("library") {
				img.Libraries = append(img.Libraries, joinNonEmpty("=", childText(l, "name"), childText(l, "version")))
			}
		}
		out = append(out, img)
	}
	return out, nil
}

// Register creates the workspace in the Repository and returns its key and the
// address of the service that holds it.
func (r *SOAPRegistry) Register(ctx context.Context, reg Registration) (key, address string, err error) {
	body := etree.NewElement("repo:RegisterWorkspace")
	body.CreateAttr("xmlns:repo", vwsns.Repository)
	body.AddChild(wsa.Detach(reg.Description))
	body.CreateElement("repo:Name").SetText(reg.Name)
	body.CreateElement("repo:Owner").SetText(reg.Owner)
	for _, a := range reg.OwnerAttributes {
		body.CreateElement("repo:OwnerAttribute").SetText(a)
	}
	body.CreateElement("repo:BaseImage").SetText(reg.BaseImage)
	if reg.KernelImage != "" {
		body.CreateElement("repo:KernelImage").SetText(reg.KernelImage)
	}
	if reg.InitrdImage != "" {
		body.CreateElement("repo:InitrdImage").SetText(reg.InitrdImage)
	}
	body.CreateElement("repo:TerminationTime").SetText(wsrf.FormatTime(reg.Termination))
	if reg.RequestedLifetime > 0 {
		body.CreateElement("repo:RequestedLifetime").SetText(wsrf.FormatDuration(reg.RequestedLifetime))
	}
	if reg.RequestID != "" {
		body.CreateElement("repo:RequestID").SetText(reg.RequestID)
	}
	for _, h := range reg.PreferredHosts {
		body.CreateElement("repo:PreferredHost").SetText(h)
	}
	resp, err := r.Client.Invoke(ctx, r.epr(), "RegisterWorkspace", body)
	if err != nil {
		return "", "", err
	}
	key = childText(resp, "Key")
	ref := resp.SelectElement("WorkspaceReference")
	if key == "" || ref == nil {
		return "", "", fmt.Errorf("the repository's RegisterWorkspace answer lacks Key or WorkspaceReference")
	}
	epr, err := wsa.ParseEPR(ref)
	if err != nil {
		return "", "", fmt.Errorf("the repository's workspace reference: %w", err)
	}
	return key, epr.Address, nil
}

// unavailable is a call the Repository did not answer, or answered with its own
// failure (a Server ServiceFault: an incident there), told to the Factory's caller as
// the Repository's unavailability in its words, naming its incident id, not as an
// incident of the Factory's. A call whose ctx ended, or that the Repository refused,
// stays as it was.
func unavailable(ctx context.Context, what string, err error) error {
	var fe *client.FaultError
	switch {
	case ctx.Err() != nil:
	case errors.As(err, &fe):
		if fe.Type == "ServiceFault" && fe.Fault != nil && fe.Fault.Code == soap.CodeServer {
			return container.PassOn(errdefs.ErrUnavailable, fe.Description, fe.Fault, "the repository failed to "+what)
		}
	default:
		return errdefs.WithAdvice(fmt.Errorf("%w: cannot reach the repository to %s: %w", errdefs.ErrUnavailable, what, err),
			"nothing was changed; retry when the Repository answers again (its site administrator: is vws serve running there?)")
	}
	return fmt.Errorf("ask the repository to %s: %w", what, err)
}

func childText(e *etree.Element, child string) string {
	if c := e.SelectElement(child); c != nil {
		return strings.TrimSpace(c.Text())
	}
	return ""
}

// joinNonEmpty joins the leading non-empty parts: the pool's "family/distribution/
// version" and "name=version" forms.
func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p == "" {
			break
		}
		out = append(out, p)
	}
	return strings.Join(out, sep)
}

// Offers reads the hosts announced to the Repository (repo:KnownHost), leaving out
// those whose hypervisor could not be read.
func (r *SOAPRegistry) Offers(ctx context.Context) ([]hostfit.Offer, error) {
	hosts, err := r.Client.GetResourceProperty(ctx, r.epr(), wsa.QName{Space: vwsns.Repository, Local: "KnownHost"})
	if err != nil {
		return nil, fmt.Errorf("read the hosts announced to the repository: %w", err)
	}
	var out []hostfit.Offer
	for _, h := range hosts {
		o := hostfit.Offer{DomainType: childText(h, "DomainType"), Arch: childText(h, "Architecture")}
		if o.DomainType == "" || o.Arch == "" {
			continue
		}
		out = append(out, o)
	}
	return out, nil
}
