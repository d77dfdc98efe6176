package manager

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestAnImageInUseUntilNowIsNotTheLeastRecentlyUsed: a base a workspace ran on for a
// month, undeployed just now, was in use until now. Over its budget the cache must
// evict the image nobody has used since yesterday first, not the one a workspace
// stood on a minute ago (which its next deploy would fetch again whole).
func TestAnImageInUseUntilNowIsNotTheLeastRecentlyUsed(t *testing.T) {
	const mib = 1 << 20
	const k = "ws-month"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	hs, imgs := images(t, blob(2*mib, 'a'), blob(2*mib, 'b'), blob(2*mib, 'c'))
	m.repo = &repoClient{http: hs.Client()}
	m.metrics = newMetrics(nil)
	m.cfg.CacheMaxBytes = 5 * mib
	if err := os.MkdirAll(m.cache.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	age := func(digest string, d time.Duration) {
		at := time.Now().Add(-d)
		if err := os.Chtimes(m.cache.path(digest)+stampSuffix, at, at); err != nil {
			t.Fatal(err)
		}
	}
	long, idle, next := imgs[0], imgs[1], imgs[2]

	// Deployed a month ago on long; it ran until now.
	stageDone(t, m, long)
	age(long.Digest, 30*24*time.Hour)
	rec.Shared = []string{long.Digest}
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	// Another workspace's base, staged yesterday and unused since.
	stageDone(t, m, idle)
	age(idle.Digest, 24*time.Hour)

	// The month-long workspace is undeployed now.
	if err := m.removeLocal(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	// A new deploy's image takes the cache past its budget: one image goes.
	stageDone(t, m, next)
	got := cached(m)
	if !got[long.Digest] || got[idle.Digest] {
		t.Fatalf("the cache kept %v: it evicted the base a workspace used until a moment ago (kept: %v) rather than the one unused since yesterday (kept: %v)",
			got, got[long.Digest], got[idle.Digest])
	}
}
