package manager

import (
	"os"
	"slices"
	"syscall"
	"time"
)

// evictCache keeps the images the host cache alone holds within Config.CacheMaxBytes:
// the least recently used ones that no deployed workspace and no deploy in flight
// uses go first. An entry that is a hard link to the co-located pool's file is not
// counted and not evicted: removing it would free nothing.
func (m *Manager) evictCache() {
	budget := m.cfg.CacheMaxBytes
	if budget <= 0 {
		return
	}
	type entry struct {
		digest string
		size   int64
		used   time.Time
	}
	var own []entry
	var total int64
	for _, c := range m.cache.list() {
		fi, err := os.Stat(m.cache.path(c.Digest))
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			continue
		}
		used := fi.ModTime()
		if si, err := os.Stat(m.cache.path(c.Digest) + stampSuffix); err == nil {
			used = si.ModTime()
		}
		own = append(own, entry{c.Digest, fi.Size(), used})
		total += fi.Size()
	}
	if total <= budget {
		return
	}
	inUse, known := m.cacheInUse()
	if !known {
		m.log.Warn("the host cache is over its budget, but a deployed workspace's journal record does not say which cached images it uses (deployed by an earlier vws): nothing is evicted until it is undeployed",
			"bytes", total, "budget", budget)
		return
	}
	slices.SortFunc(own, func(a, b entry) int { return a.used.Compare(b.used) })
	for _, e := range own {
		if total <= budget {
			return
		}
		if inUse[e.digest] {
			continue
		}
		unlock, ok := m.cache.inflight.tryLock(e.digest)
		if !ok {
			continue // being staged or checked right now
		}
		if m.cache.pinned()[e.digest] { // a deploy took it since we looked
			unlock()
			continue
		}
		m.cache.drop(e.digest)
		unlock()
		total -= e.size
		m.metrics.cacheEvictions.Inc()
		m.log.Info("evicted from the host cache", "digest", e.digest, "bytes", e.size, "last used", e.used.UTC().Format(time.RFC3339))
	}
	m.log.Warn("the host cache is over its budget and every image left in it is in use", "bytes", total, "budget", budget)
}

// cacheInUse is the set of cache digests deployments and deploys in flight use;
// known is false when a deployed workspace's record does not list them.
func (m *Manager) cacheInUse() (inUse map[string]bool, known bool) {
	inUse = m.cache.pinned()
	recs, errs := m.journal.all()
	if len(errs) > 0 {
		return nil, false
	}
	for _, r := range recs {
		if r.Phase != phaseStaging && len(r.Shared) == 0 {
			return nil, false
		}
		for _, d := range r.Shared {
			inUse[d] = true
		}
	}
	return inUse, true
}
