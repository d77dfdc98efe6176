// Package wssec signs and verifies SOAP 1.1 messages with OASIS WS-Security 1.0/1.1
// X.509 token profile signatures: a wsse:Security header holding a
// wsse:BinarySecurityToken (one certificate, or a PKIPath carrying a proxy chain), a
// wsu:Timestamp and a ds:Signature over the soap:Body, the Timestamp and every
// WS-Addressing header, each canonicalized with exclusive C14N.
//
// Both dialects are handled alike: GT 4.0 clients (WS-Addressing 2004/03) sign with
// rsa-sha1, WSRF 1.2 clients (WS-Addressing 2005/08) usually with rsa-sha256. Sites
// with ECDSA keys sign with ecdsa-sha256 (RFC 4051), at a small fraction of RSA's cost.
package wssec

import (
	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
)

// Namespaces and URIs of WS-Security, XML Signature and exclusive C14N.
const (
	NSWSSE    = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSWSU     = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	NSDS      = "http://www.w3.org/2000/09/xmldsig#"
	NSExcC14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
	nsXEnc    = "http://www.w3.org/2001/04/xmlenc#"
	// nsWSSE11 is WS-Security 1.1's (wsse11:SignatureConfirmation, a token WSS4J signs).
	nsWSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"

	ValueTypeX509v3        = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
	ValueTypeX509PKIPathv1 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509PKIPathv1"
	EncodingBase64Binary   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"

	AlgRSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	AlgRSASHA1   = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	// AlgECDSASHA256 is RFC 4051's ecdsa-sha256; its SignatureValue is r||s.
	AlgECDSASHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
	AlgSHA256      = "http://www.w3.org/2001/04/xmlenc#sha256"
	AlgSHA1        = "http://www.w3.org/2000/09/xmldsig#sha1"
)

// Fault codes of WS-Security 1.0 §12, as QNames with the prefix "wsse" (bound to NSWSSE
// when written into a SOAP fault).
const (
	CodeInvalidSecurity      = "wsse:InvalidSecurity"
	CodeInvalidSecurityToken = "wsse:InvalidSecurityToken"
	CodeFailedAuthentication = "wsse:FailedAuthentication"
	CodeFailedCheck          = "wsse:FailedCheck"
	CodeMessageExpired       = "wsse:MessageExpired"
)

// Error is a refused message: Code is one of the Code* fault codes, Reason says what
// was wrong. It unwraps to errdefs.ErrSecurity (and to Err, the underlying cause, when
// there is one).
type Error struct {
	Code   string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	return errdefs.ErrSecurity.Error() + ": " + e.Code + ": " + e.Reason
}

func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{errdefs.ErrSecurity, e.Err}
	}
	return []error{errdefs.ErrSecurity}
}

func fail(code, reason string) *Error { return &Error{Code: code, Reason: reason} }

// IsSecurityHeader reports whether h is a wsse:Security header block, so that the
// container's mustUnderstand check can count it as understood.
func IsSecurityHeader(h *etree.Element) bool {
	return h.Tag == "Security" && h.NamespaceURI() == NSWSSE
}

// targetsUs reports whether a header block is meant for the ultimate receiver: no
// actor, or the "next" actor.
func targetsUs(h *etree.Element) bool {
	for _, a := range h.Attr {
		if a.Key == "actor" && a.Space != "" && a.NamespaceURI() == soap.NS11 {
			return a.Value == "" || a.Value == soap.ActorNext
		}
	}
	return true
}

// attrNS returns the value of the attribute {ns}key of el, and whether it is there.
func attrNS(el *etree.Element, ns, key string) (string, bool) {
	for i := range el.Attr {
		a := &el.Attr[i]
		if a.Key == key && a.Space != "" && a.Space != "xmlns" && a.NamespaceURI() == ns {
			return a.Value, true
		}
	}
	return "", false
}

// attrPlain returns the value of the unqualified attribute key of el.
func attrPlain(el *etree.Element, key string) (string, bool) {
	for _, a := range el.Attr {
		if a.Space == "" && a.Key == key {
			return a.Value, true
		}
	}
	return "", false
}

func is(el *etree.Element, ns, tag string) bool {
	return el.Tag == tag && el.NamespaceURI() == ns
}

// child returns the only child {ns}tag of el; nil and an error text when there is
// none or more than one.
func child(el *etree.Element, ns, tag string) (*etree.Element, string) {
	var found *etree.Element
	for _, c := range el.ChildElements() {
		if is(c, ns, tag) {
			if found != nil {
				return nil, "more than one " + tag + " in " + el.Tag
			}
			found = c
		}
	}
	if found == nil {
		return nil, "no " + tag + " in " + el.Tag
	}
	return found, ""
}
