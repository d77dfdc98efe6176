package wsrf

import (
	"context"
	"fmt"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsa"
)

// Singleton is a service that is itself its only resource (Factory, Repository,
// Manager): no key, no lifetime, properties computed on every read.
type Singleton struct {
	DocName  wsa.QName
	Declared []wsa.QName
	// Build returns the current property elements, each declaring its namespace.
	Build func(ctx context.Context, d *dialect.Dialect) ([]*etree.Element, error)
	// Costly are properties built only when asked for (a GetResourceProperty of
	// another property does not pay for them).
	Costly map[wsa.QName]func(ctx context.Context, d *dialect.Dialect) ([]*etree.Element, error)
	// CostlyOrder is the order of Costly's properties in the document, where they
	// stand before the first of Build's properties named CostlyBefore (at the end
	// when there is none), as the document's schema orders them.
	CostlyOrder  []wsa.QName
	CostlyBefore wsa.QName
	Now          func() time.Time
}

// Declares implements Properties.
func (s *Singleton) Declares(q wsa.QName) bool {
	for _, d := range s.Declared {
		if d == q {
			return true
		}
	}
	return false
}

// props builds the properties; only (when set) restricts the costly ones built.
func (s *Singleton) props(ctx context.Context, d *dialect.Dialect, key string, only *wsa.QName) ([]*etree.Element, error) {
	if err := noKey(key); err != nil {
		return nil, err
	}
	if only != nil {
		if build, ok := s.Costly[*only]; ok {
			return build(ctx, d)
		}
	}
	props, err := s.Build(ctx, d)
	if err != nil {
		return nil, err
	}
	if only == nil && len(s.CostlyOrder) > 0 {
		var costly []*etree.Element
		for _, q := range s.CostlyOrder {
			more, err := s.Costly[q](ctx, d)
			if err != nil {
				return nil, err
			}
			costly = append(costly, more...)
		}
		at := len(props)
		for i, p := range props {
			if p.Tag == s.CostlyBefore.Local && p.NamespaceURI() == s.CostlyBefore.Space {
				at = i
				break
			}
		}
		props = append(props[:at], append(costly, props[at:]...)...)
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	return append(props, TimeElement(d.RL, "CurrentTime", ptr(now()))), nil
}

// noKey faults a key: the service is its single resource.
func noKey(key string) error {
	if key != "" {
		return fmt.Errorf("%w: this service has a single resource and takes no key", errdefs.ErrResourceUnknown)
	}
	return nil
}

// Property implements Properties.
func (s *Singleton) Property(ctx context.Context, d *dialect.Dialect, key string, q wsa.QName) ([]*etree.Element, error) {
	if err := noKey(key); err != nil {
		return nil, err
	}
	if !(q.Space == d.RL && (q.Local == "CurrentTime" || q.Local == "TerminationTime")) && !s.Declares(q) {
		return nil, undeclared(q)
	}
	if q.Space == d.RL && q.Local == "TerminationTime" {
		// Never destroyed, so its document declares CurrentTime alone: an empty answer
		// would read as "no termination scheduled".
		return nil, fmt.Errorf("%w: this service is not a resource that ends, and its property document has no TerminationTime", errdefs.ErrInvalidQName)
	}
	props, err := s.props(ctx, d, key, &q)
	if err != nil {
		return nil, err
	}
	var out []*etree.Element
	for _, p := range props {
		if p.Tag == q.Local && p.NamespaceURI() == q.Space {
			out = append(out, p)
		}
	}
	return out, nil
}

// Document implements Properties.
func (s *Singleton) Document(ctx context.Context, d *dialect.Dialect, key string) (*etree.Element, error) {
	props, err := s.props(ctx, d, key, nil)
	if err != nil {
		return nil, err
	}
	doc := etree.NewElement("rpd:" + s.DocName.Local)
	doc.CreateAttr("xmlns:rpd", s.DocName.Space)
	for _, p := range props {
		doc.AddChild(p)
	}
	return doc, nil
}

// TextProperty is a standalone property element {q}local with text content, declaring
// its own namespace so it can move between documents unchanged.
func TextProperty(q wsa.QName, text string) *etree.Element {
	el := etree.NewElement("p:" + q.Local)
	el.CreateAttr("xmlns:p", q.Space)
	el.SetText(text)
	return el
}
