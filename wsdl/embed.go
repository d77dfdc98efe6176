// Package wsdl holds the vws service contracts: one WSDL 1.1 document/literal file per
// service and dialect (gt4/ for Globus Toolkit 4.0 clients, wsrf12/ for WSRF 1.2 /
// WSN 1.3 clients), the code-generation WSDLs in codegen/, and the Go message types
// generated from them in gen/.
//
// The WSDLs import the schemas of package schema with relative schemaLocations
// (../../schema/...); a server serving them rewrites those to absolute URLs.
package wsdl

import "embed"

// FS holds the served WSDL files, by path: "gt4/WorkspaceService.wsdl",
// "wsrf12/WorkspaceFactoryService.wsdl", ...
//
//go:embed gt4/*.wsdl wsrf12/*.wsdl
var FS embed.FS
