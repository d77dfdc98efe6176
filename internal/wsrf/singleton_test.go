package wsrf

import (
	"context"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
)

// A costly property is built only when asked for, or for the whole document, where
// it stands where the schema puts it.
func TestSingletonCostlyProperties(t *testing.T) {
	ns := "urn:t"
	a, pool, v := wsa.QName{Space: ns, Local: "A"}, wsa.QName{Space: ns, Local: "Pool"}, wsa.QName{Space: ns, Local: "Version"}
	calls := 0
	s := &Singleton{
		DocName:  wsa.QName{Space: ns, Local: "Doc"},
		Declared: []wsa.QName{a, pool, v},
		Build: func(context.Context, *dialect.Dialect) ([]*etree.Element, error) {
			return []*etree.Element{TextProperty(a, "1"), TextProperty(v, "2")}, nil
		},
		Costly: map[wsa.QName]func(context.Context, *dialect.Dialect) ([]*etree.Element, error){
			pool: func(context.Context, *dialect.Dialect) ([]*etree.Element, error) {
				calls++
				return []*etree.Element{TextProperty(pool, "big")}, nil
			},
		},
		CostlyOrder: []wsa.QName{pool}, CostlyBefore: v,
	}
	ctx := context.Background()
	if got, err := s.Property(ctx, dialect.WSRF12, "", v); err != nil || len(got) != 1 || calls != 0 {
		t.Fatalf("Version: %v %v, costly built %d times", got, err, calls)
	}
	if got, err := s.Property(ctx, dialect.WSRF12, "", pool); err != nil || len(got) != 1 || got[0].Text() != "big" || calls != 1 {
		t.Fatalf("Pool: %v %v, costly built %d times", got, err, calls)
	}
	doc, err := s.Document(ctx, dialect.WSRF12, "")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, c := range doc.ChildElements() {
		order = append(order, c.Tag)
	}
	if got := strings.Join(order, ","); got != "A,Pool,Version,CurrentTime" {
		t.Fatalf("document order %s", got)
	}
}
