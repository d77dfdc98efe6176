package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/google/uuid"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wssec"
)

// DefaultBodyTimeout is how long a SOAP request body may take to arrive: a 1 MiB
// one over a 256 kbit/s link.
const DefaultBodyTimeout = 45 * time.Second

// ServicesPath is where services are mounted, as in GT4 ("/wsrf/services/<name>").
const ServicesPath = "/wsrf/services/"

// Config tunes the container.
type Config struct {
	// MaxBodyBytes bounds a SOAP request body; larger ones get HTTP 413. Default 1 MiB.
	MaxBodyBytes int64
	// BodyTimeout bounds the reading of a SOAP request body, which no handler's bound
	// covers yet: a client that stalls or trickles past it is cut off rather than
	// holding a connection. Default DefaultBodyTimeout.
	BodyTimeout time.Duration
	// ParseBudget bounds the body bytes of the SOAP requests parsed and in process at
	// once, server-wide: a request takes its body's length of it once the body is in
	// and gives it back when answered, or once its handler has read it (DoneReading).
	// 0: DefaultParseBudget; negative: no bound.
	ParseBudget int64
	// ParseWait is how long a request waits for room in ParseBudget before it is
	// answered HTTP 503 with Retry-After. Default DefaultParseWait.
	ParseWait time.Duration
	// HandlerTimeout bounds one operation (except those registered with
	// Service.HandleUnbounded). Default 30 s.
	HandlerTimeout time.Duration
	// Logger receives one record per request. Default slog.Default().
	Logger *slog.Logger
	// ContractFS holds "wsdl/…" and "schema/…", served for ?wsdl and imports.
	ContractFS fs.FS
	// Metrics records per-operation counters; nil for none.
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Authorize decides, before its handler runs, whether the caller in ctx may make
	// the request; nil allows everything.
	Authorize func(ctx context.Context, req *Request) error
	// Verifier checks WS-Security signed requests; a signed request's signer becomes
	// the caller (message-level identity wins over the TLS peer, as in GT4). nil:
	// signed requests are refused as not understood.
	Verifier *wssec.Verifier
	// RequireSignature names the operations whose requests must be signed.
	RequireSignature func(service, operation string) bool
	// Signer signs the response to every signed request; nil: responses go unsigned.
	Signer *wssec.Signer
	// BaseURL is the base URL this server's EPRs name ("https://host:8443"): a
	// signed request's wsa:To must name a service under it, so that a message signed
	// for one server is not carried out by another. nil or "": the address the
	// request reached (its Host header).
	BaseURL func() string
	// AuditRefusal records a request refused before authorization (a WS-Security
	// check failed); nil: only logged.
	AuditRefusal func(ctx context.Context, operation, resource, reason string)
}

// Container serves SOAP services over HTTP.
type Container struct {
	cfg      Config
	services map[string]*Service
	mux      *http.ServeMux
	wsdl     *wsdlServer
	admit    *admission
}

// New builds a container for services; it refuses any service whose WSDL declares an
// operation it has no handler for.
func New(cfg Config, services ...*Service) (*Container, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.HandlerTimeout <= 0 {
		cfg.HandlerTimeout = 30 * time.Second
	}
	if cfg.ParseBudget == 0 {
		cfg.ParseBudget = DefaultParseBudget
	}
	if cfg.ParseWait <= 0 {
		cfg.ParseWait = DefaultParseWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Container{cfg: cfg, services: map[string]*Service{}, mux: http.NewServeMux(),
		admit: newAdmission(cfg.ParseBudget, cfg.ParseWait, cfg.Metrics)}
	var errs []error
	for _, s := range services {
		if err := s.Check(); err != nil {
			errs = append(errs, err)
		}
		c.services[s.Name] = s
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.wsdl = newWSDLServer(cfg.ContractFS)
	c.mux.HandleFunc(ServicesPath, c.serveService)
	c.mux.HandleFunc("/wsrf/share/", c.wsdl.serveShare)
	return c, nil
}

// Handle mounts an extra HTTP handler (healthz, metrics, images) beside the services.
func (c *Container) Handle(pattern string, h http.Handler) { c.mux.Handle(pattern, h) }

// ServeHTTP implements http.Handler.
func (c *Container) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		// On every endpoint a body must arrive within BodyTimeout, unless its handler
		// sets a bound of its own (serveSOAP, the transfers' StallGuard): net/http reads
		// what a handler left of a body before it answers, with no deadline, so a
		// client that stalls after a refusal (no such service, 415) would hold the
		// connection for ever.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(c.cfg.BodyTimeout))
	}
	c.mux.ServeHTTP(w, r)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (c *Container) serveService(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, ServicesPath)
	svc := c.services[name]
	if svc == nil {
		http.Error(w, fmt.Sprintf("no service %q here; services are %s", name, c.serviceNames()), http.StatusNotFound)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if _, ok := queryParam(r, "wsdl"); ok {
			c.wsdl.serveWSDL(w, r, svc)
			return
		}
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "this is a SOAP endpoint: POST a SOAP 1.1 envelope, or GET ?wsdl for its description", http.StatusMethodNotAllowed)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "use POST for SOAP requests", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); !soapMediaType(ct) {
		// A web page can POST text/plain or a form to any site without asking it
		// first, and the browser presents the user's certificate: only the SOAP
		// types, which it may not send cross-site unasked, are carried out.
		http.Error(w, fmt.Sprintf("a SOAP 1.1 request is sent as text/xml, not %q; nothing was done", ct), http.StatusUnsupportedMediaType)
		return
	}
	if ce := strings.TrimSpace(r.Header.Get("Content-Encoding")); ce != "" && !strings.EqualFold(ce, "identity") {
		// The body would be parsed as the XML it is not, and refused for a byte of it.
		w.Header().Set("Accept-Encoding", "identity")
		http.Error(w, fmt.Sprintf("request bodies with Content-Encoding %q are not accepted: send the envelope uncompressed; nothing was done", ce),
			http.StatusUnsupportedMediaType)
		return
	}
	c.serveSOAP(w, r, svc)
}

// soapMediaType reports whether ct is SOAP 1.1's text/xml, or SOAP 1.2's
// application/soap+xml (answered with a VersionMismatch fault).
func soapMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "text/xml" || mt == "application/soap+xml")
}

func (c *Container) serviceNames() string {
	names := make([]string, 0, len(c.services))
	for n := range c.services {
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// call is the state of one SOAP exchange, for logging, metrics and faults.
type call struct {
	svc      *Service
	dialect  *dialect.Dialect
	maps     wsa.MAPs
	req      *Request
	opName   string
	start    time.Time
	signed   bool   // the request carried a verified signature
	incident string // the id of the unclassified failure its fault names, if any
}

func (c *Container) serveSOAP(w http.ResponseWriter, r *http.Request, svc *Service) {
	cl := &call{svc: svc, start: c.cfg.Now(), opName: "-"}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	putBuf := sync.OnceFunc(func() { bufPool.Put(buf) }) // at the end, or once read (DoneReading)
	defer putBuf()

	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(c.cfg.BodyTimeout))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, c.cfg.MaxBodyBytes))
	if err != nil {
		// The rest of the body is not waited for: the connection ends with the fault.
		w.Header().Set("Connection", "close")
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			cl.dialect = guessDialect(buf.Bytes())
			c.fail(w, r, cl, http.StatusRequestEntityTooLarge, fmt.Errorf("%w: request body is larger than %d bytes",
				errdefs.ErrBadRequest, c.cfg.MaxBodyBytes), "")
			return
		}
		cl.dialect = dialect.WSRF12
		c.fail(w, r, cl, http.StatusBadRequest, fmt.Errorf("%w: reading request body: %v", errdefs.ErrBadRequest, err), "")
		return
	}
	// Lifted once the body is in (net/http does too as it starts reading ahead to
	// notice a client hanging up): a deadline left there would cancel a long operation.
	_ = rc.SetReadDeadline(time.Time{})
	// Parsing multiplies a body's bytes by up to ~37 in heap, before anyone is
	// authorized: the budget bounds how much of that is alive at once. Taken only now,
	// so that a slow body holds none of it; held as long as the tree is: to the
	// answer, or until the handler says it has read what it needs (DoneReading).
	// A call of a request in process, which waits for it holding its share, is not
	// made to wait for budget (AdmittedHeader); it passes that request's token on.
	token := r.Header.Get(AdmittedHeader)
	var sh *share
	endNested, nested := c.admit.nested(token)
	if nested {
		defer endNested()
	} else {
		sh, err = c.admit.admit(r.Context(), int64(buf.Len()))
		if err != nil {
			cl.dialect = guessDialect(buf.Bytes())
			w.Header().Set("Retry-After", c.admit.retryAfter())
			c.fail(w, r, cl, http.StatusServiceUnavailable, err, "")
			return
		}
		defer sh.release()
		var end func()
		token, end = c.admit.token()
		defer end()
	}
	env, err := soap.Parse(buf.Bytes())
	if err != nil {
		cl.dialect = guessDialect(buf.Bytes())
		var code soap.FaultCode
		if errors.Is(err, soap.ErrVersionMismatch) {
			code = soap.CodeVersionMismatch
		}
		c.fail(w, r, cl, http.StatusInternalServerError, fmt.Errorf("%w: %w", errdefs.ErrBadRequest, err), code)
		return
	}
	req, err := c.route(r, svc, env, cl)
	if err != nil {
		code := soap.FaultCode("")
		if errors.Is(err, errMustUnderstand) {
			code = soap.CodeMustUnderstand
		}
		c.fail(w, r, cl, http.StatusInternalServerError, err, code)
		return
	}
	caller := identity.FromRequest(r)
	signed := false
	if c.cfg.Verifier != nil {
		res, err := c.cfg.Verifier.Verify(env)
		if err == nil && res.Signed {
			err = c.checkSignedTargets(r, req, res)
		}
		if err != nil {
			c.refuse(w, r, cl, caller, req, err)
			return
		}
		if signed = res.Signed; signed {
			if caller.DN != res.Identity.DN {
				res.Identity.DeliveredBy = caller.String()
			}
			caller = res.Identity
		}
	}
	if !signed && c.cfg.RequireSignature != nil && c.cfg.RequireSignature(svc.Name, req.Operation.Name) {
		c.refuse(w, r, cl, caller, req, errdefs.WithAdvice(
			fmt.Errorf("%w: site policy requires %s.%s requests to be signed (WS-Security X.509)", errdefs.ErrSecurity, svc.Name, req.Operation.Name),
			"sign the request: a Timestamp and an X.509 signature over the Body, the Timestamp and the header blocks (vws --sign)"))
		return
	}
	cl.signed = signed
	ctx := context.WithValue(identity.With(r.Context(), caller), requestKey{}, req)
	ctx = context.WithValue(ctx, admittedKey{}, token)
	ctx = context.WithValue(ctx, readingKey{}, &reading{done: func(kept []*wsa.EPR) {
		req.dropTree()
		putBuf()
		if sh != nil {
			// What the answer and the handler keep of the request stays counted.
			sh.shrink(mapsWeight(cl.maps) + eprWeight(req.EPR()) + eprWeight(kept...))
		}
	}})
	if !svc.Unbounded(req.Operation.Name) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.cfg.HandlerTimeout, errHandlerTimeout)
		defer cancel()
	}
	if c.cfg.Authorize != nil {
		if err := c.cfg.Authorize(ctx, req); err != nil {
			c.fail(w, r, cl, http.StatusInternalServerError, c.stopped(ctx, err), "")
			return
		}
	}
	body, err := c.invoke(ctx, svc, req)
	if err != nil {
		c.fail(w, r, cl, http.StatusInternalServerError, c.stopped(ctx, err), "")
		return
	}
	if cl.discarded(false) {
		w.WriteHeader(http.StatusAccepted)
		c.observe(r, cl, http.StatusAccepted, "", nil)
		return
	}
	headers := c.responseHeaders(cl, req.Operation.OutputAction, false)
	c.write(w, http.StatusOK, &soap.Message{Headers: headers, Body: body}, cl.signed)
	c.observe(r, cl, http.StatusOK, "", nil)
}

// invoke runs the handler, turning a panic into a server fault so one bad request
// cannot take the process down.
func (c *Container) invoke(ctx context.Context, svc *Service, req *Request) (body *etree.Element, err error) {
	defer func() {
		if p := recover(); p != nil {
			c.cfg.Logger.Error("handler panic", "service", svc.Name, "operation", req.Operation.Name, "panic", p, "stack", string(debug.Stack()))
			// Unclassified, so the caller gets an incident id and the log the panic under it.
			body, err = nil, fmt.Errorf("internal error in %s: panic: %v", req.Operation.Name, p)
		}
	}()
	return svc.handlers[req.Operation.Name](ctx, req)
}

// errHandlerTimeout is the cause of a context the container ended at HandlerTimeout.
var errHandlerTimeout = errors.New("the operation did not finish within the server's time limit")

// stopped returns err, which the handler answered under ctx, as a timedOut when the
// container's HandlerTimeout ended ctx and no fault type names err: the caller learns
// that the operation was stopped, not how the code noticed.
func (c *Container) stopped(ctx context.Context, err error) error {
	if classify(err).sentinel != nil || !errors.Is(context.Cause(ctx), errHandlerTimeout) {
		return err
	}
	return &timedOut{limit: c.cfg.HandlerTimeout, err: err}
}

// timedOut is an operation the container stopped at HandlerTimeout.
type timedOut struct {
	limit time.Duration
	err   error // the handler's answer, for the log
}

func (e *timedOut) public() string {
	return fmt.Sprintf("the operation did not finish within the server's limit of %s, so the server stopped it; whether it took effect is not known", e.limit)
}
func (e *timedOut) Error() string   { return e.public() + ": " + e.err.Error() }
func (e *timedOut) Unwrap() []error { return []error{errHandlerTimeout, e.err} }

var errMustUnderstand = errors.New("header not understood")

// route finds the dialect and operation of a parsed envelope.
func (c *Container) route(r *http.Request, svc *Service, env *soap.Envelope, cl *call) (*Request, error) {
	maps, err := wsa.ReadMAPs(env.Headers)
	cl.maps = maps
	switch {
	case maps.Version != 0:
		cl.dialect = dialect.ForWSA(maps.Version)
	case env.Payload != nil:
		if d, ok := dialect.ForBodyNamespace(env.Payload.NamespaceURI()); ok {
			cl.dialect = d
		}
	}
	if cl.dialect == nil {
		cl.dialect = dialect.WSRF12
	}
	if err != nil {
		// Which endpoint the caller wanted answers at is in doubt: the fault goes back
		// on the HTTP response, relating to the request's MessageID alone.
		cl.maps = wsa.MAPs{Version: maps.Version, MessageID: maps.MessageID}
		return nil, fmt.Errorf("%w: %w", errdefs.ErrBadRequest, err)
	}
	if err := refuseAnswerEndpoints(cl); err != nil {
		return nil, fmt.Errorf("%w: %w", errdefs.ErrBadRequest, err)
	}
	if env.Payload == nil {
		return nil, fmt.Errorf("%w: soap:Body is empty; it must hold the request element", errdefs.ErrBadRequest)
	}
	if n := len(env.Body.ChildElements()); n > 1 {
		// Document/literal: one request element (WS-I Basic Profile 1.1 R2201, R2210).
		// Carrying out the first alone would answer for the others as if done.
		return nil, errdefs.WithAdvice(fmt.Errorf("%w: soap:Body holds %d elements; a request holds one, the operation's request element",
			errdefs.ErrBadRequest, n), "send one operation per request; nothing was done")
	}
	contract := svc.contracts[cl.dialect]
	payloadName := wsa.QName{Space: env.Payload.NamespaceURI(), Local: env.Payload.Tag}
	op := contract.ByInput(payloadName)
	if maps.Action != "" {
		byAction := svc.byAction(cl.dialect, maps.Action)
		if byAction == nil {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrActionNotSupported, wsa.ActionNotSupported(maps.Version, maps.Action,
				fmt.Sprintf("%s does not support action %q in the %s dialect", svc.Name, maps.Action, cl.dialect.Name)))
		}
		if op != byAction {
			return nil, fmt.Errorf("%w: action %s expects body element %s, got %s",
				errdefs.ErrBadRequest, maps.Action, byAction.Input, payloadName)
		}
	}
	if op == nil {
		return nil, fmt.Errorf("%w: %s has no operation whose request element is %s (%s dialect)",
			errdefs.ErrActionNotSupported, svc.Name, payloadName, cl.dialect.Name)
	}
	if maps.Version == wsa.V200508 {
		// WS-Addressing 1.0 SOAP Binding §5 (checked once the action is known to be
		// this service's): a SOAPAction is empty or the [action]; proxies, filters
		// and logs that go by it would otherwise see one operation while another
		// runs. (2004/03 says nothing of it: GT4 sends "".)
		if sa := strings.Trim(strings.TrimSpace(r.Header.Get("SOAPAction")), `"`); maps.Action != "" && sa != "" && sa != maps.Action {
			return nil, fmt.Errorf("%w: %w", errdefs.ErrBadRequest, wsa.InvalidHeader(maps.Version, wsa.CodeActionMismatch, "Action",
				fmt.Sprintf("the HTTP SOAPAction %q is not the wsa:Action %q; send the same action in both, or an empty SOAPAction", sa, maps.Action)))
		}
		if maps.ReplyTo != nil && maps.MessageID == "" {
			// Core §3.1: a reply endpoint needs a message id, or the reply relates to
			// nothing.
			return nil, fmt.Errorf("%w: %w", errdefs.ErrBadRequest, &wsa.Fault{Version: maps.Version, Subcode: wsa.CodeMessageAddressingHeaderRequired,
				ProblemHeader: "MessageID", Reason: "wsa:ReplyTo is given without a wsa:MessageID; send a MessageID, which the reply's RelatesTo names"})
		}
	}
	cl.opName = op.Name
	if svc.Key.Local != "" {
		keys := 0
		for _, h := range env.Headers {
			if h.Tag == svc.Key.Local && h.NamespaceURI() == svc.Key.Space {
				keys++
			}
		}
		if keys > 1 {
			// Which resource the caller meant is a guess; a Destroy must not make it.
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: the request carries %d {%s}%s headers; a request addresses one resource",
				errdefs.ErrBadRequest, keys, svc.Key.Space, svc.Key.Local), "send the EPR of one resource, with its one key")
		}
	}
	for _, h := range env.Headers {
		if !soap.MustUnderstand(h) {
			continue
		}
		// Understood: the addressing headers of the version the request is read in;
		// another version's are ignored, so not understood.
		if v, _ := wsa.VersionOf(h.NamespaceURI()); wsa.IsAddressingHeader(h) && v == maps.Version {
			continue
		}
		if svc.Key.Local != "" && h.Tag == svc.Key.Local && h.NamespaceURI() == svc.Key.Space {
			continue
		}
		if wssec.IsSecurityHeader(h) {
			if c.cfg.Verifier != nil {
				continue
			}
			return nil, errdefs.WithAdvice(fmt.Errorf("%w: this server has no trusted CAs (it runs --insecure), so it cannot verify the wsse:Security header",
				errMustUnderstand), "send the request unsigned here, or to a server started with its host certificate and --ca")
		}
		return nil, fmt.Errorf("%w: header {%s}%s is marked mustUnderstand but this service does not process it",
			errMustUnderstand, h.NamespaceURI(), h.Tag)
	}
	req := &Request{Service: svc, Operation: op, Dialect: cl.dialect, MAPs: maps, Envelope: env,
		Payload: env.Payload, Address: endpointAddress(r)}
	cl.req = req
	return req, nil
}

// refuseAnswerEndpoints refuses a request whose wsa:ReplyTo or wsa:FaultTo the container
// cannot send to: it answers only on the HTTP response, that is to the anonymous address
// (and, in 1.0, to none by not answering). A refused endpoint is dropped from cl's MAPs,
// so the fault goes back on the HTTP response without its reference parameters.
func refuseAnswerEndpoints(cl *call) error {
	v := cl.maps.Version
	var refusal error
	for _, e := range []struct {
		header string
		epr    **wsa.EPR
	}{{"ReplyTo", &cl.maps.ReplyTo}, {"FaultTo", &cl.maps.FaultTo}} {
		epr := *e.epr
		if epr == nil || epr.Address == v.Anonymous() || (v.None() != "" && epr.Address == v.None()) {
			continue
		}
		if refusal == nil {
			advice := "send wsa:" + e.header + " with the anonymous address " + v.Anonymous() + ", or leave it out"
			if v.None() != "" {
				advice += " (" + v.None() + " when no answer is wanted)"
			}
			refusal = errdefs.WithAdvice(wsa.InvalidHeader(v, wsa.CodeOnlyAnonymousAddressSupported, e.header,
				fmt.Sprintf("wsa:%s is %s, but this service answers only on the HTTP response, not to another address; nothing was done",
					e.header, epr.Address)), advice)
		}
		*e.epr = nil
	}
	return refusal
}

// discarded reports whether the answer to cl, a reply or a fault, goes to the 1.0 none
// address, which is to say nowhere (Core §3.4: a fault to FaultTo if the request has
// one, else to ReplyTo). Only answers to a request that got past its addressing
// headers are discarded: a fault about those goes back on the HTTP response.
func (cl *call) discarded(fault bool) bool {
	none := cl.maps.Version.None()
	if cl.req == nil || none == "" {
		return false
	}
	dest := cl.maps.ReplyTo
	if fault && cl.maps.FaultTo != nil {
		dest = cl.maps.FaultTo
	}
	return dest != nil && dest.Address == none
}

// endpointAddress is the service URL the caller used, for EPRs the service hands out.
func endpointAddress(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.Path
}

// refuse answers a request refused for its message security, and audits the refusal
// under the TLS caller (the signer, if any, was not proven).
func (c *Container) refuse(w http.ResponseWriter, r *http.Request, cl *call, caller identity.Identity, req *Request, err error) {
	if c.cfg.AuditRefusal != nil {
		resource := req.Service.Name
		if key, ok := req.ResourceKey(); ok {
			resource = key
		}
		c.cfg.AuditRefusal(identity.With(r.Context(), caller), "security "+req.Operation.Name, resource, err.Error())
	}
	c.fail(w, r, cl, http.StatusInternalServerError, err, "")
}

// checkSignedTargets refuses a signed request whose signature does not pin what it
// acts on: the resource key header (else whoever passes the message on could point
// it at another of the signer's resources) and wsa:To, which must name this service
// (else a message signed for one server could be carried out by another, each
// server keeping its own replay cache).
func (c *Container) checkSignedTargets(r *http.Request, req *Request, res *wssec.Result) error {
	if req.Service.Key.Local != "" {
		if h := req.Header(req.Service.Key); h != nil && !res.Covers(h) {
			return errdefs.WithAdvice(fmt.Errorf("%w: the signature does not cover the resource key header {%s}%s",
				errdefs.ErrSecurity, req.Service.Key.Space, req.Service.Key.Local),
				"sign every header block of the request, the resource key included (vws --sign does)")
		}
	}
	var to *etree.Element
	for _, h := range req.Envelope.Headers {
		if wsa.IsAddressingHeader(h) && h.Tag == "To" {
			to = h
		}
	}
	want := endpointAddress(r)
	if c.cfg.BaseURL != nil {
		if base := strings.TrimRight(c.cfg.BaseURL(), "/"); base != "" {
			want = base + r.URL.Path
		}
	}
	if to == nil {
		return errdefs.WithAdvice(fmt.Errorf("%w: a signed request must carry wsa:To naming the service it is for", errdefs.ErrSecurity),
			"add wsa:To "+want+" and sign it with the rest")
	}
	if !sameAddress(strings.TrimSpace(to.Text()), want) {
		return errdefs.WithAdvice(fmt.Errorf("%w: the signed request is addressed to %s, not to this service, %s", errdefs.ErrSecurity, strings.TrimSpace(to.Text()), want),
			"send it to the service it was signed for, or sign a request addressed to "+want)
	}
	return nil
}

// sameAddress compares two endpoint addresses as URLs: scheme and host without
// regard to case, a default port written or not, the path exactly.
func sameAddress(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	if errA != nil || errB != nil {
		return false
	}
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		return map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.EqualFold(ua.Scheme, ub.Scheme) && strings.EqualFold(ua.Hostname(), ub.Hostname()) && port(ua) == port(ub) &&
		strings.TrimRight(ua.Path, "/") == strings.TrimRight(ub.Path, "/") && ua.RawQuery == "" && ub.RawQuery == ""
}

// guessDialect picks a dialect for faults about requests too broken to route.
func guessDialect(data []byte) *dialect.Dialect {
	if bytes.Contains(data, []byte(wsa.NS200403)) {
		return dialect.GT4
	}
	return dialect.WSRF12
}

// responseHeaders are the addressing headers of the answer to cl: a reply (fault
// false) or a fault. Each reference property/parameter of the endpoint the answer goes
// to (FaultTo for a fault when the request has one, else ReplyTo) becomes a header block
// of its own (WS-Addressing 1.0 Core §3.3, 2004/03 §3).
func (c *Container) responseHeaders(cl *call, action string, fault bool) []*etree.Element {
	v := cl.dialect.WSA
	mk := v.Header
	hs := []*etree.Element{
		mk("Action", action),
		mk("MessageID", "urn:uuid:"+uuid.NewString()),
	}
	if cl.maps.MessageID != "" {
		hs = append(hs, mk("RelatesTo", cl.maps.MessageID))
	}
	// Every answer goes back on the HTTP response (refuseAnswerEndpoints).
	hs = append(hs, mk("To", v.Anonymous()))
	dest := cl.maps.ReplyTo
	if fault && cl.maps.FaultTo != nil {
		dest = cl.maps.FaultTo
	}
	if dest != nil {
		hs = append(hs, dest.Headers()...)
	}
	return hs
}

// fail writes err as a fault. It is the one place errors become faults.
func (c *Container) fail(w http.ResponseWriter, r *http.Request, cl *call, status int, err error, code soap.FaultCode) {
	if cl.discarded(true) {
		w.WriteHeader(http.StatusAccepted)
		c.observe(r, cl, http.StatusAccepted, classify(err).name, err)
		return
	}
	in := faultInput{err: err, dialect: cl.dialect, code: code, now: c.cfg.Now()}
	if classify(err).sentinel == nil {
		cl.incident = NewIncident()
		in.incident = cl.incident
	}
	if cl.req != nil {
		in.originator = cl.req.EPR()
		in.opNS = cl.req.Operation.Input.Space // the request element's (route), which DoneReading may have dropped
	} else {
		in.originator = &wsa.EPR{Version: cl.dialect.WSA, Address: endpointAddress(r)}
	}
	fault, kind := buildFault(in)
	action := cl.dialect.FaultAction
	if (code == soap.CodeMustUnderstand || code == soap.CodeVersionMismatch) && cl.dialect.WSA == wsa.V200508 {
		// Faults SOAP itself defines carry the 1.0 SOAP Binding's action (§6), not
		// WSRF's BaseFault one.
		action = wsa.NS200508 + "/soap/fault"
	}
	if cl.req != nil {
		if a, ok := cl.req.Operation.Faults[kind.name]; ok {
			action = a
		}
	}
	body := fault.Element()
	var extra []*etree.Element
	var af *wsa.Fault
	if errors.As(err, &af) {
		// A WS-Addressing fault, bound to SOAP 1.1 as the WS-Addressing 1.0 SOAP
		// Binding §6 says: its code as the faultcode, its details in a wsa:FaultDetail
		// header, the addressing fault action. The BaseFault detail stays, for the
		// clients that read every vws fault's Description there.
		action = af.Version.FaultAction()
		body.CreateAttr("xmlns:wsa", af.Version.Namespace())
		body.SelectElement("faultcode").SetText("wsa:" + af.Code())
		if d := af.DetailHeader(); d != nil {
			extra = append(extra, d)
		}
	}
	headers := append(c.responseHeaders(cl, action, true), extra...)
	c.write(w, status, &soap.Message{Headers: headers, Body: body}, cl.signed)
	c.observe(r, cl, status, kind.name, err)
}

// write sends m; sign: the request was signed, so the answer is too (when a signer is
// configured), its faults included.
func (c *Container) write(w http.ResponseWriter, status int, m *soap.Message, sign bool) {
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	doc := m.Document()
	if sign && c.cfg.Signer != nil {
		if err := c.cfg.Signer.Sign(doc); err != nil {
			c.cfg.Logger.Error("sign response", "err", err)
			http.Error(w, "cannot sign the response", http.StatusInternalServerError)
			return
		}
	}
	if _, err := doc.WriteTo(buf); err != nil {
		c.cfg.Logger.Error("encode response", "err", err)
		http.Error(w, "cannot encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.Copy(w, buf)
}

func (c *Container) observe(r *http.Request, cl *call, status int, fault string, err error) {
	elapsed := c.cfg.Now().Sub(cl.start)
	dname := "-"
	if cl.dialect != nil {
		dname = cl.dialect.Name
	}
	if c.cfg.Metrics != nil {
		c.cfg.Metrics.observe(cl.svc.Name, cl.opName, dname, fault, elapsed)
	}
	attrs := []slog.Attr{
		slog.String("service", cl.svc.Name), slog.String("operation", cl.opName), slog.String("dialect", dname),
		slog.Int("status", status), slog.Duration("duration", elapsed),
		slog.String("caller", identity.FromRequest(r).String()), slog.String("remote", r.RemoteAddr),
	}
	level := slog.LevelInfo
	if fault != "" {
		attrs = append(attrs, slog.String("fault", fault), slog.String("error", err.Error()))
		if cl.incident != "" {
			attrs = append(attrs, slog.String("incident", cl.incident))
		}
		switch {
		case cl.incident != "":
			level = slog.LevelError // the caller was told to quote the id to the administrator
		case errors.Is(err, errBusy):
			level = slog.LevelWarn // load, not a failure (vws_soap_busy_total counts them)
		case classify(err).code == soap.CodeServer:
			level = slog.LevelError
		}
	}
	c.cfg.Logger.LogAttrs(r.Context(), level, "soap request", attrs...)
}
