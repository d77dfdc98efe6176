package notify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
)

// One subscriber's deliveries are bounded by a count of its own; one kept for
// every subscriber ever seen would grow with each new DN for as long as vws runs.
// It is kept while deliveries of that subscriber use it, and only then.
func TestOwnerSlotsAreNotKeptForever(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		if r.URL.Path == "/slow" {
			<-release
		}
	}))
	t.Cleanup(srv.Close)
	b := newBroker(t, nil, nil)
	sub := func(owner, path string) *sub {
		return &sub{key: owner, owner: owner, dialect: dialect.WSRF12, consumer: &wsa.EPR{Version: wsa.V200508, Address: srv.URL + path}}
	}
	for i := range 300 {
		if err := b.post(sub(fmt.Sprintf("/O=Grid/CN=user %d", i), "/"), []byte("<x/>")); err != nil {
			t.Fatal(err)
		}
	}
	b.slots.mu.Lock()
	kept := len(b.slots.byOwner)
	b.slots.mu.Unlock()
	if kept != 0 {
		t.Errorf("%d subscribers' semaphores kept after their deliveries ended, want none", kept)
	}

	// The bound still holds for one subscriber whose deliveries come and go.
	var wg sync.WaitGroup
	for range 3 * maxOwnerDeliveries {
		wg.Add(1)
		go func() { defer wg.Done(); _ = b.post(sub("/CN=one", "/slow"), []byte("<x/>")) }()
	}
	for range 3 * maxOwnerDeliveries {
		release <- struct{}{}
	}
	wg.Wait()
	if m := most.Load(); m > maxOwnerDeliveries {
		t.Errorf("%d deliveries of one subscriber in flight at once, want at most %d", m, maxOwnerDeliveries)
	}
}
