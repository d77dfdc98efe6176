package manager

import (
	"context"
	"log/slog"
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
	own, enough, known := m.evictUnused("the host cache is over its budget", func(own int64) bool { return own <= budget },
		slog.Int64("budget", budget))
	if !enough && known {
		m.log.Warn("the host cache is over its budget and every image left in it is in use", "bytes", own, "budget", budget)
	}
}

// evictUnused drops the host cache's own entries (not pool hard links) that no
// deployed workspace and no deploy in flight uses, least recently used first, until
// enough, asked with the bytes the cache alone still holds, says so. Budget eviction
// and a deploy or serialize making room share it, so both spare exactly the same
// entries. It returns those bytes, whether enough was reached, and known: false when
// nothing could be evicted because a deployment's record does not list its images
// (logged here). why names the cause in the log (with attrs).
func (m *Manager) evictUnused(why string, enough func(own int64) bool, attrs ...slog.Attr) (own int64, ok, known bool) {
	type entry struct {
		digest string
		size   int64
		used   time.Time
		part   bool // an interrupted transfer's .part file
	}
	var entries []entry
	// Interrupted transfers first: useless until a deploy resumes them (one in flight
	// holds the digest's lock, one about to resume pins it), they otherwise hold
	// their bytes for a day, unseen by the budget and the room a deploy needs.
	for _, p := range m.cache.parts() {
		entries = append(entries, entry{p.Digest, p.Size, time.Time{}, true})
		own += p.Size
	}
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
		entries = append(entries, entry{c.Digest, fi.Size(), used, false})
		own += fi.Size()
	}
	if enough(own) {
		return own, true, true
	}
	inUse, known := m.cacheInUse()
	if !known {
		m.log.LogAttrs(context.Background(), slog.LevelWarn, why+", but a deployed workspace's journal record does not say which cached images it uses (deployed by an earlier vws): nothing is evicted until it is undeployed",
			append([]slog.Attr{slog.Int64("bytes", own)}, attrs...)...)
		return own, false, false
	}
	slices.SortFunc(entries, func(a, b entry) int { return a.used.Compare(b.used) }) // parts (zero time) first
	for _, e := range entries {
		if inUse[e.digest] && !e.part {
			continue
		}
		unlock, free := m.cache.inflight.tryLock(e.digest)
		if !free {
			continue // being staged or checked right now
		}
		if m.cache.pinned()[e.digest] { // a deploy took it since we looked
			unlock()
			continue
		}
		if e.part {
			os.Remove(m.cache.path(e.digest) + ".part")
			unlock()
			own -= e.size
			m.log.LogAttrs(context.Background(), slog.LevelInfo, "removed an interrupted transfer no deploy is resuming", append([]slog.Attr{
				slog.String("digest", e.digest), slog.Int64("bytes", e.size), slog.String("because", why)}, attrs...)...)
			if enough(own) {
				return own, true, true
			}
			continue
		}
		m.cache.drop(e.digest)
		unlock()
		own -= e.size
		m.metrics.cacheEvictions.Inc()
		m.log.LogAttrs(context.Background(), slog.LevelInfo, "evicted from the host cache", append([]slog.Attr{slog.String("digest", e.digest), slog.Int64("bytes", e.size),
			slog.String("last used", e.used.UTC().Format(time.RFC3339)), slog.String("because", why)}, attrs...)...)
		if enough(own) {
			return own, true, true
		}
	}
	return own, false, true
}

// cacheInUse is the set of cache digests deployments and deploys in flight use;
// known is false when a deployed workspace's record does not list them.
// usedByDeployed reports whether a workspace deployed here stands on the cache entry
// for digest (its record lists it), or whether that cannot be told.
func (m *Manager) usedByDeployed(digest string) bool {
	recs, errs := m.journal.all()
	if len(errs) > 0 {
		return true
	}
	for _, r := range recs {
		if r.Phase == phaseStaging {
			continue
		}
		if len(r.Shared) == 0 || slices.Contains(r.Shared, digest) {
			return true // listed, or deployed by an earlier vws that did not list them
		}
	}
	return false
}

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
