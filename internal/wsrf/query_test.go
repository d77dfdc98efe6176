package wsrf_test

import (
	"context"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestQueryKeepsTextResultsApart: a query whose result is several text or attribute
// nodes (each workspace's state in the Repository's document, say) answers each
// value so that the caller can tell them apart — not "runningpaused".
func TestQueryKeepsTextResultsApart(t *testing.T) {
	ns := "urn:t"
	state := wsa.QName{Space: ns, Local: "State"}
	s := &wsrf.Singleton{
		DocName:  wsa.QName{Space: ns, Local: "Doc"},
		Declared: []wsa.QName{state},
		Build: func(context.Context, *dialect.Dialect) ([]*etree.Element, error) {
			var props []*etree.Element
			for _, v := range []string{"running", "paused"} {
				p := wsrf.TextProperty(state, v)
				p.CreateAttr("value", v)
				props = append(props, p)
			}
			return props, nil
		},
	}
	for _, expr := range []string{"/*/t:State/text()", "/*/t:State/@value"} {
		for _, d := range dialect.Dialects {
			doc := etree.NewDocument()
			if err := doc.ReadFromString(`<rp:QueryResourceProperties xmlns:rp="` + d.RP + `" xmlns:t="` + ns + `">` +
				`<rp:QueryExpression Dialect="` + dialect.XPathDialect + `">` + expr + `</rp:QueryExpression></rp:QueryResourceProperties>`); err != nil {
				t.Fatal(err)
			}
			req := &container.Request{Service: &container.Service{Name: "WorkspaceRepositoryService"}, Dialect: d, Payload: doc.Root()}
			out, err := wsrf.QueryResourceProperties(s)(context.Background(), req)
			if err != nil {
				t.Fatalf("%s %s: %v", d.Name, expr, err)
			}
			if got := strings.Fields(out.Text()); len(got) != 2 || got[0] != "running" || got[1] != "paused" {
				t.Errorf("%s %s answered %q: the two values cannot be told apart", d.Name, expr, out.Text())
			}
		}
	}
}

// TestQueryExpressionIsItsWholeText: the expression is the QueryExpression's whole
// text, as XML reads it (a comment or a CDATA section splits the text, not the
// expression), never its first piece: "/*<!--c-->/t:B" asks for B, not the whole
// document. An element inside it is no XPath: refused, not skipped.
func TestQueryExpressionIsItsWholeText(t *testing.T) {
	ns := "urn:t"
	a, b := wsa.QName{Space: ns, Local: "A"}, wsa.QName{Space: ns, Local: "B"}
	s := &wsrf.Singleton{
		DocName:  wsa.QName{Space: ns, Local: "Doc"},
		Declared: []wsa.QName{a, b},
		Build: func(context.Context, *dialect.Dialect) ([]*etree.Element, error) {
			return []*etree.Element{wsrf.TextProperty(a, "first"), wsrf.TextProperty(b, "second")}, nil
		},
	}
	query := func(d *dialect.Dialect, inner string) (*etree.Element, error) {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(`<rp:QueryResourceProperties xmlns:rp="` + d.RP + `" xmlns:t="` + ns + `">` +
			`<rp:QueryExpression Dialect="` + dialect.XPathDialect + `">` + inner + `</rp:QueryExpression></rp:QueryResourceProperties>`); err != nil {
			t.Fatal(err)
		}
		req := &container.Request{Service: &container.Service{Name: "WorkspaceRepositoryService"}, Dialect: d, Payload: doc.Root()}
		return wsrf.QueryResourceProperties(s)(context.Background(), req)
	}
	for _, d := range dialect.Dialects {
		for _, inner := range []string{`/*<!--c-->/t:B/text()`, `/*/<![CDATA[t:B]]>/text()`, `string(/*/t:B)<!---->`} {
			out, err := query(d, inner)
			if err != nil {
				t.Fatalf("%s %s: %v", d.Name, inner, err)
			}
			if got := out.Text(); got != "second" {
				t.Errorf("%s %s answered %q, want B's value \"second\"", d.Name, inner, got)
			}
		}
		if out, err := query(d, `/*<t:x/>/t:B`); err == nil {
			t.Errorf("%s: a QueryExpression holding an element was evaluated: %v", d.Name, out.Text())
		}
	}
}
