package repository

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// collectorGoroutines counts the goroutines inside the layer collector.
func collectorGoroutines() int {
	buf := make([]byte, 1<<22)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	c := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*Repository).collectLayers(") {
			c++
		}
	}
	return c
}

// TestMassExpiryRunsOneLayerCollector: many workspaces destroyed at once (their
// termination times passing together, or found passed at a start while the start-up
// sweep holds the layers) must not each queue a layer collector of their own: each
// would then pass over every workspace left, N passes of N, with N writers queued on
// the layers' lock ahead of every Clone. One collector runs, and the destroys that
// come meanwhile share its next pass; a layer they freed is still removed.
func TestMassExpiryRunsOneLayerCollector(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.create("src", "", "")
	c, err := f.r.Clone(ctx, src, "copy", "o", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	layers := f.chain(c.Key).Layers
	if len(layers) != 1 {
		t.Fatalf("precondition: the clone stands on %d layers, want 1", len(layers))
	}
	layer := f.r.layerPath(layers[0].ID)
	keys := []string{src, c.Key}
	for range 62 {
		keys = append(keys, f.create("", "", ""))
	}

	// As the start-up sweep does while the expiry scheduler destroys what expired.
	f.r.layersMu.RLock()
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			if err := f.r.Workspaces.Destroy(ctx, k); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond) // for the collectors the destroys started to reach the lock
	n := collectorGoroutines()
	f.r.layersMu.RUnlock()
	if n > 1 {
		t.Errorf("%d destroys left %d layer collectors queued, want at most 1", len(keys), n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for collectorGoroutines() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Stat(layer); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the layer no workspace stands on any more was not removed: %v", err)
	}
}
