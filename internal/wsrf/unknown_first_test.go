package wsrf_test

import (
	"context"
	"errors"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestMissingResourceIsUnknownWhateverItIsAsked: a request to a destroyed (or never
// created) resource gets ResourceUnknownFault whether or not the property it names is
// one of the document's, in every WS-ResourceProperties operation that names one
// (as QueryResourceProperties, and a declared name, already do): a client's first
// question is whether the resource is there, and an InvalidResourcePropertyQNameFault
// would send it fixing a name for a resource that is gone.
func TestMissingResourceIsUnknownWhateverItIsAsked(t *testing.T) {
	ctx := context.Background()
	h := newHome(t, storetest.Open(t), nil)
	if err := h.Create(ctx, "k1", []*etree.Element{prop(propA, "1")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Destroy(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	undeclared := wsa.QName{Space: "urn:t", Local: "nosuch"}
	keyName := wsa.QName{Space: "urn:t", Local: "Key"}
	d := dialect.WSRF12
	for _, key := range []string{"k1", "never"} {
		if err := h.SetProperties(ctx, key, []wsrf.Modification{{Kind: wsrf.Update, Property: undeclared, Values: []*etree.Element{prop(undeclared, "x")}}}); !errors.Is(err, errdefs.ErrResourceUnknown) {
			t.Errorf("SetResourceProperties of %s on %q: %v; want ResourceUnknownFault", undeclared, key, err)
		}
		for op, body := range map[string]string{
			"GetResourceProperty":           `<rp:GetResourceProperty xmlns:rp="` + d.RP + `" xmlns:t="urn:t">t:nosuch</rp:GetResourceProperty>`,
			"GetMultipleResourceProperties": `<rp:GetMultipleResourceProperties xmlns:rp="` + d.RP + `" xmlns:t="urn:t"><rp:ResourceProperty>t:nosuch</rp:ResourceProperty></rp:GetMultipleResourceProperties>`,
		} {
			doc := etree.NewDocument()
			if err := doc.ReadFromString(body); err != nil {
				t.Fatal(err)
			}
			k := prop(keyName, key)
			req := &container.Request{Service: &container.Service{Name: "WorkspaceService", Key: keyName}, Dialect: d,
				Envelope: &soap.Envelope{Headers: []*etree.Element{k}}, Payload: doc.Root()}
			handler := wsrf.GetResourceProperty(h)
			if op == "GetMultipleResourceProperties" {
				handler = wsrf.GetMultipleResourceProperties(h)
			}
			if _, err := handler(ctx, req); !errors.Is(err, errdefs.ErrResourceUnknown) {
				t.Errorf("%s of %s on %q: %v; want ResourceUnknownFault", op, undeclared, key, err)
			}
		}
	}
}
