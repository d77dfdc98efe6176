// Package wsrf is the WS-Resource runtime: resource homes whose resources each have a
// property document and an optional termination time, the WS-ResourceProperties and
// WS-ResourceLifetime operations over them, and an expiry scheduler.
package wsrf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/wsa"
)

// Store persists resources; the home keeps them in memory and writes through.
type Store interface {
	LoadResources(ctx context.Context, service string) ([]StoredResource, error)
	PutResource(ctx context.Context, service string, r StoredResource) error
	DeleteResource(ctx context.Context, service, key string) error
}

// StoredResource is a resource as persisted: its stored properties serialized as
// one XML fragment, and its termination time (nil: none scheduled).
type StoredResource struct {
	Key         string
	Properties  []byte
	Termination *time.Time
	// Private is the owning service's own state, never shown as a property.
	Private []byte
}

// HomeConfig describes a resource home.
type HomeConfig struct {
	// Service names the home in the store and in logs.
	Service string
	// Document is the name of the resource-property document element.
	Document wsa.QName
	// Declared lists the properties the document declares besides WS-ResourceLifetime's
	// CurrentTime and TerminationTime (which follow them), in the order of the
	// document's schema sequence; only these can be asked for or inserted, and stored
	// properties are kept in this order.
	Declared []wsa.QName
	// Writable decides whether property q of the resource in s may be changed now
	// (returning an error wrapping errdefs.ErrUnableToModify, or nil); it runs with the
	// resource locked. Nil: nothing is writable.
	Writable func(s *Snapshot, q wsa.QName) error
	// Validate checks the properties of the resource in s as a SetResourceProperties
	// leaves them (before: as they were), before anything is stored; its error refuses
	// every modification of the request and is returned as is. Nil: any content is
	// taken.
	Validate func(ctx context.Context, before []*etree.Element, s *Snapshot) error
	// MaxLifetime bounds SetTerminationTime; zero for no bound.
	MaxLifetime time.Duration
	// CheckTermination, when set, may refuse a SetTerminationTime to t (nil: never) on
	// the resource in s, for bounds the service keeps per resource that one home-wide
	// MaxLifetime cannot express (an owner's lifetime quota). It runs with the resource
	// locked, after the home's own checks and before anything changes; its error
	// refuses the change and is returned as is, so it chooses its own fault.
	CheckTermination func(s *Snapshot, t *time.Time) error
	// OnDestroy releases what a resource holds outside the home (images, domains)
	// before it is forgotten; an error keeps the resource and faults the Destroy.
	// It runs with the resource locked; s is read-only.
	OnDestroy func(ctx context.Context, s *Snapshot) error
	// AfterDestroy runs once the resource is gone from the store, for cleanup that
	// must not happen while it still exists (removing its files).
	AfterDestroy func(s *Snapshot)
	// Render, if set, rewrites a copy of a stored property for the dialect of the
	// caller reading it (an EPR held in the WS-Addressing version it arrived in).
	Render func(d *dialect.Dialect, p *etree.Element) *etree.Element
	// OnTerminationChange lets the service mirror a new termination time in its own
	// properties (s.Termination is the new one), persisted with it.
	OnTerminationChange func(s *Snapshot)
	// DeferExpiry leaves the expiry scheduler stopped until StartExpiry: resources
	// whose time ran out while the service was down are destroyed only once the
	// service has read what it keeps about them (a quota ledger, say), not while it
	// does.
	DeferExpiry bool
	// OnChange is told of every committed change of a resource's stored properties
	// (before and after, which it must not modify), with the resource still locked,
	// so that changes of one resource reach it in order; it must not block.
	OnChange func(key string, before, after []*etree.Element)
	// Fixed, if set, renders the properties every resource of the home has alike (a
	// notification producer's topics), in the dialect of the caller; they follow
	// CurrentTime and TerminationTime in the document.
	Fixed  func(d *dialect.Dialect) []*etree.Element
	Store  Store
	Logger *slog.Logger
	Now    func() time.Time
}

type resource struct {
	mu          sync.Mutex // serializes operations on this resource
	props       []*etree.Element
	private     []byte
	termination *time.Time
	gone        bool
}

// Home holds the resources of one service.
type Home struct {
	cfg      HomeConfig
	declared map[wsa.QName]int  // property → position in the document
	fixed    map[wsa.QName]bool // the properties Fixed renders, in any dialect
	mu       sync.RWMutex
	res      map[string]*resource
	sched    *scheduler
}

// NewHome loads the home's resources from its store and starts its expiry scheduler;
// resources that expired while the process was down are destroyed right away.
func NewHome(ctx context.Context, cfg HomeConfig) (*Home, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Home{cfg: cfg, declared: map[wsa.QName]int{}, fixed: map[wsa.QName]bool{}, res: map[string]*resource{}}
	for i, q := range cfg.Declared {
		h.declared[q] = i
	}
	if cfg.Fixed != nil {
		for _, d := range dialect.Dialects {
			for _, p := range cfg.Fixed(d) {
				h.fixed[wsa.QName{Space: p.NamespaceURI(), Local: p.Tag}] = true
			}
		}
	}
	h.sched = newScheduler(cfg.Now, h.expire)
	if cfg.Store != nil {
		stored, err := cfg.Store.LoadResources(ctx, cfg.Service)
		if err != nil {
			return nil, fmt.Errorf("load %s resources: %w", cfg.Service, err)
		}
		for _, s := range stored {
			props, err := decodeProperties(s.Properties)
			if err != nil {
				return nil, fmt.Errorf("load %s resource %s: %w", cfg.Service, s.Key, err)
			}
			h.res[s.Key] = &resource{props: props, private: s.Private, termination: s.Termination}
			if s.Termination != nil {
				h.sched.schedule(s.Key, *s.Termination)
			}
		}
	}
	if !cfg.DeferExpiry {
		h.sched.start()
	}
	return h, nil
}

// StartExpiry starts the expiry scheduler of a home made with DeferExpiry.
func (h *Home) StartExpiry() {
	if !h.sched.active {
		h.sched.start()
	}
}

// Close stops the expiry scheduler.
func (h *Home) Close() { h.sched.stop() }

// Declares reports whether q is a property of this home's documents.
func (h *Home) Declares(q wsa.QName) bool {
	_, ok := h.declared[q]
	return ok || h.fixed[q]
}

// order sorts props stably into the document's declared order.
func (h *Home) order(props []*etree.Element) []*etree.Element {
	pos := func(p *etree.Element) int {
		if i, ok := h.declared[wsa.QName{Space: p.NamespaceURI(), Local: p.Tag}]; ok {
			return i
		}
		return len(h.declared)
	}
	slices.SortStableFunc(props, func(a, b *etree.Element) int { return pos(a) - pos(b) })
	return props
}

// Keys returns the keys of all resources (order unspecified).
func (h *Home) Keys() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	keys := make([]string, 0, len(h.res))
	for k := range h.res {
		keys = append(keys, k)
	}
	return keys
}

// Create adds a resource. props are standalone elements (each declaring its namespace).
func (h *Home) Create(ctx context.Context, key string, props []*etree.Element, termination *time.Time) error {
	return h.CreatePrivate(ctx, key, props, nil, termination)
}

// CreatePrivate adds a resource with service-private state, persisted in one write.
func (h *Home) CreatePrivate(ctx context.Context, key string, props []*etree.Element, private []byte, termination *time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, exists := h.res[key]; exists {
		return fmt.Errorf("%w: resource %q already exists", errdefs.ErrBadRequest, key)
	}
	r := &resource{props: h.order(props), private: private, termination: termination}
	if err := h.persist(ctx, key, r); err != nil {
		return err
	}
	h.res[key] = r
	if termination != nil {
		h.sched.schedule(key, *termination)
	}
	return nil
}

// ErrExpired is in the ErrResourceUnknown of a resource past its termination time
// that its expiry has not destroyed yet: unknown to what would use it, but not gone,
// and its destroy is still to tell why it ended.
var ErrExpired = errors.New("ended at its termination time")

// lookup returns the resource for key, locked; the caller unlocks r.mu. A resource
// past its termination time is destroyed as WS-ResourceLifetime has it, even while the
// expiry scheduler has not removed it yet (not run since a start, or its destroy
// failed and waits for a retry): it is unknown here, so that it cannot be renewed back
// to life, read or used. Only what destroys it (Destroy, the expiry, ViewAny to
// authorize a Destroy) and Range (which counts what it still holds) reach it, through
// find.
func (h *Home) lookup(key string) (*resource, error) {
	r, err := h.find(key)
	if err != nil {
		return nil, err
	}
	if now := h.cfg.Now().Round(0); r.termination != nil && !r.termination.After(now) { // the wall clock, as expiry
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %s resource %q %w %s", errdefs.ErrResourceUnknown, h.cfg.Service, key, ErrExpired, FormatTime(*r.termination))
	}
	return r, nil
}

// find is lookup without the termination time's check.
func (h *Home) find(key string) (*resource, error) {
	h.mu.RLock()
	r := h.res[key]
	h.mu.RUnlock()
	if r == nil {
		return nil, fmt.Errorf("%w: no %s resource with key %q", errdefs.ErrResourceUnknown, h.cfg.Service, key)
	}
	r.mu.Lock()
	if r.gone {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: %s resource %q was destroyed", errdefs.ErrResourceUnknown, h.cfg.Service, key)
	}
	return r, nil
}

// Property returns copies of the instances of property q of resource key.
func (h *Home) Property(ctx context.Context, d *dialect.Dialect, key string, q wsa.QName) ([]*etree.Element, error) {
	r, err := h.lookup(key)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	if q.Space == d.RL && (q.Local == "CurrentTime" || q.Local == "TerminationTime") {
		return h.lifetimeProps(d, r, q.Local), nil
	}
	if !h.Declares(q) {
		return nil, undeclared(q)
	}
	var out []*etree.Element
	for _, p := range r.props {
		if p.Tag == q.Local && p.NamespaceURI() == q.Space {
			out = append(out, h.render(d, p))
		}
	}
	if h.fixed[q] {
		rendered := false
		for _, p := range h.cfg.Fixed(d) {
			if p.Tag == q.Local && p.NamespaceURI() == q.Space {
				out = append(out, p)
				rendered = true
			}
		}
		if _, stored := h.declared[q]; !rendered && !stored {
			// Another dialect's name for it: not in this caller's document, as the
			// other dialect's CurrentTime and TerminationTime are not.
			return nil, fmt.Errorf("%w: %s is not a resource property of %s in the %s dialect", errdefs.ErrInvalidQName, q, h.cfg.Document.Local, d.Name)
		}
	}
	return out, nil
}

// render is a copy of property p as dialect d's callers read it.
func (h *Home) render(d *dialect.Dialect, p *etree.Element) *etree.Element {
	c := p.Copy()
	if h.cfg.Render != nil {
		c = h.cfg.Render(d, c)
	}
	return c
}

// Document returns a copy of resource key's whole property document in dialect d.
func (h *Home) Document(ctx context.Context, d *dialect.Dialect, key string) (*etree.Element, error) {
	r, err := h.lookup(key)
	if err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	doc := etree.NewElement("rpd:" + h.cfg.Document.Local)
	doc.CreateAttr("xmlns:rpd", h.cfg.Document.Space)
	for _, p := range r.props {
		doc.AddChild(h.render(d, p))
	}
	for _, p := range h.lifetimeProps(d, r, "") {
		doc.AddChild(p)
	}
	if h.cfg.Fixed != nil {
		for _, p := range h.cfg.Fixed(d) {
			doc.AddChild(p)
		}
	}
	return doc, nil
}

// lifetimeProps renders CurrentTime and/or TerminationTime (which = "" for both).
func (h *Home) lifetimeProps(d *dialect.Dialect, r *resource, which string) []*etree.Element {
	var out []*etree.Element
	if which == "" || which == "CurrentTime" {
		out = append(out, TimeElement(d.RL, "CurrentTime", ptr(h.cfg.Now())))
	}
	if which == "" || which == "TerminationTime" {
		out = append(out, TimeElement(d.RL, "TerminationTime", r.termination))
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// TimeElement renders a nillable xsd:dateTime element {ns}local in UTC with ms.
func TimeElement(ns, local string, t *time.Time) *etree.Element {
	el := etree.NewElement("wsrl:" + local)
	el.CreateAttr("xmlns:wsrl", ns)
	if t == nil {
		el.CreateAttr("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance")
		el.CreateAttr("xsi:nil", "true")
		return el
	}
	el.SetText(FormatTime(*t))
	return el
}

// FormatTime renders t as xsd:dateTime in UTC with milliseconds, as GT4 clients send it.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Update changes resource key's stored properties through fn, atomically: fn works on
// copies and nothing changes (in memory or store) if it or persisting fails.
func (h *Home) Update(ctx context.Context, key string, fn func(props []*etree.Element) ([]*etree.Element, error)) error {
	return h.Modify(ctx, key, func(s *Snapshot) error {
		next, err := fn(s.Props)
		s.Props = next
		return err
	})
}

// Snapshot is a working copy of one resource that Modify's function may change.
type Snapshot struct {
	Key         string
	Props       []*etree.Element
	Private     []byte
	Termination *time.Time
}

// Property returns the first instance of q in the snapshot, or nil.
func (s *Snapshot) Property(q wsa.QName) *etree.Element {
	for _, p := range s.Props {
		if p.Tag == q.Local && p.NamespaceURI() == q.Space {
			return p
		}
	}
	return nil
}

// Modify changes resource key through fn, which works on a copy while the resource
// is locked (so operations on one resource are serialized); nothing changes if fn or
// persisting fails. Termination changes are rescheduled.
func (h *Home) Modify(ctx context.Context, key string, fn func(s *Snapshot) error) error {
	r, err := h.lookup(key)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	s := &Snapshot{Key: key, Props: make([]*etree.Element, len(r.props)), Private: append([]byte(nil), r.private...), Termination: r.termination}
	for i, p := range r.props {
		s.Props[i] = p.Copy()
	}
	if err := fn(s); err != nil {
		return err
	}
	next := h.order(s.Props)
	candidate := &resource{props: next, private: s.Private, termination: s.Termination}
	if err := h.persist(ctx, key, candidate); err != nil {
		return err
	}
	before := r.props
	r.props, r.private = next, s.Private
	if h.cfg.OnChange != nil {
		h.cfg.OnChange(key, before, next)
	}
	if !sameTime(r.termination, s.Termination) {
		r.termination = s.Termination
		if s.Termination == nil {
			h.sched.cancel(key)
		} else {
			h.sched.schedule(key, *s.Termination)
		}
	}
	return nil
}

// View calls fn with a read-only snapshot of resource key while it is locked.
func (h *Home) View(ctx context.Context, key string, fn func(s *Snapshot) error) error {
	r, err := h.lookup(key)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	return fn(&Snapshot{Key: key, Props: r.props, Private: r.private, Termination: r.termination})
}

// ViewAny is View that also reaches a resource past its termination time not yet
// destroyed: for authorizing what destroys it, which must still be its owner's to do.
func (h *Home) ViewAny(ctx context.Context, key string, fn func(s *Snapshot) error) error {
	r, err := h.find(key)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	return fn(&Snapshot{Key: key, Props: r.props, Private: r.private, Termination: r.termination})
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// lifetimeProperty reports whether q is WS-ResourceLifetime's CurrentTime or
// TerminationTime, in either dialect's namespace.
func lifetimeProperty(q wsa.QName) bool {
	for _, d := range dialect.Dialects {
		if q.Space == d.RL && (q.Local == "CurrentTime" || q.Local == "TerminationTime") {
			return true
		}
	}
	return false
}

// SetProperties applies WS-ResourceProperties modifications all-or-nothing.
// The resource is looked up first: to one that does not exist, the answer is that.
func (h *Home) SetProperties(ctx context.Context, key string, mods []Modification) error {
	return h.Modify(ctx, key, func(s *Snapshot) error {
		for _, m := range mods {
			if lifetimeProperty(m.Property) {
				// In the document (GetResourceProperty answers it), so not an unknown name.
				return errdefs.WithAdvice(fmt.Errorf("%w: %s is read-only", errdefs.ErrUnableToModify, m.Property.Local),
					"change when the resource ends with SetTerminationTime")
			}
			if !h.Declares(m.Property) {
				return fmt.Errorf("%w: %s is not a property of %s", errdefs.ErrInvalidQName, m.Property, h.cfg.Document.Local)
			}
			if h.cfg.Writable == nil {
				return fmt.Errorf("%w: %s is read-only", errdefs.ErrUnableToModify, m.Property)
			}
		}
		for _, m := range mods {
			if err := h.cfg.Writable(s, m.Property); err != nil {
				return err
			}
		}
		before := s.Props
		s.Props = applyModifications(s.Props, mods)
		if h.cfg.Validate != nil {
			return h.cfg.Validate(ctx, before, s)
		}
		return nil
	})
}

// Destroy releases and forgets resource key.
func (h *Home) Destroy(ctx context.Context, key string) error {
	r, err := h.find(key)
	if err != nil {
		return err
	}
	defer r.mu.Unlock()
	return h.destroyLocked(ctx, key, r)
}

func (h *Home) destroyLocked(ctx context.Context, key string, r *resource) error {
	snap := &Snapshot{Key: key, Props: r.props, Private: r.private, Termination: r.termination}
	if h.cfg.OnDestroy != nil {
		if err := h.cfg.OnDestroy(ctx, snap); err != nil {
			if errors.Is(err, errdefs.ErrState) || errors.Is(err, errdefs.ErrLocked) {
				return err // a refusal the caller can act on, not a failure to destroy
			}
			return fmt.Errorf("%w: %w", errdefs.ErrNotDestroyed, err)
		}
	}
	if h.cfg.Store != nil {
		if err := h.cfg.Store.DeleteResource(ctx, h.cfg.Service, key); err != nil {
			return fmt.Errorf("%w: removing its record: %w", errdefs.ErrNotDestroyed, err)
		}
	}
	r.gone = true
	h.mu.Lock()
	delete(h.res, key)
	h.mu.Unlock()
	h.sched.cancel(key)
	if h.cfg.AfterDestroy != nil {
		h.cfg.AfterDestroy(snap)
	}
	return nil
}

// Range calls fn for each resource with a read-only snapshot, one resource locked at a
// time, until fn returns false; also those past their termination time not yet
// destroyed, which still hold what they held.
func (h *Home) Range(fn func(s *Snapshot) bool) {
	for _, key := range h.Keys() {
		r, err := h.find(key)
		if err != nil {
			continue // destroyed meanwhile
		}
		more := fn(&Snapshot{Key: key, Props: r.props, Private: r.private, Termination: r.termination})
		r.mu.Unlock()
		if !more {
			return
		}
	}
}

// SetTerminationTime schedules resource key's destruction at t (nil: never) and
// returns the termination time now in force.
func (h *Home) SetTerminationTime(ctx context.Context, key string, t *time.Time) (*time.Time, error) {
	err := h.Modify(ctx, key, func(s *Snapshot) error {
		now := h.cfg.Now()
		if t != nil {
			if t.Before(now) {
				return errdefs.WithAdvice(
					fmt.Errorf("%w: requested termination time %s is in the past (now %s)", errdefs.ErrUnableToSetTermTime, FormatTime(*t), FormatTime(now)),
					"send a time in the future, or call Destroy to end the resource now")
			}
			if h.cfg.MaxLifetime > 0 && t.Sub(now) > h.cfg.MaxLifetime {
				return fmt.Errorf("%w: %s is more than the maximum lifetime %s from now", errdefs.ErrTermTimeRejected, FormatTime(*t), FormatDuration(h.cfg.MaxLifetime))
			}
		} else if h.cfg.MaxLifetime > 0 {
			return fmt.Errorf("%w: this site requires a termination time within %s; \"never\" is not allowed", errdefs.ErrTermTimeRejected, FormatDuration(h.cfg.MaxLifetime))
		}
		if h.cfg.CheckTermination != nil {
			if err := h.cfg.CheckTermination(s, t); err != nil {
				return err
			}
		}
		s.Termination = t
		if h.cfg.OnTerminationChange != nil {
			h.cfg.OnTerminationChange(s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// expire destroys resource key if its termination time has come.
func (h *Home) expire(key string) {
	r, err := h.find(key)
	if err != nil {
		return // already gone
	}
	defer r.mu.Unlock()
	if r.termination == nil || r.termination.After(h.cfg.Now().Round(0)) {
		return // extended meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.destroyLocked(ctx, key, r); err != nil {
		h.cfg.Logger.Error("expired resource not destroyed; retrying in 10s", "service", h.cfg.Service, "key", key, "err", err)
		h.sched.schedule(key, h.cfg.Now().Add(10*time.Second))
		return
	}
	h.cfg.Logger.Info("resource expired and destroyed", "service", h.cfg.Service, "key", key)
}

func (h *Home) persist(ctx context.Context, key string, r *resource) error {
	if h.cfg.Store == nil {
		return nil
	}
	data, err := encodeProperties(r.props)
	if err != nil {
		return fmt.Errorf("encode %s resource %s: %w", h.cfg.Service, key, err)
	}
	if err := h.cfg.Store.PutResource(ctx, h.cfg.Service, StoredResource{Key: key, Properties: data, Termination: r.termination, Private: r.private}); err != nil {
		return fmt.Errorf("persist %s resource %s: %w", h.cfg.Service, key, err)
	}
	return nil
}

// encodeProperties serializes standalone property elements under one wrapper.
// Carriage returns go as &#xD;: written as they are, reading them back (XML's
// end-of-line handling) would turn them into line feeds, and a value would change
// with a restart.
func encodeProperties(props []*etree.Element) ([]byte, error) {
	doc := etree.NewDocument()
	doc.WriteSettings.CanonicalText = true
	doc.WriteSettings.CanonicalAttrVal = true
	root := doc.CreateElement("properties")
	for _, p := range props {
		root.AddChild(p.Copy())
	}
	return doc.WriteToBytes()
}

func decodeProperties(data []byte) ([]*etree.Element, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, err
	}
	root := doc.Root()
	if root == nil {
		return nil, errors.New("empty property record")
	}
	var out []*etree.Element
	for _, c := range root.ChildElements() {
		out = append(out, wsa.Detach(c))
	}
	return out, nil
}
