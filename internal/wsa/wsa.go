// Package wsa implements the two WS-Addressing versions vws speaks: the March 2004
// member submission (what GT 4.0 clients send) and W3C WS-Addressing 1.0.
package wsa

import (
	"errors"
	"fmt"

	"github.com/beevik/etree"
	"github.com/google/uuid"
)

// Version is a WS-Addressing version.
type Version int

const (
	// V200403 is the 2004/03 member submission used by Globus Toolkit 4.0.
	V200403 Version = iota + 1
	// V200508 is W3C WS-Addressing 1.0, used with WSRF 1.2.
	V200508
)

// Namespace URIs of the two versions.
const (
	NS200403 = "http://schemas.xmlsoap.org/ws/2004/03/addressing"
	NS200508 = "http://www.w3.org/2005/08/addressing"
)

// Namespace returns the version's namespace URI.
func (v Version) Namespace() string {
	if v == V200403 {
		return NS200403
	}
	return NS200508
}

// Anonymous is the version's anonymous endpoint address.
func (v Version) Anonymous() string {
	if v == V200403 {
		return NS200403 + "/role/anonymous"
	}
	return NS200508 + "/anonymous"
}

// None is the address whose messages are discarded, not sent (1.0 Core §2.1); the
// 2004/03 submission defines none, so "".
func (v Version) None() string {
	if v == V200508 {
		return NS200508 + "/none"
	}
	return ""
}

// ReferenceContainer is the EPR child that holds the resource key:
// ReferenceProperties (2004/03) or ReferenceParameters (W3C).
func (v Version) ReferenceContainer() string {
	if v == V200403 {
		return "ReferenceProperties"
	}
	return "ReferenceParameters"
}

// FaultAction is the action of a fault message when no more specific one applies.
func (v Version) FaultAction() string {
	if v == V200403 {
		return NS200403 + "/fault"
	}
	return NS200508 + "/fault"
}

func (v Version) String() string {
	switch v {
	case V200403:
		return "wsa-2004/03"
	case V200508:
		return "wsa-1.0"
	}
	return "wsa-unknown"
}

// VersionOf maps a namespace URI to its version; ok is false for any other namespace.
func VersionOf(ns string) (Version, bool) {
	switch ns {
	case NS200403:
		return V200403, true
	case NS200508:
		return V200508, true
	}
	return 0, false
}

// MAPs are the message addressing properties of one message.
type MAPs struct {
	Version   Version
	To        string
	Action    string
	MessageID string
	RelatesTo string
	From      *EPR
	ReplyTo   *EPR
	FaultTo   *EPR
}

// ReadMAPs extracts addressing properties from SOAP header blocks. The version is the
// namespace of the first addressing header seen; an addressing header of the other
// version is a *Fault, as a repeated one is. An invalid addressing header makes the
// error a *Fault; every header is read all the same (the first of a repeated one
// counts), so that the fault can still name the request's MessageID in its RelatesTo.
func ReadMAPs(headers []*etree.Element) (MAPs, error) {
	var m MAPs
	var fault *Fault
	seen := map[string]bool{}
	for _, h := range headers {
		v, ok := VersionOf(h.NamespaceURI())
		if !ok {
			continue
		}
		if m.Version == 0 {
			m.Version = v
		} else if v != m.Version {
			// Two versions say two things at once (an action in each, say): which the
			// sender meant would be a guess, and whatever reads the other version (a
			// proxy, a log) would see another request than the one carried out.
			if fault == nil && IsAddressingHeader(h) {
				fault = InvalidHeader(m.Version, "", h.Tag, fmt.Sprintf(
					"wsa:%s is in %s, but the request's addressing headers before it are in %s; send all of them in one WS-Addressing version",
					h.Tag, v.Namespace(), m.Version.Namespace()))
			}
			continue
		}
		switch h.Tag {
		case "To", "Action", "MessageID", "From", "ReplyTo", "FaultTo":
			// WS-Addressing allows each once (RelatesTo may repeat): which of two a
			// sender meant would be a guess.
			if seen[h.Tag] {
				if fault == nil {
					fault = InvalidHeader(v, CodeInvalidCardinality, h.Tag,
						fmt.Sprintf("wsa:%s appears more than once; WS-Addressing allows one", h.Tag))
				}
				continue
			}
			seen[h.Tag] = true
		}
		switch h.Tag {
		case "To":
			m.To = trimText(h)
		case "Action":
			m.Action = trimText(h)
		case "MessageID":
			m.MessageID = trimText(h)
		case "RelatesTo":
			m.RelatesTo = trimText(h)
		case "From", "ReplyTo", "FaultTo":
			epr, err := ParseEPR(h)
			if err != nil {
				if fault == nil {
					code := CodeInvalidEPR
					if errors.Is(err, ErrMissingAddress) {
						code = CodeMissingAddressInEPR
					}
					fault = InvalidHeader(v, code, h.Tag, fmt.Sprintf("wsa:%s: %v", h.Tag, err))
				}
				continue
			}
			switch h.Tag {
			case "From":
				m.From = epr
			case "ReplyTo":
				m.ReplyTo = epr
			default:
				m.FaultTo = epr
			}
		}
	}
	if fault != nil {
		return m, fault
	}
	return m, nil
}

// IsAddressingHeader reports whether h is a WS-Addressing header this package
// understands, for mustUnderstand processing.
func IsAddressingHeader(h *etree.Element) bool {
	if _, ok := VersionOf(h.NamespaceURI()); !ok {
		return false
	}
	switch h.Tag {
	case "To", "Action", "MessageID", "RelatesTo", "From", "ReplyTo", "FaultTo":
		return true
	}
	return false
}

func trimText(e *etree.Element) string {
	return trimSpace(e.Text())
}

func trimSpace(s string) string {
	start, end := 0, len(s)
	for start < end && isSpace(s[start]) {
		start++
	}
	for end > start && isSpace(s[end-1]) {
		end--
	}
	return s[start:end]
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// Header is the addressing header {v}local holding text.
func (v Version) Header(local, text string) *etree.Element {
	el := etree.NewElement("wsa:" + local)
	el.CreateAttr("xmlns:wsa", v.Namespace())
	el.SetText(text)
	return el
}

// MessageHeaders are the addressing headers every message vws sends carries: To,
// Action, and a MessageID of its own.
func (v Version) MessageHeaders(to, action string) []*etree.Element {
	return []*etree.Element{v.Header("To", to), v.Header("Action", action), v.Header("MessageID", "urn:uuid:"+uuid.NewString())}
}
