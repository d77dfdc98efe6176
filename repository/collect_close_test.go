package repository

import (
	"context"
	"testing"
	"time"
)

// TestCloseWaitsForTheLayerCollector: a destroy's layer collection runs in the
// background; Close must not return while it is still to run, or it runs on a
// database the server has closed since (and on files a next server now owns).
func TestCloseWaitsForTheLayerCollector(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	src := f.create("src", "", "")
	c, err := f.r.Clone(ctx, src, "copy", "o", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.r.layersMu.RLock() // the collector the destroy starts waits here
	if err := f.r.Workspaces.Destroy(ctx, c.Key); err != nil {
		f.r.layersMu.RUnlock()
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { f.r.Close(); close(closed) }()
	select {
	case <-closed:
		t.Error("Close returned while a layer collection was still to run")
	case <-time.After(300 * time.Millisecond):
	}
	f.r.layersMu.RUnlock()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return once the layer collection could run")
	}
	if n := collectorGoroutines(); n > 0 {
		t.Errorf("%d layer collectors still running after Close", n)
	}
}
