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
	"sync"

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
	// epr is EPR's answer, kept once the tree is dropped (DoneReading).
	epr *wsa.EPR
}

// dropTree keeps what the container still needs of the request's tree, its EPR, and
// lets go of the rest.
func (r *Request) dropTree() {
	r.epr = r.EPR()
	r.Envelope, r.Payload = nil, nil
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
	if r.epr != nil {
		return r.epr
	}
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

type readingKey struct{}

// reading is DoneReading's hook into the request a context serves.
type reading struct {
	once sync.Once
	done func(kept []*wsa.EPR)
}

// DoneReading tells the container that the handler serving ctx has read all it needs
// of its request (kept: the endpoint references it took from it and still holds), and
// is about to wait for something whose length the request does not decide — a
// workspace's lock, held by an operation that may last minutes. The request's
// envelope and payload are dropped (Envelope and Payload are nil from then on), and
// its share of the parse budget is given back but for what the answer and the
// handler still hold: otherwise a few large requests queued behind one operation
// hold the whole budget, and the server answers every other caller 503. Outside a
// request, and after the first call, it does nothing.
func DoneReading(ctx context.Context, kept ...*wsa.EPR) {
	if rd, ok := ctx.Value(readingKey{}).(*reading); ok {
		rd.once.Do(func() { rd.done(kept) })
	}
}

// mapsWeight is what a request's addressing properties weigh against the parse
// budget: the bytes of their text.
func mapsWeight(m wsa.MAPs) int64 {
	return int64(len(m.To)+len(m.Action)+len(m.MessageID)+len(m.RelatesTo)) + eprWeight(m.From, m.ReplyTo, m.FaultTo)
}

// eprWeight is the bytes of text of eprs' addresses and reference parameters.
func eprWeight(eprs ...*wsa.EPR) int64 {
	var n int64
	for _, e := range eprs {
		if e == nil {
			continue
		}
		n += int64(len(e.Address))
		for _, r := range e.References {
			n += elementWeight(r)
		}
	}
	return n
}

// elementWeight is the bytes of el's names, attributes and text, as written.
func elementWeight(el *etree.Element) int64 {
	n := int64(2*(len(el.Space)+len(el.Tag)) + 5)
	for _, a := range el.Attr {
		n += int64(len(a.Space) + len(a.Key) + len(a.Value) + 5)
	}
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			n += elementWeight(t)
		case *etree.CharData:
			n += int64(len(t.Data))
		case *etree.Comment:
			n += int64(len(t.Data) + 7)
		}
	}
	return n
}

type requestKey struct{}

// RequestFrom returns the request being served, for code that runs inside a handler
// without being handed it (property documents built on demand).
func RequestFrom(ctx context.Context) (*Request, bool) {
	r, ok := ctx.Value(requestKey{}).(*Request)
	return r, ok
}
