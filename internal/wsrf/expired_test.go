package wsrf_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// failingDeletes is a store whose deletes fail while failing is set (a locked database).
type failingDeletes struct {
	wsrf.Store
	failing atomic.Bool
}

func (f *failingDeletes) DeleteResource(ctx context.Context, service, key string) error {
	if f.failing.Load() {
		return errors.New("database is locked")
	}
	return f.Store.DeleteResource(ctx, service, key)
}

// A resource past its termination time is destroyed as far as WS-ResourceLifetime
// goes, whether or not the expiry scheduler has removed it yet (its destroy failed and
// is retried, or it has not run since a start): it must not be renewed back to life,
// read or changed; only destroying it still reaches it.
func TestExpiredResourceIsUnknown(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	st := &failingDeletes{Store: storetest.Open(t)}
	st.failing.Store(true)
	h, err := wsrf.NewHome(context.Background(), wsrf.HomeConfig{
		Service: "test", Document: docName, Declared: []wsa.QName{propA, propB}, Store: st, Now: clock,
		Writable: func(*wsrf.Snapshot, wsa.QName) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	ctx := context.Background()
	term := now.Add(time.Hour)
	if err := h.Create(ctx, "k1", []*etree.Element{prop(propA, "1")}, &term); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	time.Sleep(1500 * time.Millisecond) // the expiry tries, and fails to delete the record

	later := clock().Add(time.Hour)
	if got, err := h.SetTerminationTime(ctx, "k1", &later); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("SetTerminationTime on a resource an hour past its termination time: got %v, %v; want ResourceUnknown", got, err)
	}
	if _, err := h.Property(ctx, dialect.WSRF12, "k1", propA); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Property: %v; want ResourceUnknown", err)
	}
	if _, err := h.Document(ctx, dialect.WSRF12, "k1"); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("Document: %v; want ResourceUnknown", err)
	}
	if err := h.SetProperties(ctx, "k1", []wsrf.Modification{{Kind: wsrf.Insert, Property: propB, Values: []*etree.Element{prop(propB, "2")}}}); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("SetProperties: %v; want ResourceUnknown", err)
	}
	if err := h.View(ctx, "k1", func(*wsrf.Snapshot) error { return nil }); !errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Errorf("View: %v; want ResourceUnknown", err)
	}
	// What destroys it still reaches it.
	if err := h.Destroy(ctx, "k1"); !errors.Is(err, errdefs.ErrNotDestroyed) {
		t.Errorf("Destroy while the store refuses deletes: %v; want NotDestroyed", err)
	}
	st.failing.Store(false)
	if err := h.Destroy(ctx, "k1"); err != nil {
		t.Errorf("Destroy: %v", err)
	}
}
