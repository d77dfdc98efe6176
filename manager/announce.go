package manager

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// DefaultAnnounceEvery is how often a manager tells its Repositories it is there,
// besides soon after what it offers changes. Each announcement is valid for three
// times as long, so one lost message does not take the host out of placement.
const DefaultAnnounceEvery = time.Minute

// announceSettle coalesces the changes of one burst (a deploy stages, defines and
// starts) into one announcement.
const announceSettle = time.Second

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
	for {
		select {
		case <-m.stop:
			return
		case <-m.announceKick:
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
		if ok, healthy := m.announce(failing); !ok || !healthy {
			// A Repository down or libvirt unreadable: soon again, not a whole
			// period with stale facts.
			next = min(every, 5*time.Second)
		}
		timer.Reset(next)
		due = time.Now().Add(next)
	}
}

// announce sends one announcement to each Repository: ok if all took it, healthy if
// it could read the hypervisor. failing remembers which failed last time, so a
// Repository that stays down is logged once.
func (m *Manager) announce(failing map[string]bool) (ok, healthy bool) {
	self := m.selfEPR(wsa.V200508)
	if self == nil {
		return false, true
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(m.cfg.AnnounceEvery, 30*time.Second))
	defer cancel()
	body, healthy := m.announcement(ctx, self)
	ok = true
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, scope := range m.repositories() {
		url := scope.String() + repositoryServicePath
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.repo.soap.Invoke(ctx, &wsa.EPR{Version: wsa.V200508, Address: url}, "AnnounceHost", body.Copy())
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
			}
		}()
	}
	wg.Wait()
	return ok, healthy
}

// announcement is the AnnounceHost body: what this host offers now; healthy says it
// could read the hypervisor.
func (m *Manager) announcement(ctx context.Context, self *wsa.EPR) (body *etree.Element, healthy bool) {
	body = etree.NewElement("repo:AnnounceHost")
	body.CreateAttr("xmlns:repo", vwsns.Repository)
	h := body.CreateElement("repo:Host")
	h.CreateElement("repo:HostName").SetText(m.cfg.Host)
	self.ChildElement(h, "repo:ManagerReference", "wsa")
	info, err := m.hv.Host(ctx)
	if err == nil {
		h.CreateElement("repo:DomainType").SetText(info.DomainType)
		h.CreateElement("repo:Architecture").SetText(info.Arch)
		h.CreateElement("repo:CPUs").SetText(strconv.Itoa(info.CPUs))
		h.CreateElement("repo:MemoryTotalMiB").SetText(strconv.FormatInt(info.MemoryMiB, 10))
		h.CreateElement("repo:MemoryFreeMiB").SetText(strconv.FormatInt(info.FreeMiB, 10))
	}
	recs, _ := m.journal.all()
	h.CreateElement("repo:DeployedWorkspaces").SetText(strconv.Itoa(len(recs)))
	if err == nil && info.NetworksKnown {
		nets := h.CreateElement("repo:Networks")
		for _, n := range info.Networks {
			ne := nets.CreateElement("repo:Network")
			ne.CreateElement("repo:Name").SetText(n.Name)
			ne.CreateElement("repo:Active").SetText(strconv.FormatBool(n.Active))
		}
	}
	for _, c := range m.cache.list() {
		h.CreateElement("repo:CachedImage").SetText(c.Digest)
	}
	if err != nil {
		h.CreateElement("repo:Problem").SetText(err.Error())
	}
	body.CreateElement("repo:ValidFor").SetText(wsrf.FormatDuration(3 * m.cfg.AnnounceEvery))
	return body, err == nil
}
