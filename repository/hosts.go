package repository

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/placement"
)

// Bounds of an announcement: a host renews it at least every third of ValidFor, so
// the floor keeps that traffic (and its audit records) modest, and the ceiling keeps
// a host that went away from being offered for long.
const (
	minValidFor    = 10 * time.Second
	maxValidFor    = time.Hour
	maxCached      = 100000
	maxNetworks    = 1024
	maxProblemText = 1024
	maxAddressLen  = 2048
)

var architectures = []string{"x86_64", "i686", "aarch64", "armv7l", "ppc64le", "s390x", "riscv64"}

// announceHost answers AnnounceHost: a Manager says it is there and what it offers.
func (r *Repository) announceHost(ctx context.Context, req *container.Request) (*etree.Element, error) {
	offer := child(req.Payload, vwsns.Repository, "Host")
	if offer == nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: AnnounceHost holds no repo:Host", errdefs.ErrBadRequest), "send the host's offer as the schema's HostOfferType")
	}
	h, err := parseHostOffer(offer)
	if err != nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: AnnounceHost: %w", errdefs.ErrBadRequest, err), "send the host's offer as the schema's HostOfferType; nothing was recorded")
	}
	validFor, err := wsrf.ParseDuration(childText(req.Payload, vwsns.Repository, "ValidFor"))
	if err != nil || validFor < minValidFor || validFor > maxValidFor {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: AnnounceHost: ValidFor %q is not a duration between %s and %s",
			errdefs.ErrBadRequest, childText(req.Payload, vwsns.Repository, "ValidFor"), minValidFor, maxValidFor), "send e.g. PT3M; nothing was recorded")
	}
	if err := nameVouchesFor(identity.From(ctx), h.Manager.Address); err != nil {
		r.audit.Record(ctx, "announce-host", h.Name, "denied", err.Error())
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: AnnounceHost: %w", errdefs.ErrAuthorization, err), managerNameAdvice)
	}
	holds, err := heldKeys(req.Payload)
	if err != nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: AnnounceHost: %w", errdefs.ErrBadRequest, err), "list each workspace key the manager holds once, at most 100000; nothing was recorded")
	}
	now := r.now().UTC()
	h.AnnouncedBy, h.LastSeen, h.Expires = identity.From(ctx).String(), now, now.Add(validFor)
	inUse := func(string) bool { return true }
	if r.hosts.AnnouncedBy(h.Name, now) != h.AnnouncedBy {
		// Not a live host announcing itself again (the minutely case, which never
		// asks): the workspaces are read, outside the directory's lock.
		inUse = r.hostNamesInUse()
	}
	forgotten, err := r.hosts.AnnounceWithin(h, now, maxHostNamesPerIdentity, inUse)
	if err != nil {
		var taken *placement.ErrNameTaken
		var addrTaken *placement.ErrAddressTaken
		var tooMany *placement.ErrTooManyNames
		// Audited as the certificate-name refusal is: each is an identity reaching
		// for a host that is not its own, or for more hosts than it may keep.
		if errors.As(err, &taken) || errors.As(err, &addrTaken) || errors.As(err, &tooMany) {
			r.audit.Record(ctx, "announce-host", h.Name, "denied", err.Error())
		}
		if taken != nil {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: %w", errdefs.ErrAuthorization, err),
				"each host announces itself under its own name (vws serve --host-name); nothing was recorded")
		}
		if addrTaken != nil {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: %w", errdefs.ErrAuthorization, err),
				"each host announces its own manager's address (vws serve --public-url); nothing was recorded")
		}
		if tooMany != nil {
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: %w", errdefs.ErrAuthorization, err),
				"announce the host under a name it announced before (vws serve --host-name), or undeploy or reclaim the workspaces deployed under the names it no longer uses; nothing was recorded")
		}
		return nil, err
	}
	if forgotten != "" {
		r.log.Info("forgot a silent host name no workspace is deployed under: its identity announces another, and may hold only so many",
			"host", forgotten, "announced_by", h.AnnouncedBy, "new_name", h.Name, "limit", maxHostNamesPerIdentity)
		// Only its row: the name may have been announced by another identity since.
		if _, err := r.db.ExecContext(ctx, `DELETE FROM known_hosts WHERE name = $1 AND announced_by = $2`, forgotten, h.AnnouncedBy); err != nil {
			// A restarted Repository remembers it silent once more, until the next new name.
			r.log.Warn("could not remove a forgotten host's announcement from the database", "host", forgotten, "err", err)
		}
	}
	if err := r.saveHost(ctx, h); err != nil {
		// Placement goes on from memory; only a restart before the host's next
		// announcement would not know it.
		r.log.Warn("could not keep a host's announcement in the database", "host", h.Name, "err", err)
	}
	out := response(vwsns.Repository, "AnnounceHostResponse")
	out.CreateElement("r:Expires").SetText(wsrf.FormatTime(h.Expires))
	if holds != nil {
		notHeld, moved := r.notHeld(h, holds)
		for _, key := range notHeld {
			out.CreateElement("r:NotHeld").SetText(key)
		}
		r.repoint(ctx, h, moved)
	}
	return out, nil
}

// repoint names h's manager in the vw:managerReference of the workspaces keys, which
// h's announcement lists held but which name another address of its host: the host
// moved with its records (a new --public-url), and clients sent to the old address
// would find no manager there.
func (r *Repository) repoint(ctx context.Context, h placement.Host, keys []string) {
	for _, key := range keys {
		var from string
		err := r.Workspaces.Modify(ctx, key, func(s *wsrf.Snapshot) error {
			// Decided again under the workspace's lock: it may have been checked in,
			// or out again, since.
			from = managerAddressOf(s)
			if from == "" || from == h.Manager.Address || text(s, PropHost) != h.Name || !holderAnnounces(text(s, PropLockHolder), h) {
				from = ""
				return nil
			}
			epr := *h.Manager
			if old, err := wsa.ParseEPR(s.Property(PropManagerRef)); err == nil {
				epr.Version = old.Version // as its manager checked it out; read in the reader's
			}
			removeProp(s, PropManagerRef)
			s.Props = append(s.Props, managerRefElement(&epr))
			return nil
		})
		switch {
		case err != nil && !errors.Is(err, errdefs.ErrResourceUnknown):
			r.log.Warn("could not name a moved host's new manager address in a workspace it holds", "workspace", key, "host", h.Name, "address", h.Manager.Address, "err", err)
		case err == nil && from != "":
			r.log.Info("a host announces a workspace it holds from a new manager address; the workspace names it now",
				"workspace", key, "host", h.Name, "from", from, "to", h.Manager.Address)
			r.audit.Record(ctx, "repoint-manager", key, "done", "host="+h.Name+" from="+from+" to="+h.Manager.Address)
		}
	}
}

// maxHostNamesPerIdentity bounds the host names, live or silent, one identity keeps
// in the Repository: a silent name is remembered however long it stays silent (its
// workspaces can be reclaimed only so), so a manager whose --host-name changes at each
// start, or a host credential misused, would otherwise grow the hosts kept, in memory
// and in the database, up to the body limit per name, without end. Two managers of
// one machine share a credential, and --insecure hosts all announce as anonymous,
// so the bound is generous.
const maxHostNamesPerIdentity = 64

// hostNamesInUse says whether a workspace is deployed (or on its way) under a host
// name: a silent name that workspaces are still out on is not forgotten.
func (r *Repository) hostNamesInUse() func(name string) bool {
	used := map[string]bool{}
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		if host := text(s, PropHost); host != "" && text(s, PropDeployment) != "in-repository" {
			used[host] = true
		}
		return true
	})
	return func(name string) bool { return used[name] }
}

// maxHeld bounds the keys of an announcement's Holds.
const maxHeld = 100000

// heldKeys is the set of keys an announcement's Holds lists; nil when it has none
// (the manager does not say what it holds).
func heldKeys(payload *etree.Element) (map[string]bool, error) {
	el := child(payload, vwsns.Repository, "Holds")
	if el == nil {
		return nil, nil
	}
	keys := map[string]bool{}
	for _, k := range el.ChildElements() {
		if k.Tag != "WorkspaceKey" || k.NamespaceURI() != vwsns.Workspace {
			return nil, fmt.Errorf("Holds lists a %s, not only vw:WorkspaceKey", k.FullTag())
		}
		key := strings.TrimSpace(k.Text())
		if key == "" || keys[key] {
			return nil, fmt.Errorf("Holds lists an empty or repeated key %q", key)
		}
		if len(keys) == maxHeld {
			return nil, fmt.Errorf("Holds lists more than %d keys", maxHeld)
		}
		keys[key] = true
	}
	return keys, nil
}

// notHeld is the workspaces checked out to h's manager that holds does not list: its
// host no longer has a record of them. Those checked out to another manager address
// under h's name, by the identity announcing h, are its too: a host reinstalled under
// a new address keeps its name live, so they could never be reclaimed.
//
// Not while the manager at the old address may still run them: two machines may
// announce one name and credential at once (a replacement started before the old
// one is shut down), each announcement replacing the other's. A workspace that an
// announcement from the address it is checked out to listed held is not named to
// another address until that announcement has expired.
//
// moved are those holds lists that are checked out under h's name, by the identity
// announcing h, to another address whose announcements no longer list them held: the
// host moved with its records, and they are to name its new address (repoint).
func (r *Repository) notHeld(h placement.Host, holds map[string]bool) (out, moved []string) {
	now := r.now()
	r.heldMu.Lock()
	defer r.heldMu.Unlock()
	if r.heldUntil == nil {
		r.heldUntil = map[string]time.Time{}
	}
	for key, until := range r.heldUntil {
		if !until.After(now) {
			delete(r.heldUntil, key)
		}
	}
	r.Workspaces.Range(func(s *wsrf.Snapshot) bool {
		addr := managerAddressOf(s)
		if holds[s.Key] {
			switch {
			case addr == h.Manager.Address:
				r.heldUntil[s.Key] = h.Expires
			case addr != "" && text(s, PropHost) == h.Name && holderAnnounces(text(s, PropLockHolder), h) && !r.heldUntil[s.Key].After(now):
				// The new address holds it now, as the old one did.
				r.heldUntil[s.Key] = h.Expires
				moved = append(moved, s.Key)
			}
			return true
		}
		switch {
		case addr == h.Manager.Address:
			out = append(out, s.Key)
		case addr != "" && text(s, PropHost) == h.Name && holderAnnounces(text(s, PropLockHolder), h) && !r.heldUntil[s.Key].After(now):
			out = append(out, s.Key)
		}
		return true
	})
	slices.Sort(out)
	slices.Sort(moved)
	return out, moved
}

// holderAnnounces says whether lock holder (a DN, or the host name of a check-out
// over plain HTTP) is the identity that announced h.
func holderAnnounces(holder string, h placement.Host) bool {
	if !strings.HasPrefix(holder, "/") {
		return h.AnnouncedBy == identity.Anonymous.String() && holder == h.Name
	}
	return holder == h.AnnouncedBy
}

// nameVouchesFor refuses an https manager address whose host the caller's
// certificate does not name: a host announces, and checks workspaces out under, its
// own address, not another host's (placement would send deploys there). A
// certificate names a host by a subject alternative name, or by a Globus-style
// "host/NAME" common name. Over plain HTTP there is no name to hold anyone to.
func nameVouchesFor(id identity.Identity, address string) error {
	cert := id.Certificate
	u, err := url.Parse(address)
	if cert == nil || err != nil || u.Scheme != "https" {
		return nil
	}
	name := u.Hostname()
	if identity.NamesHost(cert, name) {
		return nil
	}
	return fmt.Errorf("the manager address %s names host %q, which the caller's certificate (%s) does not: it names %s",
		address, name, id.DN, strings.Join(identity.HostNames(cert), ", "))
}

const managerNameAdvice = "give the manager a public URL (vws serve --public-url) on a name its host certificate holds, or issue the host certificate for the name clients reach it at; nothing was recorded"

// saveHost keeps h's announcement, so that a restarted Repository places workspaces
// at once.
func (r *Repository) saveHost(ctx context.Context, h placement.Host) error {
	doc := etree.NewDocument()
	doc.SetRoot(hostElement("Host", h, dialect.ForWSA(h.Manager.Version), false))
	offer, err := doc.WriteToString()
	if err != nil {
		return err
	}
	// An expired announcement stays until the host announces itself again (one row
	// per host): a restarted Repository still knows which hosts went silent.
	_, err = r.db.ExecContext(ctx, `INSERT INTO known_hosts (name, announced_by, offer, last_seen, expires) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (name) DO UPDATE SET announced_by = excluded.announced_by, offer = excluded.offer, last_seen = excluded.last_seen, expires = excluded.expires`,
		h.Name, h.AnnouncedBy, offer, h.LastSeen.UnixMilli(), h.Expires.UnixMilli())
	return err
}

// loadHosts reads the announcements, at start: those that have not expired place
// workspaces at once, the others tell which hosts went silent.
func (r *Repository) loadHosts(ctx context.Context) error {
	now := r.now()
	rows, err := r.db.QueryContext(ctx, `SELECT announced_by, offer, last_seen, expires FROM known_hosts`)
	if err != nil {
		return fmt.Errorf("read the hosts' announcements: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var by, offer string
		var seen, expires int64
		if err := rows.Scan(&by, &offer, &seen, &expires); err != nil {
			return fmt.Errorf("read the hosts' announcements: %w", err)
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromString(offer); err != nil || doc.Root() == nil {
			r.log.Warn("a stored host announcement does not parse; the host is placed again once it announces itself", "err", err)
			continue
		}
		h, err := parseHostOffer(doc.Root())
		if err != nil {
			r.log.Warn("a stored host announcement does not parse; the host is placed again once it announces itself", "err", err)
			continue
		}
		h.AnnouncedBy, h.LastSeen, h.Expires = by, time.UnixMilli(seen).UTC(), time.UnixMilli(expires).UTC()
		if err := r.hosts.Announce(h, now); err != nil {
			// Two live announcements of one manager under two identities, kept
			// before such were refused: the host's next announcement settles it.
			var addrTaken *placement.ErrAddressTaken
			if errors.As(err, &addrTaken) {
				r.log.Warn("a stored host announcement names another host's manager; the host is placed again once it announces itself", "host", h.Name, "err", err)
				continue
			}
			return err
		}
	}
	return rows.Err()
}

// parseHostOffer reads a repo:HostOfferType element, refusing anything out of its
// bounds: its values end up in placement decisions and resource properties.
func parseHostOffer(el *etree.Element) (placement.Host, error) {
	h := placement.Host{Cached: map[string]bool{}}
	var err error
	number := func(c *etree.Element, max int64) (int64, error) {
		n, err := strconv.ParseInt(strings.TrimSpace(c.Text()), 10, 64)
		if err != nil || n < 0 || n > max {
			return 0, fmt.Errorf("%s %q is not a whole number from 0 to %d", c.Tag, strings.TrimSpace(c.Text()), max)
		}
		return n, nil
	}
	seen := map[string]bool{}
	capacity := 0
	for _, c := range el.ChildElements() {
		if c.NamespaceURI() != vwsns.Repository {
			return h, fmt.Errorf("element %s in namespace %q is not part of a host offer", c.Tag, c.NamespaceURI())
		}
		if seen[c.Tag] && c.Tag != "CachedImage" {
			return h, fmt.Errorf("%s appears twice", c.Tag)
		}
		seen[c.Tag] = true
		text := strings.TrimSpace(c.Text())
		switch c.Tag {
		case "HostName":
			if !hostRE.MatchString(text) {
				return h, fmt.Errorf("HostName %q is not a host name", text)
			}
			h.Name = text
		case "ManagerReference":
			if h.Manager, err = wsa.ParseEPR(c); err != nil {
				return h, fmt.Errorf("ManagerReference: %w", err)
			}
			u, err := url.Parse(h.Manager.Address)
			if err != nil || len(h.Manager.Address) > maxAddressLen || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
				return h, fmt.Errorf("ManagerReference address %q is not the http(s) URL of a manager service", h.Manager.Address)
			}
		case "DomainType":
			if !slices.Contains([]string{"kvm", "qemu", "xen"}, text) {
				return h, fmt.Errorf("DomainType %q is not kvm, qemu or xen", text)
			}
			h.Offer.DomainType = text
			capacity++
		case "Architecture":
			if !slices.Contains(architectures, text) {
				return h, fmt.Errorf("Architecture %q is not one of %s", text, strings.Join(architectures, ", "))
			}
			h.Offer.Arch = text
			capacity++
		case "CPUs":
			n, err := number(c, 1<<16)
			if err != nil {
				return h, err
			}
			h.Offer.CPUs = int(n)
			capacity++
		case "MemoryTotalMiB":
			if h.MemoryTotalMiB, err = number(c, 1<<40); err != nil {
				return h, err
			}
		case "MemoryFreeMiB":
			if h.Offer.FreeMiB, err = number(c, 1<<40); err != nil {
				return h, err
			}
			capacity++
		case "DeployedWorkspaces":
			n, err := number(c, 1<<20)
			if err != nil {
				return h, err
			}
			h.Deployed = int(n)
		case "Networks":
			// Absent (as older managers send it): the host's libvirt networks are listed.
			h.Offer.NetworksKnown = true
			if unknown := c.SelectAttrValue("libvirtNetworksUnknown", ""); unknown != "" {
				u, err := wsrf.ParseBoolean(unknown)
				if err != nil {
					return h, fmt.Errorf("Networks: libvirtNetworksUnknown %q is not a boolean", unknown)
				}
				h.Offer.NetworksKnown = !u
			}
			for _, n := range c.ChildElements() {
				if n.Tag != "Network" || n.NamespaceURI() != vwsns.Repository {
					return h, fmt.Errorf("Networks holds %s; it lists Network elements", n.Tag)
				}
				if len(h.Offer.Networks) == maxNetworks {
					return h, fmt.Errorf("more than %d networks", maxNetworks)
				}
				name, active := childText(n, vwsns.Repository, "Name"), childText(n, vwsns.Repository, "Active")
				if name == "" || len(name) > 256 || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' }) {
					return h, fmt.Errorf("network name %q is empty, too long or holds control characters", name)
				}
				started := false
				if active != "" { // absent: not started
					if started, err = wsrf.ParseBoolean(active); err != nil {
						return h, fmt.Errorf("network %s: Active %q is not a boolean", name, active)
					}
				}
				// Absent: a libvirt network, as older managers list theirs (and list no
				// bridge: placement then passes them over for a NIC on one).
				kind := childText(n, vwsns.Repository, "Kind")
				switch kind {
				case "", hostfit.KindNetwork:
					kind = hostfit.KindNetwork
				case hostfit.KindBridge:
					if err := hostfit.CheckBridgeName(name); err != nil {
						return h, fmt.Errorf("network %s: %w", name, err)
					}
				default:
					return h, fmt.Errorf("network %s: Kind %q is not network or bridge", name, kind)
				}
				h.Offer.Networks = append(h.Offer.Networks, hostfit.Network{Name: name, Kind: kind, Active: started})
			}
		case "CachedImage":
			if !digestRE.MatchString(text) {
				return h, fmt.Errorf("CachedImage %q is not a sha256:<64 hex> digest", text)
			}
			if len(h.Cached) == maxCached {
				return h, fmt.Errorf("more than %d cached images", maxCached)
			}
			h.Cached[text] = true
		case "Problem":
			if len(text) > maxProblemText {
				text = text[:maxProblemText]
			}
			h.Problem = strings.ToValidUTF8(text, "\uFFFD")
		case "Draining":
			if h.Draining, err = wsrf.ParseBoolean(text); err != nil {
				return h, fmt.Errorf("Draining %q is not a boolean", text)
			}
		default:
			return h, fmt.Errorf("%s is not part of a host offer", c.Tag)
		}
	}
	switch {
	case h.Name == "":
		return h, errors.New("no HostName")
	case h.Manager == nil:
		return h, errors.New("no ManagerReference")
	case !seen["DeployedWorkspaces"]:
		return h, errors.New("no DeployedWorkspaces")
	case h.Problem == "" && capacity != 4:
		return h, errors.New("DomainType, Architecture, CPUs and MemoryFreeMiB are required unless Problem says why the hypervisor cannot be read")
	// Offers that cannot be true would place workspaces where they cannot run.
	case seen["CPUs"] && h.Offer.CPUs == 0:
		return h, errors.New("CPUs 0: a host offers at least one")
	// Free memory alone is unchecked (up to 2^40 MiB) and would win every placement
	// by free memory; every vws manager sends the total it is part of.
	case seen["MemoryFreeMiB"] && !seen["MemoryTotalMiB"]:
		return h, errors.New("MemoryFreeMiB without MemoryTotalMiB: send the host's total memory with its free memory")
	case seen["MemoryTotalMiB"] && seen["MemoryFreeMiB"] && h.Offer.FreeMiB > h.MemoryTotalMiB:
		return h, fmt.Errorf("MemoryFreeMiB %d is more than MemoryTotalMiB %d", h.Offer.FreeMiB, h.MemoryTotalMiB)
	}
	return h, nil
}

// hostElement renders h as a repo:HostOfferType (with the directory's facts, for
// KnownHost) in the caller's WS-Addressing version.
func hostElement(local string, h placement.Host, d *dialect.Dialect, known bool) *etree.Element {
	el := etree.NewElement("r:" + local)
	el.CreateAttr("xmlns:r", vwsns.Repository)
	el.CreateElement("r:HostName").SetText(h.Name)
	managerRefIn(el, h.Manager, d)
	if h.Problem == "" {
		el.CreateElement("r:DomainType").SetText(h.Offer.DomainType)
		el.CreateElement("r:Architecture").SetText(h.Offer.Arch)
		el.CreateElement("r:CPUs").SetText(strconv.Itoa(h.Offer.CPUs))
		if h.MemoryTotalMiB > 0 {
			el.CreateElement("r:MemoryTotalMiB").SetText(strconv.FormatInt(h.MemoryTotalMiB, 10))
		}
		el.CreateElement("r:MemoryFreeMiB").SetText(strconv.FormatInt(h.Offer.FreeMiB, 10))
	}
	el.CreateElement("r:DeployedWorkspaces").SetText(strconv.Itoa(h.Deployed))
	if h.Offer.NetworksKnown || len(h.Offer.Bridges()) > 0 {
		nets := el.CreateElement("r:Networks")
		if !h.Offer.NetworksKnown {
			nets.CreateAttr("libvirtNetworksUnknown", "true")
		}
		for _, n := range h.Offer.Networks {
			ne := nets.CreateElement("r:Network")
			ne.CreateElement("r:Name").SetText(n.Name)
			ne.CreateElement("r:Active").SetText(strconv.FormatBool(n.Active))
			if n.IsBridge() {
				ne.CreateElement("r:Kind").SetText(hostfit.KindBridge)
			}
		}
	}
	cached := make([]string, 0, len(h.Cached))
	for dg := range h.Cached {
		cached = append(cached, dg)
	}
	slices.Sort(cached)
	for _, dg := range cached {
		el.CreateElement("r:CachedImage").SetText(dg)
	}
	if h.Problem != "" {
		el.CreateElement("r:Problem").SetText(h.Problem)
	}
	if h.Draining {
		el.CreateElement("r:Draining").SetText("true")
	}
	if known {
		el.CreateElement("r:AnnouncedBy").SetText(h.AnnouncedBy)
		el.CreateElement("r:LastSeen").SetText(wsrf.FormatTime(h.LastSeen))
		el.CreateElement("r:Expires").SetText(wsrf.FormatTime(h.Expires))
	}
	return el
}

// place answers Place: the announced hosts that could deploy the workspace now, best
// first, and why the others could not.
func (r *Repository) place(ctx context.Context, req *container.Request) (*etree.Element, error) {
	key, ok := req.ResourceKey()
	if !ok {
		return nil, fmt.Errorf("%w: Place needs the workspace's key header", errdefs.ErrResourceUnknown)
	}
	if r.validator == nil {
		return nil, errors.New("this Repository has no description validator, so it cannot place workspaces")
	}
	var (
		description *etree.Element
		chain       *diskChain
		deployment  string
		host        string
		managerRef  *etree.Element
	)
	err := r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
		var err error
		if chain, err = decodeChain(s.Private); err != nil {
			return err
		}
		description, deployment, host = describeSnapshot(s), text(s, PropDeployment), text(s, PropHost)
		for _, p := range s.Props {
			if p.Tag == PropManagerRef.Local && p.NamespaceURI() == PropManagerRef.Space {
				managerRef = p.Copy()
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	initial := childText(req.Payload, vwsns.Workspace, "InitialState")
	switch initial {
	case "", "shutdown", "running", "paused":
	default:
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: Place: InitialState %q is not shutdown, running or paused", errdefs.ErrBadRequest, initial),
			"send the state the deploy is to leave the workspace in, or none for shutdown")
	}
	move := false
	if v := childText(req.Payload, vwsns.Workspace, "Move"); v != "" {
		move, err = wsrf.ParseBoolean(v)
	}
	if err != nil {
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: Place: Move: %w", errdefs.ErrBadRequest, err),
			"send true to rank the hosts the deployed workspace could move to, or leave Move out")
	}
	out := response(vwsns.Workspace, "PlaceResponse")
	if deployment != "in-repository" && managerRef == nil {
		return nil, errdefs.WithAdvice(&errdefs.StateError{Current: deployment, Requested: "deployed",
			Err: fmt.Errorf("%w: the workspace is %s on %s, between the repository and a host", errdefs.ErrState, deployment, host)},
			"wait until it is deployed there, or back in the repository")
	}
	if deployment != "in-repository" && !move {
		// Its only place is where it is: a deploy anywhere else meets its lock.
		epr, err := wsa.ParseEPR(managerRef)
		if err != nil {
			return nil, fmt.Errorf("the workspace's managerReference: %w", err)
		}
		c := placement.Candidate{Host: placement.Host{Name: host, Manager: epr}}
		for _, h := range r.hosts.Live(r.now()) {
			if h.Name == host {
				c.Host.Offer.FreeMiB, c.Host.Deployed = h.Offer.FreeMiB, h.Deployed
			}
		}
		candidateElement(out, c, req.Dialect)
		r.placements.WithLabelValues("deployed").Inc()
		return out, nil
	}
	desc, err := r.validator.ValidateElement(description)
	if err != nil {
		return nil, fmt.Errorf("the workspace's stored description: %w", err)
	}
	var images []placement.Image
	for _, dg := range []string{chain.Base, chain.Kernel, chain.Initrd} {
		if dg == "" {
			continue
		}
		img, err := r.pool.Get(ctx, dg)
		if err != nil {
			return nil, fmt.Errorf("the workspace's image %s: %w", dg, err)
		}
		images = append(images, placement.Image{Digest: img.Digest, Size: img.Size})
	}
	for _, l := range chain.Layers {
		images = append(images, placement.Image{Digest: l.Digest, Size: l.Size})
	}
	live := r.hosts.Live(r.now())
	var here []placement.Unsuitable
	if deployment != "in-repository" {
		// Moving: every host but its own, which it is to leave.
		live = slices.DeleteFunc(live, func(h placement.Host) bool {
			if h.Name != host {
				return false
			}
			here = append(here, placement.Unsuitable{Host: h, Reason: "the workspace is deployed there now"})
			return true
		})
	}
	cands, unfit := placement.Rank(desc, images, live, initial == "running" || initial == "paused", chain.PreferredHosts)
	unfit = append(here, unfit...)
	// Silent hosts are named too: with every known host silent, an empty answer
	// would read as "no host announced itself" and send the deploy elsewhere.
	now := r.now()
	for _, h := range r.hosts.SilentHosts(now) {
		if now.Sub(h.LastSeen) <= listSilentFor {
			unfit = append(unfit, placement.Unsuitable{Host: h, Reason: "silent since " + wsrf.FormatTime(h.LastSeen) +
				": its manager stopped announcing itself; nothing is placed there until it does"})
		}
	}
	switch {
	case len(cands) > 0:
		r.placements.WithLabelValues("placed").Inc()
	case len(unfit) > 0:
		r.placements.WithLabelValues("none-fit").Inc()
	default:
		r.placements.WithLabelValues("no-hosts").Inc()
	}
	for _, c := range cands {
		candidateElement(out, c, req.Dialect)
	}
	for _, u := range unfit {
		el := out.CreateElement("r:Unsuitable")
		el.CreateElement("r:HostName").SetText(u.Name)
		managerRefIn(el, u.Manager, req.Dialect)
		el.CreateElement("r:Reason").SetText(u.Reason)
	}
	return out, nil
}

func candidateElement(out *etree.Element, c placement.Candidate, d *dialect.Dialect) {
	el := out.CreateElement("r:Candidate")
	el.CreateElement("r:HostName").SetText(c.Name)
	managerRefIn(el, c.Manager, d)
	el.CreateElement("r:CachedBytes").SetText(strconv.FormatInt(c.CachedBytes, 10))
	el.CreateElement("r:StagedBytes").SetText(strconv.FormatInt(c.StagedBytes, 10))
	if c.Offer.FreeMiB > 0 {
		el.CreateElement("r:MemoryFreeMiB").SetText(strconv.FormatInt(c.Offer.FreeMiB, 10))
	}
	el.CreateElement("r:DeployedWorkspaces").SetText(strconv.Itoa(c.Deployed))
	if c.Preferred > 0 {
		el.CreateElement("r:Preferred").SetText(placement.PreferredReason)
	}
	if c.Problem != "" {
		el.CreateElement("r:Problem").SetText(c.Problem)
	}
}

// managerRefIn adds a manager's reference to el, in the reader's WS-Addressing
// version whichever the manager announced it in: a GT4 client calls the manager with
// what it reads.
func managerRefIn(el *etree.Element, manager *wsa.EPR, d *dialect.Dialect) {
	epr := *manager
	epr.Version = d.WSA
	epr.ChildElement(el, "r:ManagerReference", "wsa")
}
