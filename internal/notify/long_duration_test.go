package notify

import (
	"context"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
)

// A time beyond the site's maximum is granted the maximum whichever way it is asked
// for (README: "beyond 30 days, Subscribe and Renew grant the 30 days and say so in
// their answer"): a duration of 200 years as a dateTime in year 9999 is, not refused
// because it is longer than a duration the parser holds.
func TestLongDurationIsGrantedTheMaximum(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	b := newBroker(t, nil, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.MaxLifetime, c.DefaultLifetime = 48*time.Hour, time.Hour
	})
	d := dialect.WSRF12
	const max = "2026-12-02T12:00:00.000Z"
	for _, asked := range []string{"9999-12-31T00:00:00Z", "P200Y"} {
		out, err := b.Subscribe(exists("ws1"))(context.Background(), subscribeRequest(t, d, "ws1", consumerRef(d, "http://127.0.0.1:9/c")+
			`<wsnt:InitialTerminationTime>`+asked+`</wsnt:InitialTerminationTime>`))
		if err != nil {
			t.Errorf("Subscribe with InitialTerminationTime %s: %v", asked, err)
			continue
		}
		if got := out.FindElement("./TerminationTime"); got == nil || got.Text() != max {
			t.Errorf("Subscribe for %s granted %s, want the maximum %s", asked, xmlOf(out), max)
		}
		key := out.FindElement("./SubscriptionReference/ReferenceParameters/SubscriptionKey").Text()
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<wsnt:Renew xmlns:wsnt="` + d.BN + `"><wsnt:TerminationTime>` + asked + `</wsnt:TerminationTime></wsnt:Renew>`); err != nil {
			t.Fatal(err)
		}
		k := etree.NewElement("vwn:SubscriptionKey")
		k.CreateAttr("xmlns:vwn", vwsns.Notification)
		k.SetText(key)
		req := &container.Request{Service: &container.Service{Name: vwsns.SubscriptionManagerService, Key: vwsns.SubscriptionKey},
			Dialect: d, Envelope: &soap.Envelope{Headers: []*etree.Element{k}}, Payload: doc.Root()}
		out, err = b.renew(context.Background(), req)
		if err != nil {
			t.Errorf("Renew with TerminationTime %s: %v", asked, err)
			continue
		}
		if got := out.FindElement("./TerminationTime"); got == nil || got.Text() != max {
			t.Errorf("Renew for %s granted %s, want the maximum %s", asked, xmlOf(out), max)
		}
	}
}
