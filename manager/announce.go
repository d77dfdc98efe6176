package manager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/vmm"
)

// DefaultAnnounceEvery is how often a manager tells its Repositories it is there,
// besides soon after what it offers changes. Each announcement is valid for three
// times as long, so one lost message does not take the host out of placement.
const DefaultAnnounceEvery = time.Minute

// announceSettle coalesces the changes of one burst (a deploy stages, defines and
// starts) into one announcement.
const announceSettle = time.Second

// offerCheckEvery is how often the manager compares what its hypervisor offers
// (domain type, CPUs, networks started or not) with what it last announced: an
// administrator who starts a network expects placement to know within seconds, not
// at the next periodic announcement. Free memory, which moves all the time, is left
// to the period and to the announcements after each deploy.
const offerCheckEvery = 5 * time.Second

// repositoryServicePath is where a vws server's WorkspaceRepositoryService is.
const repositoryServicePath = "/wsrf/services/" + vwsns.RepositoryService

// offerChanged asks for an announcement soon: what this host offers changed.
func (m *Manager) offerChanged() {
	select {
	case m.announceKick <- struct{}{}:
	default:
	}
}

// announcer announces this host to every Repository it serves, at start, soon after
// each change and on a timer.
func (m *Manager) announcer() {
	defer m.wg.Done()
	every := m.cfg.AnnounceEvery
	timer := time.NewTimer(startupDelay)
	defer timer.Stop()
	due := time.Now().Add(startupDelay)
	failing := map[string]bool{}
	check := time.NewTicker(offerCheckEvery)
	defer check.Stop()
	announced := "" // the offer's fingerprint as last announced
	// After a round that read the hypervisor and reached some Repositories but not
	// all, the round brought forward goes to those that failed only: the others took
	// the offer, and each announcement costs them a scan of their workspaces (Holds).
	// A change, or the period's end, sends it to all again.
	retryFailed := false
	var lastAll time.Time // when every Repository was last sent the offer
	allFingerprint := ""  // the offer as sent then
	for {
		select {
		case <-m.stop:
			return
		case <-check.C:
			if announced != "" && m.offerFingerprint() != announced {
				m.offerChanged()
			}
			continue
		case <-m.announceKick:
			retryFailed = false
			// Brought forward, never put off: a stream of changes must not hold
			// back the periodic announcement.
			if soon := time.Now().Add(announceSettle); due.After(soon) {
				timer.Reset(announceSettle)
				due = soon
			}
			continue
		case <-timer.C:
		}
		if m.selfEPR(wsa.V200508) == nil {
			// An embedded server learns its address once it listens.
			timer.Reset(200 * time.Millisecond)
			due = time.Now().Add(200 * time.Millisecond)
			continue
		}
		next := every
		only := retryFailed && time.Since(lastAll) < every
		ok, healthy, fingerprint := m.announce(failing, only)
		if !only {
			lastAll, allFingerprint = time.Now(), fingerprint
		}
		if ok {
			// After a retry, the offer the others hold is the one to compare with.
			announced = allFingerprint
		}
		retryFailed = healthy && !ok
		if !ok || !healthy {
			// A Repository down or libvirt unreadable: soon again, not a whole
			// period with stale facts.
			next = min(every, 5*time.Second)
		}
		timer.Reset(next)
		due = time.Now().Add(next)
	}
}

// announce sends one announcement to each Repository (only those in failing, when
// onlyFailed): ok if all took it, healthy if it could read the hypervisor. failing
// remembers which failed last time, so a Repository that stays down is logged once.
func (m *Manager) announce(failing map[string]bool, onlyFailed bool) (ok, healthy bool, fingerprint string) {
	self := m.selfEPR(wsa.V200508)
	if self == nil {
		return false, true, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(m.cfg.AnnounceEvery, 30*time.Second))
	defer cancel()
	body, info, err := m.announcement(ctx, self)
	healthy, fingerprint, ok = err == nil, offerFingerprint(info, err), true
	var wg sync.WaitGroup
	var mu sync.Mutex
	scopes := m.repositories()
	if onlyFailed { // decided before any answer changes failing
		scopes = slices.DeleteFunc(slices.Clone(scopes), func(s repoScope) bool { return !failing[s.String()+repositoryServicePath] })
	}
	for _, scope := range scopes {
		url := scope.String() + repositoryServicePath
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := m.repo.soap.Invoke(ctx, &wsa.EPR{Version: wsa.V200508, Address: url}, "AnnounceHost", body.Copy())
			if err == nil {
				m.disownNotHeld(ctx, scope.String(), self, resp)
			}
			mu.Lock()
			defer mu.Unlock()
			result := "ok"
			if err != nil {
				result = "failed"
			}
			m.metrics.announcements.WithLabelValues(result).Inc()
			switch {
			case err != nil:
				ok = false
				if !failing[url] {
					m.log.Warn("could not announce this host to a repository; workspaces are not placed here by it until it hears from this host",
						"repository", url, "err", err)
				}
				failing[url] = true
			case failing[url]:
				m.log.Info("announced this host to the repository again", "repository", url)
				delete(failing, url)
				// It answers again: what it could not be told goes now, not at the
				// reconciler's next round, so its workspaces' EPRs tell the truth sooner.
				m.reportPending()
			}
		}()
	}
	wg.Wait()
	return ok, healthy, fingerprint
}

// offerFingerprint sums up what placement decides on besides memory.
func offerFingerprint(h vmm.HostInfo, err error) string {
	if err != nil {
		return "unreadable"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %d %v", h.DomainType, h.Arch, h.CPUs, h.NetworksKnown)
	for _, n := range h.Networks {
		fmt.Fprintf(&b, " %s=%v", n.Name, n.Active)
	}
	return b.String()
}

// offerFingerprint is the hypervisor's offer now, summed up.
func (m *Manager) offerFingerprint() string {
	ctx, cancel := context.WithTimeout(context.Background(), offerCheckEvery)
	defer cancel()
	h, err := m.hv.Host(ctx)
	return offerFingerprint(h, err)
}

// announcement is the AnnounceHost body: what this host offers now, as read from the
// hypervisor (err: it could not be read).
func (m *Manager) announcement(ctx context.Context, self *wsa.EPR) (body *etree.Element, info vmm.HostInfo, err error) {
	body = etree.NewElement("repo:AnnounceHost")
	body.CreateAttr("xmlns:repo", vwsns.Repository)
	h := body.CreateElement("repo:Host")
	h.CreateElement("repo:HostName").SetText(m.cfg.Host)
	self.ChildElement(h, "repo:ManagerReference", "wsa")
	info, err = m.hv.Host(ctx)
	if err == nil {
		h.CreateElement("repo:DomainType").SetText(info.DomainType)
		h.CreateElement("repo:Architecture").SetText(info.Arch)
		h.CreateElement("repo:CPUs").SetText(strconv.Itoa(info.CPUs))
		h.CreateElement("repo:MemoryTotalMiB").SetText(strconv.FormatInt(info.MemoryMiB, 10))
		// Free for one more guest: what the guests in RAM have not committed (memory.go).
		h.CreateElement("repo:MemoryFreeMiB").SetText(strconv.FormatInt(m.uncommittedMiB(info, ""), 10))
	}
	recs, unreadable := m.journal.all()
	h.CreateElement("repo:DeployedWorkspaces").SetText(strconv.Itoa(len(recs)))
	if err == nil {
		if nets := networksElement("repo", m.offer(info)); nets != nil {
			h.AddChild(nets)
		}
	}
	for _, c := range m.cache.list() {
		h.CreateElement("repo:CachedImage").SetText(c.Digest)
	}
	if err != nil {
		h.CreateElement("repo:Problem").SetText(err.Error())
	}
	if m.Draining() {
		h.CreateElement("repo:Draining").SetText("true")
	}
	body.CreateElement("repo:ValidFor").SetText(wsrf.FormatDuration(3 * m.cfg.AnnounceEvery))
	// What this host holds, so that a Repository can name what it has checked out here
	// that the host lost (NotHeld). Not said when a record could not be read: its
	// workspace would look lost.
	if len(unreadable) == 0 {
		holds := body.CreateElement("repo:Holds")
		holds.CreateAttr("xmlns:vw", vwsns.Workspace)
		for _, r := range recs {
			holds.CreateElement("vw:WorkspaceKey").SetText(r.Key)
		}
	}
	return body, info, err
}

// disownNotHeld tells the Repository at repository, for each workspace its
// announcement's answer lists as checked out here but not held, that this host indeed
// holds no record of it (it was reinstalled, or the manager's data lost), so the
// Repository takes it back. Each is checked holding the workspace against this host's
// own deploys: one that began since the announcement has journaled it first.
func (m *Manager) disownNotHeld(ctx context.Context, repository string, self *wsa.EPR, resp *etree.Element) {
	for _, el := range resp.ChildElements() {
		if el.Tag != "NotHeld" {
			continue
		}
		key := strings.TrimSpace(el.Text())
		if key == "" {
			continue
		}
		unlock, ok := m.locks.tryLock(key)
		if !ok {
			continue // a deploy or an undeploy of it is under way: the next announcement asks again
		}
		if _, err := m.journal.get(key); !errors.Is(err, os.ErrNotExist) {
			unlock()
			continue
		}
		// A domain of it still here says the host has the workspace, and the records
		// are what is missing (a data directory on a disk not mounted, say): giving it
		// up would have the guest removed once the records are back.
		if _, err := m.hv.State(ctx, domainName(key)); !isNoDomain(err) {
			unlock()
			if err == nil {
				m.log.Warn("the repository has a workspace checked out to this host, whose domain is defined here, but the manager holds no record of it: is its data directory the right one (a disk not mounted?); it is not given back",
					"workspace", key, "domain", domainName(key), "data", m.cfg.Dir)
			}
			continue
		}
		state, err := m.repo.disown(ctx, repository, key, self)
		unlock()
		if err != nil {
			m.log.Warn("tell the repository this host holds no record of a workspace it has checked out here; will retry at the next announcement",
				"workspace", key, "repository", repository, "err", err)
			continue
		}
		m.log.Warn("the repository had a workspace checked out to this host, which holds no record of it and no domain (reinstalled, or the manager's data lost): it took the workspace back, "+state+", losing what it did here since its check-out",
			"workspace", key, "repository", repository)
	}
}

// networksElement lists what a NIC may join here as prefix:Networks (the Repository's
// and the Manager's share a layout), or is nil when nothing is known: neither the
// libvirt networks nor a published bridge.
func networksElement(prefix string, o hostOffer) *etree.Element {
	bridges := o.Bridges()
	if !o.NetworksKnown && len(bridges) == 0 {
		return nil
	}
	nets := etree.NewElement(prefix + ":Networks")
	if !o.NetworksKnown {
		// Only the bridges are listed: a reader must not take that for a host without
		// libvirt networks, and refuse NICs that join one.
		nets.CreateAttr("libvirtNetworksUnknown", "true")
	}
	for _, n := range o.Networks {
		e := nets.CreateElement(prefix + ":Network")
		e.CreateElement(prefix + ":Name").SetText(n.Name)
		e.CreateElement(prefix + ":Active").SetText(strconv.FormatBool(n.Active))
		if n.IsBridge() {
			// Absent means a libvirt network, as older peers write and read it.
			e.CreateElement(prefix + ":Kind").SetText(hostfit.KindBridge)
		}
	}
	return nets
}
