package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
)

// A message its consumer failed is tried again a moment later; a subscriber who
// unsubscribed or paused meanwhile was answered that nothing more is sent, yet the
// retries went on posting the message.
func TestNoRetryAfterUnsubscribeOrPause(t *testing.T) {
	for _, how := range []string{"unsubscribe", "pause"} {
		t.Run(how, func(t *testing.T) {
			var posts atomic.Int32
			first := make(chan struct{}, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				posts.Add(1)
				select {
				case first <- struct{}{}:
				default:
				}
				w.WriteHeader(http.StatusInternalServerError)
			}))
			t.Cleanup(srv.Close)
			b := newBroker(t, nil, func(c *Config) {
				c.Retries = []time.Duration{300 * time.Millisecond, 300 * time.Millisecond}
			})
			d := dialect.WSRF12
			key := subscribe(t, b, d, "ws1", consumerRef(d, srv.URL)+topicFilter(d, "vw:state"))
			b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))
			select {
			case <-first:
			case <-time.After(5 * time.Second):
				t.Fatal("the consumer got no message")
			}
			var err error
			if how == "pause" {
				err = b.setPaused(context.Background(), key, true)
			} else {
				err = b.home.Destroy(context.Background(), key)
			}
			if err != nil {
				t.Fatal(err)
			}
			before := posts.Load()
			time.Sleep(time.Second)
			if n := posts.Load() - before; n != 0 {
				t.Fatalf("after %s the consumer was posted %d more times", how, n)
			}
		})
	}
}
