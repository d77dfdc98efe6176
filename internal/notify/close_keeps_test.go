package notify

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
)

// Stopping the server while a consumer has messages queued must not end (destroy)
// its subscription: the failures are the broker's own shutdown, not the consumer's.
// README: "Subscriptions are kept in the database and survive a restart"; Close:
// "queued messages are dropped".
func TestCloseKeepsSubscriptionsWithMessagesQueued(t *testing.T) {
	db := openStore(t)
	release := make(chan struct{})
	var first sync.Once
	var afterClose atomic.Int32
	var closed atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Do(func() { <-release }) // a slow consumer: the queue fills behind it
		if closed.Load() {
			afterClose.Add(1)
		}
	}))
	defer hs.Close()
	d := dialect.GT4
	b1 := newBroker(t, db, func(c *Config) { c.MaxFailures = 5; c.Retries = []time.Duration{time.Second} })
	key := subscribe(t, b1, d, "ws1", consumerRef(d, hs.URL)+topicFilter(d, "vw:state"))
	prev := "shutdown"
	for i := 0; i < 60; i++ {
		next := []string{"running", "paused"}[i%2]
		b1.Changed("ws1", props(prev, "deployed"), props(next, "deployed"))
		prev = next
	}
	time.Sleep(100 * time.Millisecond) // the first message is at the consumer
	done := make(chan struct{})
	go func() { b1.Close(); close(done) }()
	time.Sleep(100 * time.Millisecond) // Close has begun
	closed.Store(true)
	close(release)
	<-done

	b2 := newBroker(t, db, nil)
	if b2.Count("ws1") != 1 || b2.lookup(key) == nil {
		t.Errorf("after a restart the subscription is gone: the broker's own shutdown ended it as if its consumer were dead")
	}
	if n := afterClose.Load(); n > 1 {
		t.Errorf("after Close began, the broker delivered %d more queued messages (Close: \"queued messages are dropped\")", n-1)
	}
}
