// Package placement keeps the hosts that announced themselves to a Repository and
// ranks them for a workspace: the hosts whose hypervisor, architecture, CPUs, free
// memory and networks fit its description (hostfit, the check their Manager makes
// at Deploy), those that already cache most of its images first ("image already on
// the host" is the placement criterion of the architecture), then those with the
// most free memory, then those running the fewest workspaces; last, the hosts whose
// manager could not read its hypervisor when it announced itself. Fitting hosts the
// workspace's creator preferred come before all others, in the order preferred.
package placement

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/wsa"
)

// Host is one host as its Manager announced it.
type Host struct {
	Name    string   // the name its manager checks workspaces out under
	Manager *wsa.EPR // its manager's reference, as announced
	// Offer is what the host can run; meaningful only when Problem is "".
	Offer          hostfit.Offer
	MemoryTotalMiB int64
	Deployed       int
	Cached         map[string]bool // digests in the host cache
	// Problem says why the manager could not read its hypervisor; nothing is placed
	// on the host meanwhile.
	Problem string
	// Draining: its administrator takes no new workspaces there (maintenance).
	Draining bool

	AnnouncedBy string // the identity that announced it
	LastSeen    time.Time
	Expires     time.Time
}

// Directory holds the latest announcement of each host.
type Directory struct {
	mu    sync.Mutex
	hosts map[string]Host
	// silent are the hosts whose announcement expired, by name, as last announced
	// with LastSeen when they were last heard from, until they announce themselves
	// again: workspaces may still be out there, however long ago. silentChanges
	// counts changes of that set, so that a watcher need not compare.
	silent        map[string]Host
	silentChanges uint64
}

// NewDirectory returns an empty directory.
func NewDirectory() *Directory {
	return &Directory{hosts: map[string]Host{}, silent: map[string]Host{}}
}

// Silent returns the hosts whose announcements expired and that have not announced
// themselves since, with when each was last heard from, and a number that changes
// whenever that set does.
func (d *Directory) Silent(now time.Time) (map[string]time.Time, uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune(now)
	out := make(map[string]time.Time, len(d.silent))
	for name, h := range d.silent {
		out[name] = h.LastSeen
	}
	return out, d.silentChanges
}

// SilentHosts returns the hosts silent at now, as last announced, with LastSeen when
// each was last heard from, by name.
func (d *Directory) SilentHosts(now time.Time) []Host {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune(now)
	return byName(d.silent)
}

// byName lists the hosts of m sorted by name.
func byName(m map[string]Host) []Host {
	out := make([]Host, 0, len(m))
	for _, h := range m {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b Host) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// prune moves the expired announcements to silent.
func (d *Directory) prune(now time.Time) {
	for name, h := range d.hosts {
		if !now.Before(h.Expires) {
			delete(d.hosts, name)
			d.silent[name] = h
			d.silentChanges++
		}
	}
}

// Heard notes that host name was heard from at now other than by announcing itself
// (it reported a workspace's state). A silent host stays silent — its announcements
// stopped, placement passes it over — but was last heard from now; Heard says
// whether it is silent.
func (d *Directory) Heard(name string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune(now)
	h, ok := d.silent[name]
	if ok && now.After(h.LastSeen) {
		h.LastSeen = now
		d.silent[name] = h
		d.silentChanges++
	}
	return ok
}

// AnnouncedBy is the identity whose announcement of host name is live at now ("":
// none is).
func (d *Directory) AnnouncedBy(name string, now time.Time) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune(now)
	return d.hosts[name].AnnouncedBy
}

// AnnouncedManager names a host under which identity by announces the manager at
// address, live at now (false: none). A host renamed (vws serve --host-name) announces
// its manager under the new name only, while it still runs what it checked out under
// the old one.
func (d *Directory) AnnouncedManager(address, by string, now time.Time) (string, bool) {
	if address == "" {
		return "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune(now)
	key := managerKey(&wsa.EPR{Address: address})
	for _, h := range byName(d.hosts) {
		if h.AnnouncedBy == by && managerKey(h.Manager) == key {
			return h.Name, true
		}
	}
	return "", false
}

// ErrNameTaken is Announce's refusal of a host name another identity announced.
type ErrNameTaken struct {
	Name, By string
	Until    time.Time
}

func (e *ErrNameTaken) Error() string {
	return fmt.Sprintf("host name %q is announced by %s until %s", e.Name, e.By, e.Until.UTC().Format(time.RFC3339))
}

// ErrAddressTaken is Announce's refusal of a manager address another identity
// announced under another host name.
type ErrAddressTaken struct {
	Address, Host, By string
	Until             time.Time
}

func (e *ErrAddressTaken) Error() string {
	return fmt.Sprintf("manager address %s is announced by %s for host %q until %s", e.Address, e.By, e.Host, e.Until.UTC().Format(time.RFC3339))
}

// ErrTooManyNames is AnnounceWithin's refusal of one more host name from an identity
// whose names, live or silent, are all still needed.
type ErrTooManyNames struct {
	By    string
	Limit int
}

func (e *ErrTooManyNames) Error() string {
	return fmt.Sprintf("%s has announced %d host names already, each still live or with workspaces deployed under it", e.By, e.Limit)
}

// Announce records h, replacing the host's previous announcement. A name, or a
// manager address, another identity announced is refused until that announcement
// expires: one host's credentials must neither redirect the deploys meant for another
// nor speak for another's manager (and draw placements to it with made-up capacity).
func (d *Directory) Announce(h Host, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.refuse(h, now); err != nil {
		return err
	}
	d.record(h)
	return nil
}

// AnnounceWithin records h as Announce does, for an identity that may hold at most
// limit host names, live or silent: silent names are otherwise kept for ever, so an
// identity announcing ever new names would grow the directory (and its records)
// without end. A new name past the limit takes the place of the identity's
// longest-silent name that inUse does not claim (workspaces deployed under it, which
// only its silence lets be reclaimed), which is forgotten and returned; with none,
// the new name is refused and nothing changes.
func (d *Directory) AnnounceWithin(h Host, now time.Time, limit int, inUse func(name string) bool) (forgotten string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune(now)
	if err := d.refuse(h, now); err != nil {
		return "", err
	}
	holds := func(o Host) bool { return o.AnnouncedBy == h.AnnouncedBy }
	if old, ok := d.hosts[h.Name]; ok && holds(old) {
		d.record(h)
		return "", nil
	}
	if old, ok := d.silent[h.Name]; ok && holds(old) {
		d.record(h)
		return "", nil
	}
	n := 0
	var spare []Host
	for _, o := range d.hosts {
		if holds(o) {
			n++
		}
	}
	for _, o := range d.silent {
		if holds(o) {
			n++
			if !inUse(o.Name) {
				spare = append(spare, o)
			}
		}
	}
	if n >= limit {
		if len(spare) == 0 {
			return "", &ErrTooManyNames{By: h.AnnouncedBy, Limit: limit}
		}
		oldest := slices.MinFunc(spare, func(a, b Host) int { return cmp.Or(a.LastSeen.Compare(b.LastSeen), cmp.Compare(a.Name, b.Name)) })
		delete(d.silent, oldest.Name)
		d.silentChanges++
		forgotten = oldest.Name
	}
	d.record(h)
	return forgotten, nil
}

// refuse says why h may not be recorded at now: its name or its manager's address is
// another identity's.
func (d *Directory) refuse(h Host, now time.Time) error {
	if old, ok := d.hosts[h.Name]; ok && old.AnnouncedBy != h.AnnouncedBy && now.Before(old.Expires) {
		return &ErrNameTaken{Name: h.Name, By: old.AnnouncedBy, Until: old.Expires}
	}
	addr := managerKey(h.Manager)
	for _, other := range d.hosts {
		// An expired announcement (a restarted Repository reading which hosts went
		// silent) speaks for no manager: it only keeps its host silent, whoever
		// announced that address since.
		if now.Before(h.Expires) && other.Name != h.Name && other.AnnouncedBy != h.AnnouncedBy && now.Before(other.Expires) && managerKey(other.Manager) == addr {
			return &ErrAddressTaken{Address: h.Manager.Address, Host: other.Name, By: other.AnnouncedBy, Until: other.Expires}
		}
	}
	return nil
}

// record keeps h as its host's announcement, once refuse let it.
func (d *Directory) record(h Host) {
	d.hosts[h.Name] = h
	if _, ok := d.silent[h.Name]; ok {
		delete(d.silent, h.Name)
		d.silentChanges++
	}
}

// managerKey is a manager's address as compared between announcements: scheme and
// host name in lower case, the port explicit, the path as given.
func managerKey(epr *wsa.EPR) string {
	if epr == nil {
		return ""
	}
	u, err := url.Parse(epr.Address)
	if err != nil {
		return epr.Address
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port + u.EscapedPath()
}

// Charge counts a workspace just checked out to host name against what it last
// announced: memMiB less free, one more workspace, its images cached. Its manager's
// next announcement, a second or so after the deploy, replaces the estimate with
// facts; until then, deploys placed at the same time spread over the hosts instead of
// all choosing the one that looked best.
func (d *Directory) Charge(name string, memMiB int64, images []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h, ok := d.hosts[name]
	if !ok {
		return
	}
	h.Offer.FreeMiB = max(0, h.Offer.FreeMiB-memMiB)
	h.Deployed++
	cached := make(map[string]bool, len(h.Cached)+len(images))
	for dg := range h.Cached {
		cached[dg] = true
	}
	for _, dg := range images {
		cached[dg] = true
	}
	h.Cached = cached // a copy: Live's callers may still read the old one
	d.hosts[name] = h
}

// Live lists the hosts whose announcement has not expired at now, by name; the
// others become silent.
func (d *Directory) Live(now time.Time) []Host {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune(now)
	return byName(d.hosts)
}

// Image is one of a workspace's images a host caches by digest.
type Image struct {
	Digest string
	Size   int64
}

// Candidate is a host that could deploy the workspace now.
type Candidate struct {
	Host
	CachedBytes int64 // of the workspace's images, already on the host
	StagedBytes int64 // of the workspace's images, to move there
	// Preferred is the host's place (from 1) among those the workspace's creator
	// preferred; 0 when it is not one of them.
	Preferred int
}

// PreferredReason says why a Candidate with Preferred ranks before the others.
const PreferredReason = "preferred by the workspace's creator"

// Unsuitable is a host that could not, and why.
type Unsuitable struct {
	Host
	Reason string
}

// Rank sorts hosts for workspace d whose cacheable images are images: candidates
// best first, and the hosts that do not fit with the reason. runNow says the deploy
// starts the guest (running or paused), which needs its networks started. The fitting
// hosts named in preferred (host names, compared as DNS names are, without regard to
// case) come first, in that order; a preferred host that does not fit, or whose
// manager could not read its hypervisor, is not preferred.
func Rank(d *describe.Description, images []Image, hosts []Host, runNow bool, preferred []string) ([]Candidate, []Unsuitable) {
	cands := make([]Candidate, 0, len(hosts))
	var unfit []Unsuitable
	for _, h := range hosts {
		if h.Draining {
			unfit = append(unfit, Unsuitable{Host: h, Reason: "draining for maintenance: its administrator takes no new workspaces there"})
			continue
		}
		if h.Problem != "" {
			// What it offers is unknown, not lacking: tried last, where its manager
			// says at once whether the hypervisor is back.
			cands = append(cands, Candidate{Host: h})
			continue
		}
		if _, err := hostfit.Check(d, h.Offer); err != nil {
			unfit = append(unfit, Unsuitable{Host: h, Reason: err.Error()})
			continue
		}
		if reason := stoppedNetwork(d, h.Offer); runNow && reason != "" {
			unfit = append(unfit, Unsuitable{Host: h, Reason: reason})
			continue
		}
		c := Candidate{Host: h, Preferred: preference(preferred, h.Name)}
		for _, img := range images {
			if h.Cached[img.Digest] {
				c.CachedBytes += img.Size
			} else {
				c.StagedBytes += img.Size
			}
		}
		cands = append(cands, c)
	}
	slices.SortStableFunc(cands, func(a, b Candidate) int {
		return cmp.Or(
			cmp.Compare(unread(a.Host), unread(b.Host)),
			cmp.Compare(notPreferred(a), notPreferred(b)),
			cmp.Compare(a.Preferred, b.Preferred),
			cmp.Compare(b.CachedBytes, a.CachedBytes),
			cmp.Compare(b.Offer.FreeMiB, a.Offer.FreeMiB),
			cmp.Compare(a.Deployed, b.Deployed),
			cmp.Compare(a.Name, b.Name))
	})
	return cands, unfit
}

// stoppedNetwork names a network a NIC joins that the host defined but has not
// started: a deploy there could not start the guest until its administrator does.
func stoppedNetwork(d *describe.Description, o hostfit.Offer) string {
	if d.Network == nil {
		return ""
	}
	for _, nic := range d.Network.NICs {
		if nic.NetworkKind != "" && nic.NetworkKind != "network" {
			continue
		}
		if n, ok := o.Network(nic.Network); ok && !n.Active {
			return fmt.Sprintf("network %q, which NIC %s joins, is defined there but not started", n.Name, nic.Name)
		}
	}
	return ""
}

// preference is name's place (from 1) in preferred, 0 when it is not there.
func preference(preferred []string, name string) int {
	for i, p := range preferred {
		if strings.EqualFold(p, name) {
			return i + 1
		}
	}
	return 0
}

// notPreferred is 1 for a candidate the workspace's creator did not prefer, which
// ranks it after those it did.
func notPreferred(c Candidate) int {
	if c.Preferred == 0 {
		return 1
	}
	return 0
}

// unread is 1 for a host whose manager could not read its hypervisor, which ranks it last.
func unread(h Host) int {
	if h.Problem != "" {
		return 1
	}
	return 0
}
