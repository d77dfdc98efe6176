package wsrf_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestSetTerminationTimeAsksForOneTime: SetTerminationTime holds a choice of one
// RequestedTerminationTime or (rl-2) one RequestedLifetimeDuration. A request holding
// two of them asks for two termination times; the first was taken and the other
// silently dropped, the resource's end moved to a time its caller may not have meant
// (an hour where ten minutes were asked for, or the reverse). It is refused with
// UnableToSetTerminationTimeFault, and the termination time stays as it was.
func TestSetTerminationTimeAsksForOneTime(t *testing.T) {
	ctx := context.Background()
	h, now, set := setTerminationHome(t, 0)
	inHour := wsrf.FormatTime(now.Add(time.Hour))
	for _, c := range []struct {
		d    *dialect.Dialect
		name string
		body string
	}{
		{dialect.WSRF12, "time and duration", `<wsrl:RequestedTerminationTime>` + inHour + `</wsrl:RequestedTerminationTime><wsrl:RequestedLifetimeDuration>PT10M</wsrl:RequestedLifetimeDuration>`},
		{dialect.WSRF12, "duration and time", `<wsrl:RequestedLifetimeDuration>PT10M</wsrl:RequestedLifetimeDuration><wsrl:RequestedTerminationTime>` + inHour + `</wsrl:RequestedTerminationTime>`},
		{dialect.WSRF12, "two times", `<wsrl:RequestedTerminationTime>` + inHour + `</wsrl:RequestedTerminationTime><wsrl:RequestedTerminationTime xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>`},
		{dialect.GT4, "two times", `<wsrl:RequestedTerminationTime>` + inHour + `</wsrl:RequestedTerminationTime><wsrl:RequestedTerminationTime>` + wsrf.FormatTime(now.Add(10*time.Minute)) + `</wsrl:RequestedTerminationTime>`},
	} {
		t.Run(c.d.Name+"/"+c.name, func(t *testing.T) {
			key := c.d.Name + c.name
			was := now.Add(2 * time.Hour)
			if err := h.Create(ctx, key, nil, &was); err != nil {
				t.Fatal(err)
			}
			err := set(c.d, key, c.body)
			if !errors.Is(err, errdefs.ErrUnableToSetTermTime) {
				t.Errorf("err = %v; want UnableToSetTerminationTimeFault", err)
			}
			vals, _ := h.Property(ctx, c.d, key, wsa.QName{Space: c.d.RL, Local: "TerminationTime"})
			if len(vals) != 1 || vals[0].Text() != wsrf.FormatTime(was) {
				got := "none"
				if len(vals) == 1 {
					got = vals[0].Text()
				}
				t.Errorf("TerminationTime is now %s; want it left at %s", got, wsrf.FormatTime(was))
			}
		})
	}
}

// setTerminationHome is a home on a clock stopped at now, granting at most maxLifetime
// (0: no bound), and set, which sends its SetTerminationTime handler a request of
// dialect d holding body for resource key.
func setTerminationHome(t *testing.T, maxLifetime time.Duration) (h *wsrf.Home, now time.Time, set func(d *dialect.Dialect, key, body string) error) {
	t.Helper()
	ctx := context.Background()
	now = time.Now().UTC().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	h, err := wsrf.NewHome(ctx, wsrf.HomeConfig{Service: "test", Document: docName, Declared: []wsa.QName{propA},
		Store: storetest.Open(t), Now: clock, MaxLifetime: maxLifetime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	keyQ := wsa.QName{Space: "urn:t", Local: "Key"}
	handler := wsrf.SetTerminationTime(h, clock)
	return h, now, func(d *dialect.Dialect, key, body string) error {
		hdr := etree.NewElement("t:Key")
		hdr.CreateAttr("xmlns:t", keyQ.Space)
		hdr.SetText(key)
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<wsrl:SetTerminationTime xmlns:wsrl="` + d.RL + `">` + body + `</wsrl:SetTerminationTime>`); err != nil {
			t.Fatal(err)
		}
		_, err := handler(ctx, &container.Request{Service: &container.Service{Key: keyQ}, Dialect: d,
			Envelope: &soap.Envelope{Headers: []*etree.Element{hdr}}, Payload: doc.Root()})
		return err
	}
}
