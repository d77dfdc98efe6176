// Package container is the SOAP 1.1 service container: it mounts services whose
// operations come from their WSDL, dispatches each request on wsa:Action (body QName as
// fallback) in the dialect the caller used, and maps every error to a typed BaseFault at
// exactly one boundary.
package container

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// Handler answers one operation: it returns the response body element or an error
// (wrapping an errdefs sentinel) that the container turns into a fault.
type Handler func(ctx context.Context, req *Request) (*etree.Element, error)

// Request is what a handler sees of one call.
type Request struct {
	Service   *Service
	Operation *contract.Operation
	Dialect   *dialect.Dialect
	MAPs      wsa.MAPs
	Envelope  *soap.Envelope
	// Payload is the request body element.
	Payload *etree.Element
	// Address is this service's endpoint address as the caller reached it.
	Address string
}

// Header returns the first header block named q, or nil.
func (r *Request) Header(q wsa.QName) *etree.Element {
	for _, h := range r.Envelope.Headers {
		if h.Tag == q.Local && h.NamespaceURI() == q.Space {
			return h
		}
	}
	return nil
}

// ResourceKey returns the service's resource key header, if the service has a key and
// the caller sent it.
func (r *Request) ResourceKey() (string, bool) {
	if r.Service.Key.Local == "" {
		return "", false
	}
	h := r.Header(r.Service.Key)
	if h == nil {
		return "", false
	}
	return strings.TrimSpace(h.Text()), true
}

// EPR is the endpoint reference of the resource this request addressed, in its dialect.
func (r *Request) EPR() *wsa.EPR {
	epr := &wsa.EPR{Version: r.Dialect.WSA, Address: r.Address}
	if h := r.Header(r.Service.Key); h != nil {
		k := wsa.Detach(h)
		stripHeaderAttrs(k)
		epr.References = []*etree.Element{k}
	}
	return epr
}

// stripHeaderAttrs removes SOAP-header-only attributes a client put on a reference
// property when it copied it into the header.
func stripHeaderAttrs(el *etree.Element) {
	kept := el.Attr[:0]
	for _, a := range el.Attr {
		ns := a.NamespaceURI()
		if ns == soap.NS11 || (ns == wsa.NS200508 && a.Key == "IsReferenceParameter") {
			continue
		}
		kept = append(kept, a)
	}
	el.Attr = kept
}

// Service is one mounted SOAP service: its WSDL per dialect and a handler per operation.
type Service struct {
	Name string
	// Key is the resource key header of a service with many resources; zero for a
	// service that is itself the one resource.
	Key       wsa.QName
	contracts map[*dialect.Dialect]*contract.Service
	handlers  map[string]Handler
	// unbounded names the operations HandleUnbounded registered.
	unbounded map[string]bool
	// aliases are input actions besides the WSDL's that name an operation (AcceptAction).
	aliases map[string]string
}

// NewService reads the service's WSDL in every dialect from the contract FS
// (paths "<dialect dir>/<name>.wsdl" under wsdlDir).
func NewService(contractFS fs.FS, wsdlDir, name string, key wsa.QName) (*Service, error) {
	s := &Service{Name: name, Key: key, contracts: map[*dialect.Dialect]*contract.Service{}, handlers: map[string]Handler{}}
	for _, d := range dialect.Dialects {
		c, err := contract.Load(contractFS, wsdlDir+"/"+d.WSDLDir+"/"+name+".wsdl")
		if err != nil {
			return nil, fmt.Errorf("service %s (%s dialect): %w", name, d.Name, err)
		}
		s.contracts[d] = c
	}
	return s, nil
}

// Handle registers h for the operation named op (in every dialect).
func (s *Service) Handle(op string, h Handler) {
	s.handlers[op] = h
	delete(s.unbounded, op)
}

// HandleUnbounded registers h for op without the container's HandlerTimeout: for an
// operation whose length the work decides (an image transfer, a guest's grace period,
// saving its RAM), which bounds itself and ends when the caller hangs up.
func (s *Service) HandleUnbounded(op string, h Handler) {
	s.handlers[op] = h
	if s.unbounded == nil {
		s.unbounded = map[string]bool{}
	}
	s.unbounded[op] = true
}

// AcceptAction has a request with input action also dispatched to operation op of
// dialect d: a specification that declares one operation in two port types gives it
// two default actions, and a WSDL operation can declare only one.
func (s *Service) AcceptAction(d *dialect.Dialect, action, op string) error {
	for _, o := range s.contracts[d].Operations {
		if o.Name == op {
			if s.aliases == nil {
				s.aliases = map[string]string{}
			}
			s.aliases[d.Name+" "+action] = op
			return nil
		}
	}
	return fmt.Errorf("service %s has no operation %s in the %s dialect", s.Name, op, d.Name)
}

// byAction finds the operation of dialect d whose input action (or alias) is action.
func (s *Service) byAction(d *dialect.Dialect, action string) *contract.Operation {
	c := s.contracts[d]
	if op := c.ByAction(action); op != nil {
		return op
	}
	if name, ok := s.aliases[d.Name+" "+action]; ok {
		for _, o := range c.Operations {
			if o.Name == name {
				return o
			}
		}
	}
	return nil
}

// Unbounded reports whether op was registered by HandleUnbounded.
func (s *Service) Unbounded(op string) bool { return s.unbounded[op] }

// Contract returns the service's WSDL operations in dialect d.
func (s *Service) Contract(d *dialect.Dialect) *contract.Service { return s.contracts[d] }

// Check refuses a service whose WSDL declares an operation without a handler, or
// that has a handler for an operation no WSDL declares.
func (s *Service) Check() error {
	var missing, extra []string
	declared := map[string]bool{}
	for _, d := range dialect.Dialects {
		for _, op := range s.contracts[d].Operations {
			declared[op.Name] = true
			if s.handlers[op.Name] == nil {
				missing = append(missing, d.Name+":"+op.Name)
			}
		}
	}
	for name := range s.handlers {
		if !declared[name] {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	switch {
	case len(missing) > 0:
		return fmt.Errorf("service %s: WSDL operations without a handler: %s", s.Name, strings.Join(missing, ", "))
	case len(extra) > 0:
		return fmt.Errorf("service %s: handlers for operations the WSDL does not declare: %s", s.Name, strings.Join(extra, ", "))
	}
	return nil
}

// Declares reports whether the WSDL of any dialect declares operation op.
func (s *Service) Declares(op string) bool {
	for _, c := range s.contracts {
		for _, o := range c.Operations {
			if o.Name == op {
				return true
			}
		}
	}
	return false
}

// NotImplemented answers an operation the contract declares but this release does not
// provide yet, with a fault that says so.
func NotImplemented(op string) Handler {
	return func(ctx context.Context, req *Request) (*etree.Element, error) {
		return nil, fmt.Errorf("%w: %s.%s", errdefs.ErrNotImplemented, req.Service.Name, op)
	}
}

type requestKey struct{}

// RequestFrom returns the request being served, for code that runs inside a handler
// without being handed it (property documents built on demand).
func RequestFrom(ctx context.Context) (*Request, bool) {
	r, ok := ctx.Value(requestKey{}).(*Request)
	return r, ok
}
