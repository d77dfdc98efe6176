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

// A termination time beyond the home's maximum lifetime is refused with
// TerminationTimeChangeRejectedFault whichever way it is asked for (README, as
// Subscribe and Renew grant the maximum for it): a RequestedLifetimeDuration of 200
// years as a RequestedTerminationTime in year 9999 is, not as a malformed request.
func TestLongLifetimeDurationIsBeyondTheMaximum(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	clock := func() time.Time { return now }
	h, err := wsrf.NewHome(ctx, wsrf.HomeConfig{Service: "test", Document: docName, Declared: []wsa.QName{propA},
		Store: storetest.Open(t), Now: clock, MaxLifetime: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	keyQ := wsa.QName{Space: "urn:t", Local: "Key"}
	set := wsrf.SetTerminationTime(h, clock)
	d := dialect.WSRF12
	for _, body := range []string{
		`<wsrl:RequestedTerminationTime>9999-12-31T00:00:00Z</wsrl:RequestedTerminationTime>`,
		`<wsrl:RequestedLifetimeDuration>P200Y</wsrl:RequestedLifetimeDuration>`,
	} {
		key := "k" + body[6:30]
		was := now.Add(time.Hour)
		if err := h.Create(ctx, key, nil, &was); err != nil {
			t.Fatal(err)
		}
		hdr := etree.NewElement("t:Key")
		hdr.CreateAttr("xmlns:t", keyQ.Space)
		hdr.SetText(key)
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<wsrl:SetTerminationTime xmlns:wsrl="` + d.RL + `">` + body + `</wsrl:SetTerminationTime>`); err != nil {
			t.Fatal(err)
		}
		req := &container.Request{Service: &container.Service{Key: keyQ}, Dialect: d,
			Envelope: &soap.Envelope{Headers: []*etree.Element{hdr}}, Payload: doc.Root()}
		if _, err := set(ctx, req); !errors.Is(err, errdefs.ErrTermTimeRejected) {
			t.Errorf("%s: err = %v; want TerminationTimeChangeRejectedFault", body, err)
		}
	}
}
