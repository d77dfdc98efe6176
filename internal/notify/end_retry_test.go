package notify

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// flakyStore is a store whose deletes fail while failing is set (a database that is
// briefly locked or unreachable).
type flakyStore struct {
	wsrf.Store
	failing atomic.Bool
}

func (f *flakyStore) DeleteResource(ctx context.Context, service, key string) error {
	if f.failing.Load() {
		return errors.New("database is locked")
	}
	return f.Store.DeleteResource(ctx, service, key)
}

// When the broker decides to end a subscription (its consumer took nothing) and the
// end fails for a moment, the subscription stays — but its sender has quit with
// "sending" still set, so nothing is ever sent to it again, nor is it ever ended: it
// lives on (the subscriber renews it) and its queue fills to MaxQueue, while its
// consumer, back up, is sent nothing.
func TestAFailedEndIsTriedAgain(t *testing.T) {
	c := newConsumer(t)
	c.status = http.StatusServiceUnavailable
	st := &flakyStore{Store: openStore(t)}
	b, err := New(context.Background(), Config{Topics: []wsa.QName{propState, propDeployment}, Retries: []time.Duration{}, MaxFailures: 2, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	d := dialect.GT4
	key := subscribe(t, b, d, "ws1", consumerRef(d, c.URL)+topicFilter(d, "vw:state"))
	st.failing.Store(true)
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	b.Changed("ws1", props("paused", "deployed"), props("running", "deployed"))
	time.Sleep(500 * time.Millisecond) // two failures; the end is tried, and fails
	st.failing.Store(false)
	c.mu.Lock()
	c.status = 0 // the consumer is back
	c.mu.Unlock()

	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if len(c.messages()) > 0 || b.lookup(key) == nil {
			return // delivered, or ended at last: either is sound
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := b.lookup(key)
	s.mu.Lock()
	q, sending := len(s.queue), s.sending
	s.mu.Unlock()
	t.Fatalf("the subscription is live but dead: nothing delivered to its consumer (back up), not ended; %d messages queued, sending=%v with no sender", q, sending)
}
