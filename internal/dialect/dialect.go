// Package dialect describes the two WSRF protocol generations vws speaks: GT 4.0
// (WS-Addressing 2004/03 with the 2004/06 WSRF drafts) and WSRF 1.2 with W3C
// WS-Addressing 1.0. Every service answers in the dialect its caller used.
package dialect

import "github.com/vws-grid/vws/internal/wsa"

// Dialect is one of the two WSRF protocol generations.
type Dialect struct {
	Name string // "gt4" or "wsrf12"
	// WSA is the WS-Addressing version that goes with the dialect.
	WSA wsa.Version
	// Namespaces of the WSRF specifications in this dialect.
	RP, RL, BF, BN string
	// ResourceUnknownNS is where ResourceUnknownFault lives (r-2 in 1.2, RP in GT4).
	ResourceUnknownNS string
	// OriginatorElement is BaseFault's originator EPR child. Both the 2004/06 draft-01
	// BaseFaultType GT 4.0 uses and bf-2 name it Originator (a 2004/03 or a W3C EPR).
	OriginatorElement string
	// FaultAction is the wsa:Action of fault messages.
	FaultAction string
	// WSDLDir is the folder of this dialect's WSDL files in the contract.
	WSDLDir string
}

// XPathDialect is the only query dialect vws evaluates.
const XPathDialect = "http://www.w3.org/TR/1999/REC-xpath-19991116"

// GT4 is the Globus Toolkit 4.0 dialect: WS-Addressing 2004/03 and the 2004/06 drafts.
var GT4 = &Dialect{
	Name:              "gt4",
	WSA:               wsa.V200403,
	RP:                "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties-1.2-draft-01.xsd",
	RL:                "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime-1.2-draft-01.xsd",
	BF:                "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-BaseFaults-1.2-draft-01.xsd",
	BN:                "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification-1.2-draft-01.xsd",
	ResourceUnknownNS: "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties-1.2-draft-01.xsd",
	OriginatorElement: "Originator",
	FaultAction:       wsa.NS200403 + "/fault",
	WSDLDir:           "gt4",
}

// WSRF12 is the OASIS WSRF 1.2 dialect with W3C WS-Addressing 1.0.
var WSRF12 = &Dialect{
	Name:              "wsrf12",
	WSA:               wsa.V200508,
	RP:                "http://docs.oasis-open.org/wsrf/rp-2",
	RL:                "http://docs.oasis-open.org/wsrf/rl-2",
	BF:                "http://docs.oasis-open.org/wsrf/bf-2",
	BN:                "http://docs.oasis-open.org/wsn/b-2",
	ResourceUnknownNS: "http://docs.oasis-open.org/wsrf/r-2",
	OriginatorElement: "Originator",
	FaultAction:       "http://docs.oasis-open.org/wsrf/fault",
	WSDLDir:           "wsrf12",
}

// Dialects lists both, GT4 first.
var Dialects = []*Dialect{GT4, WSRF12}

// ForWSA picks the dialect of a WS-Addressing version.
func ForWSA(v wsa.Version) *Dialect {
	if v == wsa.V200403 {
		return GT4
	}
	return WSRF12
}

// ForBodyNamespace picks the dialect whose WSRF namespaces include ns, for requests
// without addressing headers.
func ForBodyNamespace(ns string) (*Dialect, bool) {
	for _, d := range Dialects {
		switch ns {
		case d.RP, d.RL, d.BF, d.BN:
			return d, true
		}
	}
	return nil, false
}
