package container

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// FaultNS is the namespace of vws's own BaseFault subtypes.
const FaultNS = vwsns.Faults

// ErrorCodeDialect is the dialect URI of the ErrorCode vws puts in every fault.
const ErrorCodeDialect = "http://vws.dev/ns/2026/faults/codes"

// nsKind says which namespace a fault element lives in, resolved per dialect.
type nsKind int

const (
	nsRP nsKind = iota
	nsRL
	nsResourceUnknown
	nsBN
	nsVWS
)

type faultKind struct {
	sentinel error
	ns       nsKind
	name     string // element local name
	code     soap.FaultCode
	advice   string // default "what to do" when the error carries none
}

// faultKinds maps sentinels to fault elements, most specific first.
var faultKinds = []faultKind{
	{errMustUnderstand, nsVWS, "ServiceFault", soap.CodeClient,
		"send the header without mustUnderstand=\"1\", or to a service that processes it"},
	{errdefs.ErrResourceUnknown, nsResourceUnknown, "ResourceUnknownFault", soap.CodeClient,
		"check the EPR or key you sent; the resource may have been destroyed or may have expired"},
	{errdefs.ErrInvalidQName, nsRP, "InvalidResourcePropertyQNameFault", soap.CodeClient,
		"ask for a property the resource's property document declares (GetResourcePropertyDocument or ?wsdl lists them)"},
	{errdefs.ErrUnknownQueryDialect, nsRP, "UnknownQueryExpressionDialectFault", soap.CodeClient,
		"use the XPath 1.0 dialect http://www.w3.org/TR/1999/REC-xpath-19991116"},
	{errdefs.ErrQueryTooCostly, nsRP, "QueryEvaluationErrorFault", soap.CodeClient,
		"narrow the query: use absolute paths instead of nested // and count() over the whole document"},
	{errdefs.ErrInvalidQuery, nsRP, "InvalidQueryExpressionFault", soap.CodeClient,
		"send an XPath 1.0 expression whose prefixes are declared on the QueryExpression element"},
	{errdefs.ErrInvalidModification, nsRP, "InvalidModificationFault", soap.CodeClient,
		"each Insert or Update must hold elements of a single property; Delete names it in @ResourceProperty"},
	{errdefs.ErrUnableToModify, nsRP, "UnableToModifyResourcePropertyFault", soap.CodeClient,
		"only writable properties can be changed; read the others"},
	{errdefs.ErrTermTimeRejected, nsRL, "TerminationTimeChangeRejectedFault", soap.CodeClient,
		"ask for a termination time within the site's maximum lifetime"},
	{errdefs.ErrUnableToSetTermTime, nsRL, "UnableToSetTerminationTimeFault", soap.CodeClient,
		"send an xsd:dateTime in the future (UTC), or xsi:nil=\"true\" for no scheduled termination"},
	{errdefs.ErrNotDestroyed, nsRL, "ResourceNotDestroyedFault", soap.CodeServer,
		"retry the Destroy; if it keeps failing, ask the site administrator"},
	{errdefs.ErrTopicDialectUnknown, nsBN, "TopicExpressionDialectUnknownFault", soap.CodeClient,
		"use the Simple topic dialect (a topic's QName, as the resource's Topic property lists them)"},
	{errdefs.ErrTopicNotSupported, nsBN, "TopicNotSupportedFault", soap.CodeClient,
		"subscribe to one of the topics the resource's Topic property lists"},
	{errdefs.ErrInvalidTopic, nsBN, "InvalidTopicExpressionFault", soap.CodeClient,
		"send a topic QName whose prefix is declared on the TopicExpression element"},
	{errdefs.ErrInvalidFilter, nsBN, "InvalidFilterFault", soap.CodeClient,
		"filter by TopicExpression only"},
	{errdefs.ErrUnacceptableInitialTermTime, nsBN, "UnacceptableInitialTerminationTimeFault", soap.CodeClient,
		"ask for a termination time in the future, or none"},
	{errdefs.ErrUnacceptableTermTime, nsBN, "UnacceptableTerminationTimeFault", soap.CodeClient,
		"ask for a termination time in the future"},
	{errdefs.ErrUnrecognizedPolicy, nsBN, "UnrecognizedPolicyRequestFault", soap.CodeClient,
		"subscribe without a SubscriptionPolicy"},
	{errdefs.ErrUnsupportedPolicy, nsBN, "UnsupportedPolicyRequestFault", soap.CodeClient,
		"subscribe without a SubscriptionPolicy"},
	{errdefs.ErrSubscribe, nsBN, "SubscribeCreationFailedFault", soap.CodeClient,
		"nothing was subscribed; correct the request as the description says and send it again"},
	{errdefs.ErrMetadata, nsVWS, "WorkspaceMetadataFault", soap.CodeClient,
		"correct the named element of the description and send it again"},
	{errdefs.ErrAuthorization, nsVWS, "WorkspaceAuthorizationFault", soap.CodeClient,
		"ask the site administrator for the right to do this"},
	{errdefs.ErrSecurity, nsVWS, "WorkspaceAuthorizationFault", soap.CodeClient,
		"sign the request with a certificate this site trusts, with a fresh Timestamp and MessageID; never resend a signed message"},
	{errdefs.ErrQuotaExceeded, nsVWS, "WorkspaceQuotaExceededFault", soap.CodeClient,
		"destroy or shut down workspaces you no longer need, or ask for a larger quota"},
	{errdefs.ErrState, nsVWS, "WorkspaceStateFault", soap.CodeClient,
		"bring the workspace into a state where the operation is valid first"},
	{errdefs.ErrLocked, nsVWS, "WorkspaceLockedFault", soap.CodeClient,
		"wait until the holder checks the workspace in, or undeploy it there"},
	{errdefs.ErrCreation, nsVWS, "WorkspaceCreationFault", soap.CodeServer,
		"nothing was created; retry, and report to the site administrator if it persists"},
	{errdefs.ErrImageIntegrity, nsVWS, "ImageIntegrityFault", soap.CodeServer,
		"the image does not match its signed manifest; nothing was started; tell the site administrator"},
	{errdefs.ErrHypervisor, nsVWS, "HypervisorFault", soap.CodeServer,
		"the host's hypervisor failed the operation for the reason given, and the workspace stays as it was; retry, and tell the site administrator if it persists"},
	{errdefs.ErrActionNotSupported, nsVWS, "ServiceFault", soap.CodeClient,
		"fetch the service's WSDL (?wsdl) for the actions it supports"},
	{errdefs.ErrBadRequest, nsVWS, "ServiceFault", soap.CodeClient,
		"correct the request and send it again"},
	{errdefs.ErrNotImplemented, nsVWS, "ServiceFault", soap.CodeServer,
		"this release does not provide the operation yet"},
	// Server-side failures whose words are written for the caller; last, so that an
	// error another kind names keeps that kind.
	{errBusy, nsVWS, "ServiceFault", soap.CodeServer,
		"nothing was done; send the request again later"},
	{errHandlerTimeout, nsVWS, "ServiceFault", soap.CodeServer,
		"check the resource's state before repeating an operation that changes it; if operations keep timing out, tell the site administrator"},
	{errdefs.ErrStorageFull, nsVWS, "ServiceFault", soap.CodeServer,
		"the site administrator must free space on the server; then retry"},
	{errdefs.ErrUnavailable, nsVWS, "ServiceFault", soap.CodeServer,
		"retry later; if it persists, tell the site administrator"},
}

// fallbackKind is an error no kind names: the server's own failure, told to the
// caller as an incident (buildFault), never in its code's words.
var fallbackKind = faultKind{nil, nsVWS, "ServiceFault", soap.CodeServer,
	"retry later, first checking whether an operation that changes something took effect"}

// NewIncident returns an id for one unclassified failure, which its fault (or HTTP
// answer) names and the server's log records it under.
func NewIncident() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail (it panics if it cannot read)
	return hex.EncodeToString(b)
}

// publicError is an error whose caller is told less than its Error text, which the
// server's log keeps.
type publicError interface {
	public() string
}

// gt4Names are the faults the 2004/06 drafts name otherwise or lack (those become
// the draft's nearest fault: its Subscribe knows no filters but the topic, and no
// relative termination times).
var gt4Names = map[string]string{
	"InvalidModificationFault":                "InvalidSetResourcePropertiesRequestContentFault",
	"TopicExpressionDialectUnknownFault":      "TopicPathDialectUnknownFault",
	"InvalidFilterFault":                      "SubscribeCreationFailedFault",
	"UnacceptableInitialTerminationTimeFault": "SubscribeCreationFailedFault",
	"UnacceptableTerminationTimeFault":        "SubscribeCreationFailedFault",
	"UnrecognizedPolicyRequestFault":          "SubscribeCreationFailedFault",
	"UnsupportedPolicyRequestFault":           "SubscribeCreationFailedFault",
}

// gt4Advice replaces, in the GT 4.0 dialect, default advice that names an operation
// the 2004/06 drafts lack (GetResourcePropertyDocument is WS-RP 1.2's).
var gt4Advice = map[string]string{
	"InvalidResourcePropertyQNameFault": "ask for a property the resource's property document declares " +
		"(QueryResourceProperties with the XPath /*, or ?wsdl, lists them)",
}

// SentinelOf returns the error a vws fault of this BaseFault subtype (its local name)
// stands for, so that a service passing on another's fault keeps its kind; nil for
// ServiceFault, which several errors share, and for a name vws does not send.
func SentinelOf(faultType string) error {
	if faultType == fallbackKind.name {
		return nil
	}
	for _, k := range faultKinds {
		if k.name == faultType {
			return k.sentinel
		}
	}
	return nil
}

func classify(err error) faultKind {
	for _, k := range faultKinds {
		if errors.Is(err, k.sentinel) {
			return k
		}
	}
	return fallbackKind
}

// faultInput is what a fault is built from.
type faultInput struct {
	err        error
	dialect    *dialect.Dialect
	originator *wsa.EPR
	// opNS is the namespace of the request element, which decides where GT4's
	// ResourceUnknownFault lives (ResourceProperties vs ResourceLifetime draft).
	opNS string
	code soap.FaultCode // overrides the kind's code when set (MustUnderstand, VersionMismatch)
	now  time.Time
	// incident names an unclassified failure; buildFault makes one up when empty.
	incident string
}

// buildFault renders err as a SOAP fault whose detail is a BaseFault subtype.
func buildFault(in faultInput) (*soap.Fault, faultKind) {
	k := classify(in.err)
	d := in.dialect
	var ns string
	switch k.ns {
	case nsRP:
		ns = d.RP
	case nsRL:
		ns = d.RL
	case nsResourceUnknown:
		ns = d.ResourceUnknownNS
		// The 2004/06 drafts declare ResourceUnknownFault separately in the RL and
		// BN namespaces for their own operations.
		if d == dialect.GT4 && (in.opNS == d.RL || in.opNS == d.BN) {
			ns = in.opNS
		}
	case nsBN:
		ns = d.BN
	default:
		ns = FaultNS
	}
	if d == dialect.GT4 {
		if a, ok := gt4Advice[k.name]; ok {
			k.advice = a
		}
		if n, ok := gt4Names[k.name]; ok {
			k.name = n
		}
	}
	desc := in.err.Error()
	var pub publicError
	if errors.As(in.err, &pub) {
		desc = pub.public()
	}
	advice := errdefs.Advice(in.err)
	if advice == "" {
		advice = k.advice
	}
	if k.sentinel == nil {
		// Its words are the code's (file paths, SQL, driver text), not the caller's:
		// they stay in the server's log, under the incident id the caller is given.
		// Advice is written for callers, so it stays.
		if in.incident == "" {
			in.incident = NewIncident()
		}
		desc = fmt.Sprintf("the service failed internally (incident %s)", in.incident)
		advice += "; if it persists, give the site administrator the incident id " + in.incident
	}
	if advice != "" {
		desc += "; " + advice
	}

	el := etree.NewElement("f:" + k.name)
	el.CreateAttr("xmlns:f", ns)
	el.CreateAttr("xmlns:bf", d.BF)
	el.CreateElement("bf:Timestamp").SetText(in.now.UTC().Format("2006-01-02T15:04:05.000Z"))
	if in.originator != nil {
		in.originator.ChildElement(el, "bf:"+d.OriginatorElement, "wsa")
	}
	ec := el.CreateElement("bf:ErrorCode")
	ec.CreateAttr("dialect", ErrorCodeDialect)
	ec.SetText(k.name[:len(k.name)-len("Fault")])
	el.CreateElement("bf:Description").SetText(desc)
	if d == dialect.WSRF12 && k.ns == nsRP && (k.name == "InvalidModificationFault" || k.name == "UnableToModifyResourcePropertyFault") {
		// rp-2 requires these faults to say which change failed; vws applies all or
		// nothing, so the (empty) failure element is all there is to say.
		el.CreateAttr("xmlns:wsrf-rp", d.RP)
		el.CreateElement("wsrf-rp:ResourcePropertyChangeFailure")
	}
	addTypedDetail(el, in.err, k)
	var tb *errdefs.TimeBoundsError
	if k.ns == nsBN && d == dialect.WSRF12 && errors.As(in.err, &tb) {
		// b-2 requires the bounds after the BaseFault parts.
		el.CreateElement("f:MinimumTime").SetText(tb.Min.UTC().Format("2006-01-02T15:04:05.000Z"))
		el.CreateElement("f:MaximumTime").SetText(tb.Max.UTC().Format("2006-01-02T15:04:05.000Z"))
	}

	var uf unknownFilter
	if k.ns == nsBN && d == dialect.WSRF12 && errors.As(in.err, &uf) {
		// b-2 requires the refused filter's name (an xs:QName, so its prefix is
		// declared where it is used).
		space, local := uf.UnknownFilter()
		u := el.CreateElement("f:UnknownFilter")
		if space != "" {
			u.CreateAttr("xmlns:uf", space)
			local = "uf:" + local
		}
		u.SetText(local)
	}
	var rp refusedPolicy
	if k.ns == nsBN && d == dialect.WSRF12 && errors.As(in.err, &rp) {
		// b-2 names the refused policy (an xs:QName) in UnrecognizedPolicy or
		// UnsupportedPolicy, after the BaseFault parts.
		space, local := rp.RefusedPolicy()
		p := el.CreateElement("f:" + k.name[:len(k.name)-len("RequestFault")])
		if space != "" {
			p.CreateAttr("xmlns:rp", space)
			local = "rp:" + local
		}
		p.SetText(local)
	}

	code := k.code
	if in.code != "" {
		code = in.code
	}
	return &soap.Fault{Code: code, String: desc, Detail: []*etree.Element{el}}, k
}

// unknownFilter is an invalid notification filter that names the element refused.
type unknownFilter interface {
	UnknownFilter() (space, local string)
}

// refusedPolicy is a subscription policy refused, which names the element refused.
type refusedPolicy interface {
	RefusedPolicy() (space, local string)
}

// addTypedDetail appends the extra elements of vws fault subtypes (of kind k).
func addTypedDetail(el *etree.Element, err error, k faultKind) {
	var se *errdefs.StateError
	named := errors.As(err, &se)
	if named {
		addStates(el, se.Current, se.Requested)
	}
	var le *errdefs.LockedError
	if errors.As(err, &le) {
		el.CreateAttr("xmlns:vwf", FaultNS)
		el.CreateElement("vwf:LockHolder").SetText(le.Holder)
	}
	var me *errdefs.MetadataError
	if errors.As(err, &me) {
		el.CreateAttr("xmlns:vwf", FaultNS)
		el.CreateElement("vwf:ElementPath").SetText(me.Path)
	}
	var po *passedOn
	if errors.As(err, &po) {
		for _, d := range po.detail {
			el.CreateAttr("xmlns:vwf", FaultNS)
			el.CreateElement("vwf:" + d[0]).SetText(d[1])
			named = named || d[0] == "CurrentState"
		}
	}
	if k.sentinel == errdefs.ErrState && !named {
		// vws-faults.xsd requires both states in every WorkspaceStateFault. An error
		// that names neither (a hypervisor's refusal; a fault passed on from a service
		// that sent none) is from code that does not know them: it says so rather
		// than guess, and the description says what was refused.
		addStates(el, "", "")
	}
}

// unknownState stands for a state the refusal did not name.
const unknownState = "unknown"

// addStates appends a WorkspaceStateFault's CurrentState and RequestedState, each
// at least one character, as vwf:StateName requires.
func addStates(el *etree.Element, current, requested string) {
	if current == "" {
		current = unknownState
	}
	if requested == "" {
		requested = unknownState
	}
	el.CreateAttr("xmlns:vwf", FaultNS)
	el.CreateElement("vwf:CurrentState").SetText(current)
	el.CreateElement("vwf:RequestedState").SetText(requested)
}

// FaultDetail is the BaseFault element (the detail) of the fault the container sends
// for err in dialect d, so that the tests of the services whose errors become faults
// can check them against the fault schemas without serving a request.
func FaultDetail(err error, d *dialect.Dialect) *etree.Element {
	f, _ := buildFault(faultInput{err: err, dialect: d, now: time.Now()})
	return f.Detail[0]
}
