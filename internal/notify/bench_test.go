package notify

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
)

// BenchmarkNotify: from a committed change (Changed) to the consumer holding the
// message, beside the raw operation, an HTTP POST of the same Notify envelope to the
// same consumer, in the same run.
func BenchmarkNotify(b *testing.B) {
	got := make(chan struct{}, 1)
	consumer := &Consumer{Token: "bench", Deliver: func(Notification) { got <- struct{}{} }}
	hs := httptest.NewServer(consumer)
	defer hs.Close()
	br, err := New(b.Context(), Config{Topics: []wsa.QName{propState, propDeployment}, Retries: []time.Duration{}})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	d := dialect.WSRF12
	req := subscribeRequest(b, d, "ws1", consumerRefOf(d, consumer.Reference(d.WSA, hs.URL))+topicFilter(d, "vw:state"))
	if _, err := br.Subscribe(exists("ws1"))(b.Context(), req); err != nil {
		b.Fatal(err)
	}
	s := br.of("ws1")[0]
	body, err := br.envelope(s, message{topic: propState, old: props("running", "deployed")[:1], new: props("paused", "deployed")[:1]})
	if err != nil {
		b.Fatal(err)
	}
	states := [2][]*etree.Element{props("running", "deployed"), props("paused", "deployed")}

	b.Run("vws", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			br.Changed("ws1", states[i%2], states[(i+1)%2])
			<-got
		}
	})
	b.Run("raw-post", func(b *testing.B) {
		for b.Loop() {
			resp, err := http.Post(hs.URL, "text/xml; charset=utf-8", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			<-got
		}
	})
}
