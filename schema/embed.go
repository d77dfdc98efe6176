// Package schema holds the XML Schemas of the vws contract: the workspace description and
// the service messages (vws/), the subsets of the WS-Addressing / WSRF / WSN schemas of
// each dialect that the WSDLs use (gt4/, wsrf12/), the vws faults of each dialect
// (gt4/vws-faults.xsd, wsrf12/vws-faults.xsd) and xml/xml.xsd (xml:lang).
//
// Sample workspace descriptions, valid and invalid, are in samples/.
package schema

import "embed"

// FS holds every schema file, by path: "vws/workspace.xsd", "gt4/vws-faults.xsd",
// "wsrf12/bf-2.xsd", "xml/xml.xsd", ...
//
//go:embed vws/*.xsd gt4/*.xsd wsrf12/*.xsd xml/*.xsd
var FS embed.FS
