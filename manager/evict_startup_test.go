package manager

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"
)

// TestCacheTrimmedAtStartUp: a manager restarted with a lower --cache-max keeps its
// cache within it from the start, not from the next staging or undeploy, evicting
// the images used longest ago and never one a deployed workspace stands on.
func TestCacheTrimmedAtStartUp(t *testing.T) {
	const mib = 1 << 20
	hs, imgs := images(t, blob(2*mib, 'a'), blob(2*mib, 'b'), blob(2*mib, 'c'))
	a, b, c := imgs[0], imgs[1], imgs[2]
	old := evictingManager(t, hs, 0) // the last run had no budget
	for _, img := range imgs {
		stageDone(t, old, img)
		time.Sleep(10 * time.Millisecond) // distinct last-use times: a is the oldest
	}
	if err := old.journal.put(&record{Key: "ws1", Phase: phaseDeployed, State: stateShutdown, Shared: []string{a.Digest}}); err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Dir: filepath.Dir(old.cache.dir), Host: "h", Repositories: []string{hs.URL}, HTTP: hs.Client(), AnnounceEvery: -1, ReconcileEvery: time.Hour,
		CacheMaxBytes: 4 * mib, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, silentHV{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	deadline := time.Now().Add(3 * time.Second)
	for cached(m)[b.Digest] && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := cached(m); !got[a.Digest] || got[b.Digest] || !got[c.Digest] {
		t.Errorf("3 s after a restart with a 4 MiB budget the 6 MiB cache holds a %v, b %v, c %v; want a (deployed) and c (used last), b evicted",
			got[a.Digest], got[b.Digest], got[c.Digest])
	}
}
