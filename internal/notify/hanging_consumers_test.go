package notify

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
)

// A few subscribers whose consumers take connections but never answer hold their
// deliveries' slots for the whole delivery timeout: they must not hold every slot,
// leaving another subscriber's message to wait. README: a subscriber's deliveries
// beyond its first go only while fewer than 8 are in flight; four hanging
// subscribers hold at most 4 + 4 + one each for the other two = 10.
func TestConsumersThatNeverAnswerLeaveSlotsForOthers(t *testing.T) {
	hanging := make(chan string, 64)
	good := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/good" {
			good <- struct{}{}
			return
		}
		hanging <- r.URL.Path
		<-release // never answers while the test runs
	}))
	t.Cleanup(srv.Close)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { close(release) })
	b := newBroker(t, nil, func(c *Config) { c.DeliveryTimeout = time.Minute })
	sub := func(owner, path string) *sub {
		return &sub{key: owner, owner: owner, dialect: dialect.WSRF12, consumer: &wsa.EPR{Version: wsa.V200508, Address: srv.URL + path}}
	}
	for i := range 4 {
		for range maxOwnerDeliveries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = b.post(sub(fmt.Sprintf("/O=Grid/CN=hanging %d", i), "/hang"), []byte("<x/>"))
			}()
		}
	}
	inFlight := 0
	for inFlight < 8 { // both before and after the fix, at least this many are let through
		select {
		case <-hanging:
			inFlight++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d deliveries reached the consumers that never answer", inFlight)
		}
	}
	wg.Add(1)
	errc := make(chan error, 1)
	go func() {
		defer wg.Done()
		errc <- b.post(sub("/O=Grid/CN=alice", "/good"), []byte("<x/>"))
	}()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case <-hanging:
			if inFlight++; inFlight == maxConcurrentDeliveries {
				t.Fatalf("4 subscribers whose consumers never answer hold all %d delivery slots: alice's message waits for one of them to time out (1m)", inFlight)
			}
		case <-good:
			if err := <-errc; err != nil {
				t.Fatalf("alice's delivery: %v", err)
			}
			if inFlight > 10 {
				t.Fatalf("%d deliveries of 4 subscribers whose consumers never answer in flight at once, want at most 10", inFlight)
			}
			return
		case <-deadline:
			t.Fatalf("alice's message waited 20 s behind %d deliveries to consumers that never answer", inFlight)
		}
	}
}
