package notify

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/wssec"
)

// A Notify the consumer took, but whose answer the producer did not get (the
// connection cut, or the consumer slower than the delivery timeout), is sent again,
// the same signed bytes. The consumer refused that as a replay (HTTP 403), so the
// producer counted the message lost although it was delivered, and ended the
// subscription of a consumer that had taken every message as one that is gone. The
// consumer now acknowledges a Notify it already took, without delivering it twice.
func TestARetriedNotifyTheConsumerTookIsAcknowledged(t *testing.T) {
	_, host, trust := signingSite(t)
	var delivered atomic.Int32
	consumer := &Consumer{Token: "t1", Deliver: func(Notification) { delivered.Add(1) },
		Verifier: wssec.NewVerifier(func(chain []*x509.Certificate) (identity.Identity, error) { return trust.Verify(chain, time.Now()) })}
	var posts atomic.Int32
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if posts.Add(1) == 1 {
			// The consumer takes the first post, and its answer is lost.
			consumer.ServeHTTP(httptest.NewRecorder(), r)
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		consumer.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)

	b := newBroker(t, nil, func(cfg *Config) {
		cfg.Signer = &wssec.Signer{Key: host.Key, Chain: host.FullChain()}
		cfg.Retries = []time.Duration{50 * time.Millisecond}
		cfg.MaxFailures = 1
	})
	d := dialect.WSRF12
	key := subscribe(t, b, d, "ws1", consumerRefOf(d, consumer.Reference(d.WSA, hs.URL))+topicFilter(d, "vw:state"))
	b.Changed("ws1", props("running", "deployed"), props("paused", "deployed"))

	deadline := time.Now().Add(5 * time.Second)
	for posts.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the answer to the retry, and what the broker makes of it
	if n := posts.Load(); n != 2 {
		t.Fatalf("the consumer was posted %d times, want 2 (the message, its retry)", n)
	}
	if n := delivered.Load(); n != 1 {
		t.Fatalf("the consumer delivered the message %d times, want once", n)
	}
	if _, err := b.home.Document(context.Background(), d, key); errors.Is(err, errdefs.ErrResourceUnknown) {
		t.Fatal("the subscription was ended as if its consumer were gone, though it took the message")
	} else if err != nil {
		t.Fatal(err)
	}
}
