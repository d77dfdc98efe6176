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
	// Notification holds the subscription resources' own names (their key, their
	// property document); the messages themselves are WS-BaseNotification's.
	Notification = "http://vws.dev/ns/2026/notification"
)

// WorkspaceKey is the reference property/parameter that addresses one workspace.
var WorkspaceKey = wsa.QName{Space: Workspace, Local: "WorkspaceKey"}

// SubscriptionKey is the reference property/parameter that addresses one subscription.
var SubscriptionKey = wsa.QName{Space: Notification, Local: "SubscriptionKey"}

// Service names, as mounted under /wsrf/services/.
const (
	FactoryService    = "WorkspaceFactoryService"
	WorkspaceService  = "WorkspaceService"
	RepositoryService = "WorkspaceRepositoryService"
	ManagerService    = "WorkspaceManagerService"
	// SubscriptionManagerService holds the subscriptions made with Subscribe.
	SubscriptionManagerService = "SubscriptionManagerService"
)

// Q is shorthand for a qualified name.
func Q(ns, local string) wsa.QName { return wsa.QName{Space: ns, Local: local} }
