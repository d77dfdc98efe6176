package notify

import (
	"context"
	"errors"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestSubscribeWithARepeatedPartIsRefused: a Subscribe holds one ConsumerReference and
// at most one topic (GT4's TopicExpression, WSN 1.3's Filter) and InitialTerminationTime
// (b-2.xsd; the 2004/06 draft alike). With two, the last was taken and the first
// silently dropped: messages went to a consumer, or about a topic, other than the one
// the subscriber named first, and it was told it was subscribed. It is refused, and
// nothing is subscribed.
func TestSubscribeWithARepeatedPartIsRefused(t *testing.T) {
	gt4, w := dialect.GT4, dialect.WSRF12
	cases := []struct {
		name  string
		d     *dialect.Dialect
		inner string
	}{
		{"two consumers", gt4, consumerRef(gt4, "http://127.0.0.1:9/mine") + consumerRef(gt4, "http://127.0.0.1:9/other") + topicFilter(gt4, "vw:state")},
		{"two consumers", w, consumerRef(w, "http://127.0.0.1:9/mine") + consumerRef(w, "http://127.0.0.1:9/other")},
		{"two topic expressions", gt4, consumerRef(gt4, "http://127.0.0.1:9/c") + topicFilter(gt4, "vw:state") + topicFilter(gt4, "vw:deployment")},
		{"two filters", w, consumerRef(w, "http://127.0.0.1:9/c") + topicFilter(w, "vw:state") + topicFilter(w, "vw:deployment")},
		{"two termination times", w, consumerRef(w, "http://127.0.0.1:9/c") +
			`<wsnt:InitialTerminationTime>PT10M</wsnt:InitialTerminationTime><wsnt:InitialTerminationTime>PT20H</wsnt:InitialTerminationTime>`},
	}
	b := newBroker(t, nil, nil)
	for _, tc := range cases {
		t.Run(tc.d.Name+"/"+tc.name, func(t *testing.T) {
			_, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, tc.d, "ws1", tc.inner))
			if !errors.Is(err, errdefs.ErrSubscribe) {
				t.Errorf("got %v, want SubscribeCreationFailedFault", err)
			}
			if n := len(b.home.Keys()); n != 0 {
				t.Fatalf("a Subscribe naming two of a part left %d subscriptions", n)
			}
		})
	}
}

// TestRenewWithTwoTerminationTimesIsRefused: WSN 1.3 Renew holds one TerminationTime;
// with two, the last was granted and the first dropped. It is refused, and the
// subscription keeps its termination time.
func TestRenewWithTwoTerminationTimesIsRefused(t *testing.T) {
	b := newBroker(t, nil, nil)
	d := dialect.WSRF12
	key := subscribe(t, b, d, "ws1", consumerRef(d, "http://127.0.0.1:9/c"))
	termination := func() string {
		p, err := b.home.Property(context.Background(), d, key, wsa.QName{Space: d.RL, Local: "TerminationTime"})
		if err != nil || len(p) != 1 {
			t.Fatalf("TerminationTime: %v %v", p, err)
		}
		return p[0].Text()
	}
	was := termination()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<wsnt:Renew xmlns:wsnt="` + d.BN + `"><wsnt:TerminationTime>PT10M</wsnt:TerminationTime>` +
		`<wsnt:TerminationTime>PT20H</wsnt:TerminationTime></wsnt:Renew>`); err != nil {
		t.Fatal(err)
	}
	k := etree.NewElement("vwn:SubscriptionKey")
	k.CreateAttr("xmlns:vwn", vwsns.Notification)
	k.SetText(key)
	req := &container.Request{Service: &container.Service{Name: vwsns.SubscriptionManagerService, Key: vwsns.SubscriptionKey},
		Dialect: d, Envelope: &soap.Envelope{Headers: []*etree.Element{k}}, Payload: doc.Root()}
	if _, err := b.renew(context.Background(), req); !errors.Is(err, errdefs.ErrUnacceptableTermTime) {
		t.Errorf("got %v, want UnacceptableTerminationTimeFault", err)
	}
	if now := termination(); now != was {
		t.Errorf("TerminationTime moved from %s to %s", was, now)
	}
}
