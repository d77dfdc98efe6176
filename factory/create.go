package factory

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/imagepool"
)

// Validator checks a description against the schema and the rules the schema cannot say.
type Validator interface {
	ValidateElement(el *etree.Element) (*describe.Description, error)
}

// Registry is the Repository as the Factory uses it.
type Registry interface {
	ListImages(ctx context.Context) ([]imagepool.Image, error)
	Register(ctx context.Context, reg Registration) (key, address string, err error)
}

// Auditor records decisions and outcomes.
type Auditor interface {
	Record(ctx context.Context, operation, resource, decision, detail string)
}

// Deps are what Create stands on.
type Deps struct {
	Validator Validator
	Registry  Registry
	// Hosts, when set, says what the site's hosts offer (VMMTypes, Architectures).
	Hosts Hosts
	Audit Auditor
	Now   func() time.Time
	// Log is for what goes wrong behind the answers (default slog.Default()).
	Log *slog.Logger
}

// create answers Create (the container has authorized the caller): validate, bound the lifetime, pick the base image,
// and have the Repository register the workspace. Every check runs before anything
// is made, so a fault leaves nothing behind.
func create(cfg Config, d *Deps) container.Handler {
	lt := wsrf.LifetimePolicy{Default: cfg.DefaultLifetime, Maximum: cfg.MaximumLifetime, Refuse: cfg.RefuseLongLifetimes}
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		p := req.Payload
		if err := checkCreateShape(p); err != nil {
			return nil, err
		}
		name, err := createName(p)
		if err != nil {
			return nil, err
		}
		preferred, err := preferredHosts(p)
		if err != nil {
			return nil, err
		}
		descEl := childEl(p, vwsns.Workspace, "virtualWorkspace")
		if descEl == nil {
			return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create", Reason: "no vw:virtualWorkspace description"},
				"put the workspace description (schema/vws/workspace.xsd) first in Create")
		}
		desc, err := d.Validator.ValidateElement(wsa.Detach(descEl))
		if err != nil {
			return nil, err
		}
		now := d.Now()
		lifetime := desc.RequestedLifetime
		var at *time.Time
		if s := childText(p, "RequestedLifetime"); s != "" {
			if lifetime, err = wsrf.ParseLifetime(s); err != nil {
				return nil, &errdefs.MetadataError{Path: "/fac:Create/fac:RequestedLifetime", Reason: err.Error()}
			}
			if lifetime <= 0 {
				// Not "the default": a caller who asks for none is told so.
				return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create/fac:RequestedLifetime", Reason: fmt.Sprintf("%s is not a positive duration", s)},
					"ask for a positive lifetime, or leave RequestedLifetime out for the site's default")
			}
		}
		if s := childText(p, "RequestedTerminationTime"); s != "" {
			t, err := wsrf.ParseDateTime(s)
			if err != nil {
				return nil, &errdefs.MetadataError{Path: "/fac:Create/fac:RequestedTerminationTime", Reason: err.Error()}
			}
			at = &t
		}
		if desc.RequestedLifetime != 0 && (at != nil || childText(p, "RequestedLifetime") != "") {
			// Likewise the description's requested lifetime: one asking for PT2H must
			// not silently get what Create's other request says, charged to its owner.
			const path = "/vw:virtualWorkspace/vw:lifeCycle/vw:requestedLifetime"
			return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: path, Reason: "the lifetime is asked for twice (here, and by Create's RequestedLifetime or RequestedTerminationTime)"},
				"ask once: keep either the description's requestedLifetime or Create's request")
		}
		if t := desc.TerminationTime; !t.IsZero() {
			// The description's own "when it ends" is a request like Create's: taken,
			// not silently replaced by the default, and never asked for twice.
			const path = "/vw:virtualWorkspace/vw:lifeCycle/vw:terminationTime"
			if at != nil || childText(p, "RequestedLifetime") != "" || desc.RequestedLifetime != 0 {
				return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: path, Reason: "the termination time is asked for twice (here, and by a requested lifetime or Create's RequestedTerminationTime)"},
					"ask once: keep either the description's terminationTime or the other request")
			}
			at = &t
		}

		term, clamped, err := lt.Resolve(now, lifetime, at)
		if errors.Is(err, errdefs.ErrTermTimeRejected) {
			// Create declares no WS-RL fault: the request's metadata asks for more
			// than the site gives.
			reason := strings.TrimPrefix(err.Error(), errdefs.ErrTermTimeRejected.Error()+": ")
			return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create", Reason: reason}, errdefs.Advice(err))
		}
		if err != nil {
			return nil, err
		}
		if desc.Category != describe.CategoryVM {
			return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/vw:category",
				Reason: fmt.Sprintf("this site creates VM workspaces, not %q", desc.Category)}, "ask for category vm")
		}
		if err := requireVMM(p, desc); err != nil {
			return nil, err
		}
		if desc.Hardware != nil {
			if err := hostfit.Defined(desc.Hardware); err != nil {
				return nil, err
			}
			if _, err := hostfit.Disks(desc.Hardware.Disks); err != nil {
				return nil, err
			}
		}
		// Nor addressing a manager would not apply (a static address, say).
		if err := hostfit.Addressing(desc.Network); err != nil {
			return nil, err
		}
		images, err := d.Registry.ListImages(ctx)
		if err != nil {
			return nil, err
		}
		img, err := pickImage(images, desc)
		if err != nil {
			return nil, err
		}
		if err := sameArchitecture(desc, img, "base image"); err != nil {
			return nil, err
		}
		kernel, initrd, err := pickBootImages(images, desc)
		if err != nil {
			return nil, err
		}
		if name == "" {
			// Named here rather than by the Repository, so that a registration whose
			// answer is lost can say what to look for.
			name = "ws-" + randomHex(6)
		}
		key, address, err := register(ctx, d.Registry, Registration{
			Description: desc.Raw, Name: name, Owner: identity.From(ctx).String(), OwnerAttributes: identity.From(ctx).Attributes, BaseImage: img.Digest,
			KernelImage: kernel, InitrdImage: initrd,
			Termination: term, RequestedLifetime: lifetime, RequestID: randomHex(16), PreferredHosts: preferred,
		})
		if err != nil && answerLost(err) {
			// The Repository may have committed the workspace before its answer was
			// lost, and the repeats could not learn whether it did: it may exist and
			// count against the owner's quota.
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: the repository's answer to the registration was lost: %w", errdefs.ErrCreation, err),
				fmt.Sprintf("the workspace %q may have been created all the same, and then counts against your quota: 'vws list' shows it under that name if it was, and the other commands take its key (vws destroy KEY removes it); look before you create it again", name))
		}
		if err != nil {
			err = unwrapRemote(err)
			if errors.Is(err, errdefs.ErrResourceUnknown) {
				// The image went from the pool between the listing and the
				// registration (the Repository's word for it).
				return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace", Reason: "the base image left the pool: " + err.Error()},
					"name an image 'vws image list' shows")
			}
			return nil, err
		}
		out := etree.NewElement("fac:CreateResponse")
		out.CreateAttr("xmlns:fac", vwsns.Factory)
		k := etree.NewElement("vw:WorkspaceKey")
		k.CreateAttr("xmlns:vw", vwsns.Workspace)
		k.SetText(key)
		(&wsa.EPR{Version: req.Dialect.WSA, Address: address, References: []*etree.Element{k}}).ChildElement(out, "fac:WorkspaceReference", "wsa")
		out.CreateElement("fac:CurrentTime").SetText(wsrf.FormatTime(now))
		out.CreateElement("fac:TerminationTime").SetText(wsrf.FormatTime(term))
		if clamped {
			out.CreateElement("fac:LifetimeClamped").SetText("true")
		}
		return out, nil
	}
}

// pickImage chooses the base image: the one the description names (software image or
// the boot disk's), else the only pool image whose software matches the request.
func pickImage(images []imagepool.Image, desc *describe.Description) (imagepool.Image, error) {
	var sw, disk *describe.Image
	diskPath := ""
	if desc.Software != nil {
		sw = desc.Software.Image
	}
	if desc.Hardware != nil {
		// The disk a manager backs with the base image (hostfit.Disks has refused
		// any layout it does not deploy).
		if root, _ := hostfit.Disks(desc.Hardware.Disks); root >= 0 {
			disk, diskPath = desc.Hardware.Disks[root].Image, fmt.Sprintf("/vw:virtualWorkspace/hw:hardware/hw:disk[%d]/hw:image", root+1)
		}
	}
	switch {
	case sw != nil && disk != nil:
		a, err := findImage(images, sw, "image", "/vw:virtualWorkspace/sw:software/sw:image")
		if err != nil {
			return a, err
		}
		b, err := findImage(images, disk, "image", diskPath)
		if err != nil {
			return b, err
		}
		if a.Digest != b.Digest {
			return imagepool.Image{}, errdefs.WithAdvice(&errdefs.MetadataError{Path: diskPath,
				Reason: fmt.Sprintf("the root disk's image is %s (%s), the software's %s (%s): a workspace has one base image", b.Name, b.Digest, a.Name, a.Digest)},
				"name the same image in both places, or in one of them only")
		}
		return a, nil
	case sw != nil:
		return findImage(images, sw, "image", "/vw:virtualWorkspace/sw:software/sw:image")
	case disk != nil:
		return findImage(images, disk, "image", diskPath)
	}
	want := imagepool.Meta{}
	if sw := desc.Software; sw != nil {
		if sw.OS != nil {
			if sw.OS.Distribution == "" && sw.OS.Version != "" {
				// The pool's OS is family/distribution/version: a version alone
				// would be dropped, and any distribution's image taken for it.
				return imagepool.Image{}, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/sw:software/sw:os/sw:version",
					Reason: fmt.Sprintf("an OS version (%s) without a distribution cannot be matched against the pool's images", sw.OS.Version)},
					"give the distribution too (e.g. debian with version 12), leave the version out, or name the image")
			}
			want.OS = joinNonEmpty("/", sw.OS.Family, sw.OS.Distribution, sw.OS.Version)
		}
		if sw.Kernel != nil {
			want.Kernel = sw.Kernel.Version
		}
		for _, l := range sw.Libraries {
			want.Libraries = append(want.Libraries, joinNonEmpty("=", l.Name, l.Version))
		}
	}
	if desc.Hardware != nil {
		want.Arch = desc.Hardware.CPU.Architecture
	}
	img, err := imagepool.Select(images, want)
	if errors.Is(err, errdefs.ErrResourceUnknown) {
		// The description asks for what the pool lacks: its metadata, not an
		// addressed resource, is at fault.
		return img, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/sw:software", Reason: err.Error()},
			"import an image that fits with 'vws image import', or name one 'vws image list' shows")
	}
	var ambiguous *imagepool.AmbiguousError
	if errors.As(err, &ambiguous) {
		// A WorkspaceMetadataFault names the element at fault (its schema requires an
		// ElementPath): here the request that several images fit.
		return img, &errdefs.MetadataError{Path: "/vw:virtualWorkspace/sw:software", Reason: err.Error()}
	}
	return img, err
}

// sameArchitecture refuses an image named (rather than matched, which compares the
// architecture) whose recorded architecture is not the one the description asks
// for: a guest of that architecture boots it on no host, yet the workspace would
// count against its owner's quota.
func sameArchitecture(desc *describe.Description, img imagepool.Image, what string) error {
	hw := desc.Hardware
	if hw == nil || hw.CPU.Architecture == "" || img.Arch == "" || img.Arch == hw.CPU.Architecture {
		return nil
	}
	return errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture",
		Reason: fmt.Sprintf("the workspace is an %s guest; its %s %s is an %s image, which it cannot boot", hw.CPU.Architecture, what, img.Name, img.Arch)},
		"name images of that architecture ('vws image list' shows them), or ask for the images' architecture")
}

// findImage resolves an image reference (at path in the description) against the
// pool: by digest when it gives one, else by name; a reference giving both must name
// one image, as the schema says. what names the reference in the fault ("image",
// "kernel image").
func findImage(images []imagepool.Image, ref *describe.Image, what, path string) (imagepool.Image, error) {
	var other *imagepool.Image // the first image with the digest, under another name
	for i, img := range images {
		if ref.Digest == "" && img.Name == ref.Name {
			return img, nil
		}
		if ref.Digest != "" && img.Digest == ref.Digest {
			// Content may have several names: a reference agrees with any of them.
			if ref.Name == "" || img.Name == ref.Name {
				return img, nil
			}
			if other == nil {
				other = &images[i]
			}
		}
	}
	if other != nil {
		return imagepool.Image{}, errdefs.WithAdvice(&errdefs.MetadataError{Path: path,
			Reason: fmt.Sprintf("%s %q with digest %s: the pool names that digest %q", what, ref.Name, ref.Digest, other.Name)},
			"give the name and digest of one image ('vws image list' shows both), or only one of them")
	}
	id := ref.Name
	if ref.Digest != "" {
		id = ref.Digest
	}
	return imagepool.Image{}, errdefs.WithAdvice(&errdefs.MetadataError{Path: path, Reason: fmt.Sprintf("%s %q is not in the pool", what, id)},
		"import it with 'vws image import', or name one 'vws image list' shows")
}

// pickBootImages resolves the kernel and initrd of a direct-kernel-boot description
// (sw:software/sw:kernel/sw:image and sw:initrd) to pool digests; "" when not asked for.
// Both are files the hypervisor loads as they are, so they must be raw.
func pickBootImages(images []imagepool.Image, desc *describe.Description) (kernel, initrd string, err error) {
	if desc.Software == nil || desc.Software.Kernel == nil {
		return "", "", nil
	}
	k := desc.Software.Kernel
	for _, b := range []struct {
		ref  *describe.Image
		what string
		elem string
		out  *string
	}{{k.Image, "kernel image", "sw:image", &kernel}, {k.Initrd, "initrd image", "sw:initrd", &initrd}} {
		if b.ref == nil {
			continue
		}
		img, err := findImage(images, b.ref, b.what, "/vw:virtualWorkspace/sw:software/sw:kernel/"+b.elem)
		if err != nil {
			return "", "", err
		}
		if img.Format != "" && img.Format != imagepool.FormatRaw {
			return "", "", errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/sw:software/sw:kernel/" + b.elem,
				Reason: fmt.Sprintf("%s %q is a %s image; the hypervisor loads a kernel or initrd as a plain file", b.what, img.Name, img.Format)},
				"import the kernel or initrd file itself (it is stored raw)")
		}
		if err := sameArchitecture(desc, img, b.what); err != nil {
			return "", "", err
		}
		*b.out = img.Digest
	}
	if initrd != "" && kernel == "" {
		return "", "", errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/sw:software/sw:kernel/sw:initrd",
			Reason: "an initrd is only loaded with a kernel image"}, "name the kernel image (sw:kernel/sw:image) too, or leave the initrd out")
	}
	if strings.TrimSpace(k.Cmdline) != "" && kernel == "" {
		// The image's own boot loader decides its command line: this one would be
		// dropped without a word.
		return "", "", errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/sw:software/sw:kernel/sw:cmdline",
			Reason: "a kernel command line is only given to a kernel image the hypervisor loads; a guest booted by its image's boot loader takes the one the image's boot loader configures"},
			"name the kernel image (sw:kernel/sw:image) too, or leave sw:cmdline out and set the command line in the base image")
	}
	return kernel, initrd, nil
}

// answerLost says whether a registration that failed so may have reached the
// Repository without its answer reaching the Factory: not a fault the Repository
// answered, nor a call that failed before its request left (not sent, no
// connection, a refused TLS handshake), as the Manager judges its calls.
func answerLost(err error) bool {
	var fe *client.FaultError
	var op *net.OpError
	var cert *tls.CertificateVerificationError
	return !errors.As(err, &fe) && !errors.Is(err, client.ErrNotSent) &&
		!(errors.As(err, &op) && op.Op == "dial") && !errors.As(err, &cert)
}

// registerAttempts bounds the registrations of one Create: the first, and repeats
// after answers lost on the way back, waiting registerBackoff, then four times it.
const registerAttempts = 3

var registerBackoff = 250 * time.Millisecond

// register registers reg, asking again (same RequestID) while the answer is lost: the
// Repository answers a repeat with the workspace an earlier one made. After a lost
// answer, a repeat's refusal (the name taken by that very workspace still being made,
// the quota it took) is no proof that nothing was made: the lost answer is returned.
func register(ctx context.Context, registry Registry, reg Registration) (key, address string, err error) {
	wait := registerBackoff
	var lost error
	for attempt := 1; ; attempt++ {
		key, address, err = registry.Register(ctx, reg)
		switch {
		case err == nil:
			return key, address, nil
		case answerLost(err):
			lost = err
		case lost != nil:
			return "", "", lost
		default:
			return "", "", err
		}
		if attempt == registerAttempts || reg.RequestID == "" {
			return "", "", lost
		}
		select {
		case <-ctx.Done():
			return "", "", lost
		case <-time.After(wait):
		}
		wait *= 4
	}
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on the platforms vws runs on
	}
	return hex.EncodeToString(b)
}

// unwrapRemote turns the Repository's fault back into the error it stands for, so the
// client sees the same fault type (a duplicate name stays a WorkspaceMetadataFault)
// with the Repository's description and advice as they were, each once.
func unwrapRemote(err error) error {
	var fe *client.FaultError
	if errors.As(err, &fe) {
		sentinel := container.SentinelOf(fe.Type)
		if fe.Type == "ServiceFault" && fe.Fault != nil && fe.Fault.Code == soap.CodeClient {
			sentinel = errdefs.ErrBadRequest // the caller's request, passed on, was wrong
		}
		if sentinel != nil {
			return container.PassOn(sentinel, fe.Description, fe.Fault, "")
		}
	}
	return fmt.Errorf("%w: the repository: %w", errdefs.ErrCreation, err)
}

// hostNameRE is vw:HostName (workspace.xsd): a host name or address, with a port.
var hostNameRE = regexp.MustCompile(`^[A-Za-z0-9\[][A-Za-z0-9.:\[\]\-]{0,259}$`)

// preferredHosts are fac:ResourceRequest's fac:PreferredHost names, in order (none
// when it names none), refused unless each is a vw:HostName and they are at most
// maxPreferredHosts: the Repository keeps them with the workspace.
func preferredHosts(p *etree.Element) ([]string, error) {
	rr := childEl(p, vwsns.Factory, "ResourceRequest")
	if rr == nil {
		return nil, nil
	}
	var hosts []string
	for _, c := range rr.ChildElements() {
		if c.Tag != "PreferredHost" || c.NamespaceURI() != vwsns.Factory {
			continue
		}
		path := fmt.Sprintf("/fac:Create/fac:ResourceRequest/%s[%d]", c.FullTag(), len(hosts)+1)
		if len(hosts) == maxPreferredHosts {
			return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: path, Reason: fmt.Sprintf("more than %d preferred hosts", maxPreferredHosts)},
				fmt.Sprintf("name at most %d hosts (factory.xsd)", maxPreferredHosts))
		}
		h := strings.TrimSpace(c.Text())
		if !hostNameRE.MatchString(h) {
			return nil, errdefs.WithAdvice(&errdefs.MetadataError{Path: path, Reason: fmt.Sprintf("%q is not a host name", h)},
				"name hosts as they announce themselves to the Repository (vws host list)")
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

// vmmKinds are the VMM types a workspace may ask for (vw:VMMKind).
var vmmKinds = []string{"kvm", "qemu", "xen"}

// requireVMM makes fac:ResourceRequest/fac:VMMType the description's VMM requirement
// (vw:category/@vmm), which the Repository's placement and the manager's Deploy
// check: a wish for kvm is not to be met by a plain-QEMU host. A description that
// names another VMM is refused: which of the two was meant would be a guess.
func requireVMM(p *etree.Element, desc *describe.Description) error {
	rr := childEl(p, vwsns.Factory, "ResourceRequest")
	if rr == nil {
		return nil
	}
	el := childEl(rr, vwsns.Factory, "VMMType")
	if el == nil {
		return nil
	}
	const path = "/fac:Create/fac:ResourceRequest/fac:VMMType"
	vmm := strings.TrimSpace(el.Text())
	if !slices.Contains(vmmKinds, vmm) {
		return errdefs.WithAdvice(&errdefs.MetadataError{Path: path, Reason: fmt.Sprintf("%q is not a VMM type (kvm, qemu or xen)", vmm)},
			"ask for kvm, qemu or xen, or leave VMMType out for any the site offers")
	}
	if desc.VMM != "" && desc.VMM != vmm {
		return errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/vw:category/@vmm",
			Reason: fmt.Sprintf("the description needs VMM %q, the ResourceRequest's VMMType asks for %q", desc.VMM, vmm)},
			"ask for one VMM type: the same in both places, or in one of them only")
	}
	cat := childEl(desc.Raw, vwsns.Workspace, "category")
	if cat == nil {
		return fmt.Errorf("the validated description has no vw:category") // the schema requires one
	}
	// The description the Repository keeps is what Place and Deploy read.
	cat.CreateAttr("vmm", vmm)
	desc.VMM = vmm
	return nil
}

// maxPreferredHosts bounds fac:ResourceRequest/fac:PreferredHost (factory.xsd: "at
// most 64; the service refuses more").
const maxPreferredHosts = 64

// createChildren are the elements Create holds (schema/vws/factory.xsd), each at most
// once.
var createChildren = []wsa.QName{
	{Space: vwsns.Workspace, Local: "virtualWorkspace"},
	{Space: vwsns.Factory, Local: "Name"},
	{Space: vwsns.Factory, Local: "RequestedLifetime"},
	{Space: vwsns.Factory, Local: "RequestedTerminationTime"},
	{Space: vwsns.Factory, Local: "ResourceRequest"},
}

// createName is fac:Name as sent ("" when absent), refused unless it is a
// vw:WorkspaceNameType: an empty one is not a wish for a generated name, nor is one
// with spaces around it another name, and the Repository would name the element
// otherwise.
func createName(p *etree.Element) (string, error) {
	el := childEl(p, vwsns.Factory, "Name")
	if el == nil {
		return "", nil
	}
	if len(el.ChildElements()) > 0 {
		return "", errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create/fac:Name", Reason: "the name holds an element"},
			"send the name as text only")
	}
	name := el.Text()
	if err := describe.CheckWorkspaceName(name); err != nil {
		return "", err
	}
	return name, nil
}

// checkCreateShape refuses a Create whose children the schema does not allow: which of
// two names, descriptions or lifetimes the caller meant would be a guess.
func checkCreateShape(p *etree.Element) error {
	seen := map[wsa.QName]int{}
	for _, c := range p.ChildElements() {
		q := wsa.QName{Space: c.NamespaceURI(), Local: c.Tag}
		if !slices.Contains(createChildren, q) {
			return errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create/" + c.FullTag(),
				Reason: fmt.Sprintf("{%s}%s is not an element of Create", q.Space, q.Local)},
				"send vw:virtualWorkspace, then optionally fac:Name, fac:RequestedLifetime or fac:RequestedTerminationTime (the factory's WSDL)")
		}
		if seen[q]++; seen[q] > 1 {
			return errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create/" + c.FullTag(), Reason: "appears more than once"},
				"send each element of Create once")
		}
	}
	if rr := childEl(p, vwsns.Factory, "ResourceRequest"); rr != nil {
		for _, c := range rr.ChildElements() {
			path := "/fac:Create/fac:ResourceRequest/" + c.FullTag()
			switch {
			case c.Tag == "Group" && c.NamespaceURI() == vwsns.Factory:
				// Not honoured: the workspace would count against other quotas than
				// the one named, and nothing would say so.
				return errdefs.WithAdvice(&errdefs.MetadataError{Path: path,
					Reason: "this Factory does not charge a workspace to a group of the caller's choosing: it counts against every quota the site's rules give its owner"},
					"leave fac:Group out (a group quota of the rules file applies to its members whatever they ask)")
			}
		}
	}
	for _, q := range createChildren[2:4] {
		// An empty request is no duration or time (factory.xsd), nor a wish for the
		// default: a caller whose value came out empty would get the default lifetime.
		if el := childEl(p, q.Space, q.Local); el != nil && strings.TrimSpace(el.Text()) == "" {
			return errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create/fac:" + q.Local, Reason: "is empty"},
				"give a value (a duration such as PT2H, or a UTC time), or leave the element out for the site's default lifetime")
		}
	}
	if seen[createChildren[2]] > 0 && seen[createChildren[3]] > 0 {
		return errdefs.WithAdvice(&errdefs.MetadataError{Path: "/fac:Create", Reason: "both RequestedLifetime and RequestedTerminationTime"},
			"give one of them: a lifetime, or the time the workspace ends")
	}
	return nil
}

func childEl(el *etree.Element, ns, local string) *etree.Element {
	for _, c := range el.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			return c
		}
	}
	return nil
}
