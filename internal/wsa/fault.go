package wsa

import "github.com/beevik/etree"

// Fault codes WS-Addressing defines, local names in the version's namespace: W3C 1.0
// SOAP Binding §6.4 (subcodes and the subsubcodes of InvalidAddressingHeader) and the
// 2004/03 member submission §5.
const (
	CodeInvalidAddressingHeader         = "InvalidAddressingHeader"
	CodeInvalidCardinality              = "InvalidCardinality"
	CodeMissingAddressInEPR             = "MissingAddressInEPR"
	CodeInvalidEPR                      = "InvalidEPR"
	CodeOnlyAnonymousAddressSupported   = "OnlyAnonymousAddressSupported"
	CodeActionNotSupported              = "ActionNotSupported"
	CodeActionMismatch                  = "ActionMismatch"
	CodeMessageAddressingHeaderRequired = "MessageAddressingHeaderRequired"
	// CodeInvalidMessageInformationHeader is 2004/03's only fault for a header
	// that is present but wrong.
	CodeInvalidMessageInformationHeader = "InvalidMessageInformationHeader"
)

// Fault is an addressing-level fault: the request's addressing headers are wrong or
// ask for what this endpoint does not do. Its [Code] is always Sender (soap:Client).
type Fault struct {
	Version Version
	// Subcode and Subsubcode are local names in Version's namespace; Subsubcode only
	// in 1.0, and optional.
	Subcode, Subsubcode string
	// ProblemHeader is the local name of the addressing header at fault ("ReplyTo"),
	// reported as wsa:ProblemHeaderQName; ProblemAction the action not supported.
	ProblemHeader, ProblemAction string
	// Reason says in words what was wrong.
	Reason string
}

func (f *Fault) Error() string { return f.Reason }

// Code is the fault's most specific code, the one SOAP 1.1's single faultcode carries
// (SOAP 1.1 has no subcodes; each subsubcode belongs to one subcode, so it implies it).
func (f *Fault) Code() string {
	if f.Subsubcode != "" {
		return f.Subsubcode
	}
	return f.Subcode
}

// DetailHeader renders the fault's [Details] as the wsa:FaultDetail header block the
// 1.0 SOAP Binding (§6) puts them in for SOAP 1.1, whose detail element is only for
// errors in the body; nil when there are none, and in 2004/03, which defines no such
// header.
func (f *Fault) DetailHeader() *etree.Element {
	if f.Version != V200508 || (f.ProblemHeader == "" && f.ProblemAction == "") {
		return nil
	}
	el := etree.NewElement("wsa:FaultDetail")
	el.CreateAttr("xmlns:wsa", NS200508)
	if f.ProblemHeader != "" {
		el.CreateElement("wsa:ProblemHeaderQName").SetText("wsa:" + f.ProblemHeader)
	}
	if f.ProblemAction != "" {
		el.CreateElement("wsa:ProblemAction").CreateElement("wsa:Action").SetText(f.ProblemAction)
	}
	return el
}

// InvalidHeader is the fault for addressing header header that is present but wrong:
// 1.0's InvalidAddressingHeader with subsubcode subsub (may be ""), 2004/03's
// InvalidMessageInformationHeader.
func InvalidHeader(v Version, subsub, header, reason string) *Fault {
	if v == V200403 {
		return &Fault{Version: v, Subcode: CodeInvalidMessageInformationHeader, ProblemHeader: header, Reason: reason}
	}
	return &Fault{Version: v, Subcode: CodeInvalidAddressingHeader, Subsubcode: subsub, ProblemHeader: header, Reason: reason}
}

// ActionNotSupported is the fault for a wsa:Action the endpoint does not support, in
// both versions.
func ActionNotSupported(v Version, action, reason string) *Fault {
	return &Fault{Version: v, Subcode: CodeActionNotSupported, ProblemAction: action, Reason: reason}
}
