package wsrf_test

import (
	"context"
	"errors"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestFixedPropertyOfTheOtherDialectIsUnknown: a property Fixed renders per dialect
// (GT 4.0's wsnt:Topic, WSN 1.3's wsnt:TopicExpression) asked for under the other
// dialect's namespace is not in the caller's document, as the other dialect's
// CurrentTime and TerminationTime are not: InvalidResourcePropertyQNameFault, not an
// empty answer that reads as "no topics".
func TestFixedPropertyOfTheOtherDialectIsUnknown(t *testing.T) {
	topic := func(d *dialect.Dialect) []*etree.Element {
		name := "TopicExpression"
		if d == dialect.GT4 {
			name = "Topic"
		}
		el := etree.NewElement("wsnt:" + name)
		el.CreateAttr("xmlns:wsnt", d.BN)
		el.SetText("x")
		return []*etree.Element{el}
	}
	h, err := wsrf.NewHome(context.Background(), wsrf.HomeConfig{Service: "test", Document: docName, Declared: []wsa.QName{propA}, Fixed: topic})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if err := h.Create(context.Background(), "", []*etree.Element{prop(propA, "1")}, nil); err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, o := range dialect.Dialects {
			local := topic(o)[0].Tag
			doc := etree.NewDocument()
			if err := doc.ReadFromString(`<rp:GetResourceProperty xmlns:rp="` + d.RP + `" xmlns:n="` + o.BN + `">n:` + local + `</rp:GetResourceProperty>`); err != nil {
				t.Fatal(err)
			}
			req := &container.Request{Service: &container.Service{Name: "WorkspaceService"}, Dialect: d, Payload: doc.Root()}
			out, err := wsrf.GetResourceProperty(h)(context.Background(), req)
			if o == d {
				if err != nil || len(out.ChildElements()) != 1 {
					t.Errorf("%s caller asking for its own %s: %v, %d elements", d.Name, local, err, len(out.ChildElements()))
				}
				continue
			}
			if !errors.Is(err, errdefs.ErrInvalidQName) {
				n := -1
				if out != nil {
					n = len(out.ChildElements())
				}
				t.Errorf("%s caller asking for %s's {%s}%s: err %v, %d elements; want InvalidResourcePropertyQNameFault", d.Name, o.Name, o.BN, local, err, n)
			}
		}
	}
}
