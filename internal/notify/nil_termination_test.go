package notify

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

const xsiNS = "http://www.w3.org/2001/XMLSchema-instance"

// WSN 1.3 declares Subscribe's InitialTerminationTime and Renew's TerminationTime
// nillable: xsi:nil asks for no termination time, which is beyond the site's maximum,
// so it is granted the maximum as any later time is (README: "beyond 30 days,
// Subscribe and Renew grant the 30 days and say so in their answer").
func TestNilTerminationTimeIsGrantedTheMaximum(t *testing.T) {
	// The Home's scheduler reads the clock on its own goroutine while the test
	// moves it on.
	var now atomic.Pointer[time.Time]
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now.Store(&start)
	b := newBroker(t, nil, func(c *Config) {
		c.Now = func() time.Time { return *now.Load() }
		c.MaxLifetime, c.DefaultLifetime = 48*time.Hour, time.Hour
	})
	d := dialect.WSRF12
	const max = "2026-12-02T12:00:00.000Z"
	out, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, d, "ws1", consumerRef(d, "http://127.0.0.1:9/c")+
		`<wsnt:InitialTerminationTime xmlns:xsi="`+xsiNS+`" xsi:nil="true"/>`))
	if err != nil {
		t.Fatalf("Subscribe with a nil InitialTerminationTime: %v", err)
	}
	if got := out.FindElement("./TerminationTime"); got == nil || got.Text() != max {
		t.Fatalf("Subscribe granted %s, want the maximum %s", xmlOf(out), max)
	}
	key := out.FindElement("./SubscriptionReference/ReferenceParameters/SubscriptionKey").Text()

	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<wsnt:Renew xmlns:wsnt="` + d.BN + `" xmlns:xsi="` + xsiNS + `"><wsnt:TerminationTime xsi:nil="true"/></wsnt:Renew>`); err != nil {
		t.Fatal(err)
	}
	k := etree.NewElement("vwn:SubscriptionKey")
	k.CreateAttr("xmlns:vwn", vwsns.Notification)
	k.SetText(key)
	req := &container.Request{Service: &container.Service{Name: vwsns.SubscriptionManagerService, Key: vwsns.SubscriptionKey},
		Dialect: d, Envelope: &soap.Envelope{Headers: []*etree.Element{k}}, Payload: doc.Root()}
	later := start.Add(time.Hour)
	now.Store(&later)
	out, err = b.renew(context.Background(), req)
	if err != nil {
		t.Fatalf("Renew with a nil TerminationTime: %v", err)
	}
	if got := out.FindElement("./TerminationTime"); got == nil || got.Text() != "2026-12-02T13:00:00.000Z" {
		t.Fatalf("Renew granted %s, want the maximum from now", xmlOf(out))
	}
	p, err := b.home.Property(context.Background(), d, key, wsa.QName{Space: d.RL, Local: "TerminationTime"})
	if err != nil || len(p) != 1 || p[0].Text() != "2026-12-02T13:00:00.000Z" {
		t.Fatalf("TerminationTime after Renew: %v %v", p, err)
	}
}
