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

// TestSingletonHasNoTerminationTime: a singleton service (Factory, Repository,
// Manager) is never destroyed, and its property document declares CurrentTime but no
// TerminationTime. Asking for TerminationTime is asking for a property it does not
// have: InvalidResourcePropertyQNameFault (WS-RP), not an empty answer that reads as
// "no termination scheduled". CurrentTime is answered.
func TestSingletonHasNoTerminationTime(t *testing.T) {
	ns := "urn:t"
	a := wsa.QName{Space: ns, Local: "A"}
	s := &wsrf.Singleton{
		DocName:  wsa.QName{Space: ns, Local: "Doc"},
		Declared: []wsa.QName{a},
		Build: func(context.Context, *dialect.Dialect) ([]*etree.Element, error) {
			return []*etree.Element{wsrf.TextProperty(a, "1")}, nil
		},
	}
	for _, d := range dialect.Dialects {
		ask := func(local string) (*etree.Element, error) {
			doc := etree.NewDocument()
			if err := doc.ReadFromString(`<rp:GetResourceProperty xmlns:rp="` + d.RP + `" xmlns:rl="` + d.RL + `">rl:` + local + `</rp:GetResourceProperty>`); err != nil {
				t.Fatal(err)
			}
			req := &container.Request{Service: &container.Service{Name: "WorkspaceFactoryService"}, Dialect: d, Payload: doc.Root()}
			return wsrf.GetResourceProperty(s)(context.Background(), req)
		}
		if out, err := ask("CurrentTime"); err != nil || len(out.ChildElements()) != 1 {
			t.Errorf("%s: CurrentTime: %v", d.Name, err)
		}
		out, err := ask("TerminationTime")
		if !errors.Is(err, errdefs.ErrInvalidQName) {
			n := -1
			if out != nil {
				n = len(out.ChildElements())
			}
			t.Errorf("%s: TerminationTime of a singleton answered %d elements, error %v; want InvalidResourcePropertyQName", d.Name, n, err)
		}
	}
}
