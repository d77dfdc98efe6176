package wsrf

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/xpathdoc"
)

// QueryLimits bound every QueryResourceProperties evaluation. The step budget is what
// stops runaway expressions (deterministically, in milliseconds); the wall-clock bound
// is a backstop generous enough that a legitimate query over a large repository does
// not fail merely because the machine is busy.
var QueryLimits = func() xpathdoc.Limits {
	l := xpathdoc.DefaultLimits()
	l.Timeout = time.Second
	return l
}()

// QueryResourceProperties answers WS-RP QueryResourceProperties with XPath 1.0 over
// the resource's property document.
func QueryResourceProperties(p Properties) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		k, err := key(req)
		if err != nil {
			return nil, err
		}
		qe := req.Payload.SelectElement("QueryExpression")
		if qe == nil || qe.NamespaceURI() != req.Dialect.RP {
			return nil, fmt.Errorf("%w: QueryResourceProperties holds no {%s}QueryExpression", errdefs.ErrInvalidQuery, req.Dialect.RP)
		}
		if d := strings.TrimSpace(qe.SelectAttrValue("Dialect", "")); d != dialect.XPathDialect {
			return nil, fmt.Errorf("%w: %q", errdefs.ErrUnknownQueryDialect, d)
		}
		doc, err := p.Document(ctx, req.Dialect, k)
		if err != nil {
			return nil, err
		}
		ns := wsa.InScopeNamespaces(qe)
		delete(ns, "") // XPath 1.0: unprefixed names are in no namespace
		expr, err := queryText(qe)
		if err != nil {
			return nil, err
		}
		res, err := xpathdoc.Evaluate(ctx, doc, expr, ns, QueryLimits)
		if err != nil {
			return nil, err
		}
		out := response(req.Dialect.RP, "QueryResourcePropertiesResponse")
		if res.IsAtomic {
			out.SetText(xpathdoc.FormatAtomic(res.Atomic))
			return out, nil
		}
		afterText := false
		for _, n := range res.Nodes {
			switch n.Kind {
			case xpathdoc.ElementNode, xpathdoc.DocumentNode:
				out.AddChild(n.Element)
				afterText = false
			case xpathdoc.AttributeNode, xpathdoc.TextNode:
				// One value a line: run together, the values of several nodes (each
				// workspace's state) could not be told apart.
				if afterText {
					out.CreateText("\n")
				}
				out.CreateText(n.Text)
				afterText = true
			}
		}
		return out, nil
	}
}

// queryText is the expression a QueryExpression holds: all its text, comments left
// out as XML reads them. An element in it is refused: etree's Text stops there, and
// evaluating the part before it would answer another query than the one sent.
func queryText(qe *etree.Element) (string, error) {
	var b strings.Builder
	for _, t := range qe.Child {
		switch t := t.(type) {
		case *etree.CharData:
			b.WriteString(t.Data)
		case *etree.Element:
			return "", errdefs.WithAdvice(fmt.Errorf("%w: the QueryExpression holds an element <%s>", errdefs.ErrInvalidQuery, t.FullTag()),
				"send the XPath expression as the QueryExpression's text, with < written &lt;")
		}
	}
	return b.String(), nil
}
