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
)

// Properties is what the WS-ResourceProperties operations read. Property faults
// ResourceUnknown for a missing resource before it looks at q, and
// InvalidResourcePropertyQName for a q not in the resource's document in dialect d.
type Properties interface {
	Property(ctx context.Context, d *dialect.Dialect, key string, q wsa.QName) ([]*etree.Element, error)
	Document(ctx context.Context, d *dialect.Dialect, key string) (*etree.Element, error)
}

// Modifiable is what SetResourceProperties changes.
type Modifiable interface {
	SetProperties(ctx context.Context, key string, mods []Modification) error
}

// Lifetime is what the WS-ResourceLifetime operations drive.
type Lifetime interface {
	Destroy(ctx context.Context, key string) error
	SetTerminationTime(ctx context.Context, key string, t *time.Time) (*time.Time, error)
}

// key extracts the resource key of a request; a service without a key header is
// itself the single resource, key "".
func key(req *container.Request) (string, error) {
	if req.Service.Key.Local == "" {
		return "", nil
	}
	k, ok := req.ResourceKey()
	if !ok {
		return "", errdefs.WithAdvice(
			fmt.Errorf("%w: the request has no %s header", errdefs.ErrResourceUnknown, req.Service.Key),
			"copy the reference properties (GT4) or parameters (WSRF 1.2) of the resource's EPR into the SOAP header")
	}
	if k == "" {
		return "", fmt.Errorf("%w: the %s header is empty", errdefs.ErrResourceUnknown, req.Service.Key)
	}
	return k, nil
}

func response(ns, local string) *etree.Element {
	el := etree.NewElement("wsrp:" + local)
	el.CreateAttr("xmlns:wsrp", ns)
	return el
}

// propertyName resolves the QName text of el, or faults naming what was wrong.
// Whether the resource has such a property is Property's to say, once it knows the
// resource exists.
func propertyName(el *etree.Element) (wsa.QName, error) {
	q, err := wsa.ResolveQName(el, el.Text())
	if err != nil {
		return q, fmt.Errorf("%w: %v", errdefs.ErrInvalidQName, err)
	}
	return q, nil
}

// undeclared is the fault for a property q not in the document.
func undeclared(q wsa.QName) error {
	return fmt.Errorf("%w: %s is not a resource property of this service", errdefs.ErrInvalidQName, q)
}

// GetResourceProperty answers WS-RP GetResourceProperty.
func GetResourceProperty(p Properties) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		k, err := key(req)
		if err != nil {
			return nil, err
		}
		q, err := propertyName(req.Payload)
		if err != nil {
			return nil, err
		}
		vals, err := p.Property(ctx, req.Dialect, k, q)
		if err != nil {
			return nil, err
		}
		out := response(req.Dialect.RP, "GetResourcePropertyResponse")
		for _, v := range vals {
			out.AddChild(v)
		}
		return out, nil
	}
}

// GetMultipleResourceProperties answers WS-RP GetMultipleResourceProperties.
func GetMultipleResourceProperties(p Properties) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		k, err := key(req)
		if err != nil {
			return nil, err
		}
		var names []wsa.QName
		asked := map[wsa.QName]bool{}
		for _, c := range req.Payload.ChildElements() {
			if c.Tag != "ResourceProperty" || c.NamespaceURI() != req.Dialect.RP {
				return nil, fmt.Errorf("%w: unexpected {%s}%s; GetMultipleResourceProperties holds ResourceProperty elements",
					errdefs.ErrBadRequest, c.NamespaceURI(), c.Tag)
			}
			q, err := propertyName(c)
			if err != nil {
				return nil, err
			}
			// Each property once: a name repeated thousands of times must not have
			// the document built, and answered, as often.
			if !asked[q] {
				asked[q] = true
				names = append(names, q)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("%w: GetMultipleResourceProperties names no ResourceProperty", errdefs.ErrInvalidQName)
		}
		out := response(req.Dialect.RP, "GetMultipleResourcePropertiesResponse")
		for _, q := range names {
			vals, err := p.Property(ctx, req.Dialect, k, q)
			if err != nil {
				return nil, err
			}
			for _, v := range vals {
				out.AddChild(v)
			}
		}
		return out, nil
	}
}

// GetResourcePropertyDocument answers WS-RP 1.2 GetResourcePropertyDocument.
func GetResourcePropertyDocument(p Properties) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		k, err := key(req)
		if err != nil {
			return nil, err
		}
		doc, err := p.Document(ctx, req.Dialect, k)
		if err != nil {
			return nil, err
		}
		out := response(req.Dialect.RP, "GetResourcePropertyDocumentResponse")
		out.AddChild(doc)
		return out, nil
	}
}

// SetResourceProperties answers WS-RP SetResourceProperties.
func SetResourceProperties(m Modifiable) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		k, err := key(req)
		if err != nil {
			return nil, err
		}
		mods, err := ParseModifications(req.Dialect.RP, req.Payload)
		if err != nil {
			return nil, err
		}
		if err := m.SetProperties(ctx, k, mods); err != nil {
			return nil, err
		}
		return response(req.Dialect.RP, "SetResourcePropertiesResponse"), nil
	}
}

// Destroy answers WS-RL Destroy.
func Destroy(l Lifetime) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		k, err := key(req)
		if err != nil {
			return nil, err
		}
		if err := l.Destroy(ctx, k); err != nil {
			return nil, err
		}
		return response(req.Dialect.RL, "DestroyResponse"), nil
	}
}

// SetTerminationTime answers WS-RL SetTerminationTime: RequestedTerminationTime
// (xsi:nil for "never"), or in WSRF 1.2 RequestedLifetimeDuration.
func SetTerminationTime(l Lifetime, now func() time.Time) container.Handler {
	return func(ctx context.Context, req *container.Request) (*etree.Element, error) {
		k, err := key(req)
		if err != nil {
			return nil, err
		}
		t, err := requestedTermination(req.Dialect, req.Payload, now())
		if err != nil {
			return nil, err
		}
		got, err := l.SetTerminationTime(ctx, k, t)
		if err != nil {
			return nil, err
		}
		out := response(req.Dialect.RL, "SetTerminationTimeResponse")
		out.AddChild(TimeElement(req.Dialect.RL, "NewTerminationTime", got))
		out.AddChild(TimeElement(req.Dialect.RL, "CurrentTime", ptr(now())))
		return out, nil
	}
}

func requestedTermination(d *dialect.Dialect, payload *etree.Element, now time.Time) (*time.Time, error) {
	var asked *etree.Element
	for _, c := range payload.ChildElements() {
		if c.NamespaceURI() != d.RL || !(c.Tag == "RequestedTerminationTime" || (c.Tag == "RequestedLifetimeDuration" && d == dialect.WSRF12)) {
			continue
		}
		if asked != nil {
			// The schema's choice of one: taking either would move the end to a
			// time the caller may not have meant.
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: SetTerminationTime holds %s and %s; it asks for one termination time",
				errdefs.ErrUnableToSetTermTime, asked.Tag, c.Tag), "send one RequestedTerminationTime (or, in WSRF 1.2, one RequestedLifetimeDuration)")
		}
		asked = c
	}
	if asked == nil {
		return nil, errdefs.WithAdvice(
			fmt.Errorf("%w: SetTerminationTime holds no RequestedTerminationTime in %s", errdefs.ErrUnableToSetTermTime, d.RL),
			"send RequestedTerminationTime (an xsd:dateTime, or xsi:nil=\"true\" for never)")
	}
	if asked.Tag == "RequestedLifetimeDuration" {
		t, err := TimeAfter(now, asked.Text())
		if err != nil {
			return nil, fmt.Errorf("%w: RequestedLifetimeDuration: %v", errdefs.ErrUnableToSetTermTime, err)
		}
		return &t, nil
	}
	if isNil(asked) {
		return nil, nil
	}
	t, err := ParseDateTime(asked.Text())
	if err != nil {
		return nil, fmt.Errorf("%w: RequestedTerminationTime: %v", errdefs.ErrUnableToSetTermTime, err)
	}
	return &t, nil
}

func isNil(el *etree.Element) bool {
	for _, a := range el.Attr {
		if a.Key == "nil" && a.NamespaceURI() == "http://www.w3.org/2001/XMLSchema-instance" {
			v := strings.TrimSpace(a.Value)
			return v == "true" || v == "1"
		}
	}
	return false
}

// HandleProperties registers the WS-ResourceProperties read operations the service's
// WSDL declares.
func HandleProperties(svc *container.Service, p Properties) {
	handle(svc, "GetResourceProperty", GetResourceProperty(p))
	handle(svc, "GetMultipleResourceProperties", GetMultipleResourceProperties(p))
	handle(svc, "GetResourcePropertyDocument", GetResourcePropertyDocument(p))
	handle(svc, "QueryResourceProperties", QueryResourceProperties(p))
}

// HandleLifetime registers Destroy and SetTerminationTime.
func HandleLifetime(svc *container.Service, l Lifetime, now func() time.Time) {
	handle(svc, "Destroy", Destroy(l))
	handle(svc, "SetTerminationTime", SetTerminationTime(l, now))
}

// HandleModify registers SetResourceProperties.
func HandleModify(svc *container.Service, m Modifiable) {
	handle(svc, "SetResourceProperties", SetResourceProperties(m))
}

func handle(svc *container.Service, op string, h container.Handler) {
	if svc.Declares(op) {
		svc.Handle(op, h)
	}
}
