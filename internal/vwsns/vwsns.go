// Package vwsns names the XML namespaces of vws's own contract (schema/vws).
package vwsns

import "github.com/vws-grid/vws/internal/wsa"

// The vws namespaces.
const (
	Workspace  = "http://vws.dev/ns/2026/workspace"
	Hardware   = Workspace + "/hardware"
	Network    = Workspace + "/network"
	Software   = Workspace + "/software"
	Capability = Workspace + "/capability"
	Factory    = "http://vws.dev/ns/2026/factory"
	Repository = "http://vws.dev/ns/2026/repository"
	Manager    = "http://vws.dev/ns/2026/manager"
	Faults     = "http://vws.dev/ns/2026/faults"
)

// WorkspaceKey is the reference property/parameter that addresses one workspace.
var WorkspaceKey = wsa.QName{Space: Workspace, Local: "WorkspaceKey"}

// Service names, as mounted under /wsrf/services/.
const (
	FactoryService    = "WorkspaceFactoryService"
	WorkspaceService  = "WorkspaceService"
	RepositoryService = "WorkspaceRepositoryService"
	ManagerService    = "WorkspaceManagerService"
)

// Q is shorthand for a qualified name.
func Q(ns, local string) wsa.QName { return wsa.QName{Space: ns, Local: local} }
