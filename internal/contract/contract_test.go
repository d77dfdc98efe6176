package contract_test

import (
	"io/fs"
	"path"
	"testing"

	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/wsdl"
)

// TestLoadEveryServedWSDL reads every served WSDL as the container does: each must give
// one service whose operations have distinct input actions and input elements.
func TestLoadEveryServedWSDL(t *testing.T) {
	files, err := fs.Glob(wsdl.FS, "*/*.wsdl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 10 {
		t.Fatalf("found %d served WSDLs, want 5 services in 2 dialects: %v", len(files), files)
	}
	for _, f := range files {
		svc, err := contract.Load(contract.FS, "wsdl/"+f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if want := path.Base(f[:len(f)-len(".wsdl")]); svc.Name != want {
			t.Errorf("%s: service %q, want %q", f, svc.Name, want)
		}
		for _, op := range svc.Operations {
			if svc.ByAction(op.InputAction) != op || svc.ByInput(op.Input) != op {
				t.Errorf("%s: operation %s is not found by its input action and element", f, op.Name)
			}
		}
	}
}

// TestSubscriptionManagerDispatch pins what the container dispatches on for
// SubscriptionManagerService: operation names, input actions and input elements, in
// both dialects.
func TestSubscriptionManagerDispatch(t *testing.T) {
	const (
		gt4RP = "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties-1.2-draft-01.xsd"
		gt4RL = "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime-1.2-draft-01.xsd"
		gt4BN = "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification-1.2-draft-01.xsd"
		rp2   = "http://docs.oasis-open.org/wsrf/rp-2"
		rl2   = "http://docs.oasis-open.org/wsrf/rl-2"
		b2    = "http://docs.oasis-open.org/wsn/b-2"
	)
	type want struct {
		op, action string
		input      wsa.QName
	}
	q := func(ns, local string) wsa.QName { return wsa.QName{Space: ns, Local: local} }
	for file, ops := range map[string][]want{
		"wsdl/gt4/SubscriptionManagerService.wsdl": {
			{"GetResourceProperty", "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetResourceProperty", q(gt4RP, "GetResourceProperty")},
			{"GetMultipleResourceProperties", "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetMultipleResourceProperties", q(gt4RP, "GetMultipleResourceProperties")},
			{"QueryResourceProperties", "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/QueryResourceProperties", q(gt4RP, "QueryResourceProperties")},
			{"Destroy", "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime/Destroy", q(gt4RL, "Destroy")},
			{"SetTerminationTime", "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime/SetTerminationTime", q(gt4RL, "SetTerminationTime")},
			{"PauseSubscription", "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/PauseSubscription", q(gt4BN, "PauseSubscription")},
			{"ResumeSubscription", "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/ResumeSubscription", q(gt4BN, "ResumeSubscription")},
		},
		"wsdl/wsrf12/SubscriptionManagerService.wsdl": {
			{"GetResourcePropertyDocument", "http://docs.oasis-open.org/wsrf/rpw-2/GetResourcePropertyDocument/GetResourcePropertyDocumentRequest", q(rp2, "GetResourcePropertyDocument")},
			{"GetResourceProperty", "http://docs.oasis-open.org/wsrf/rpw-2/GetResourceProperty/GetResourcePropertyRequest", q(rp2, "GetResourceProperty")},
			{"GetMultipleResourceProperties", "http://docs.oasis-open.org/wsrf/rpw-2/GetMultipleResourceProperties/GetMultipleResourcePropertiesRequest", q(rp2, "GetMultipleResourceProperties")},
			{"QueryResourceProperties", "http://docs.oasis-open.org/wsrf/rpw-2/QueryResourceProperties/QueryResourcePropertiesRequest", q(rp2, "QueryResourceProperties")},
			{"Destroy", "http://docs.oasis-open.org/wsrf/rlw-2/ImmediateResourceTermination/DestroyRequest", q(rl2, "Destroy")},
			{"SetTerminationTime", "http://docs.oasis-open.org/wsrf/rlw-2/ScheduledResourceTermination/SetTerminationTimeRequest", q(rl2, "SetTerminationTime")},
			{"Renew", "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest", q(b2, "Renew")},
			{"Unsubscribe", "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest", q(b2, "Unsubscribe")},
			{"PauseSubscription", "http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/PauseSubscriptionRequest", q(b2, "PauseSubscription")},
			{"ResumeSubscription", "http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/ResumeSubscriptionRequest", q(b2, "ResumeSubscription")},
		},
	} {
		svc, err := contract.Load(contract.FS, file)
		if err != nil {
			t.Fatal(err)
		}
		if svc.Name != "SubscriptionManagerService" || svc.TargetNamespace != "http://vws.dev/ns/2026/notification" {
			t.Errorf("%s: service %s in %s", file, svc.Name, svc.TargetNamespace)
		}
		if len(svc.Operations) != len(ops) {
			t.Errorf("%s: %d operations, want %d", file, len(svc.Operations), len(ops))
		}
		for _, w := range ops {
			op := svc.ByAction(w.action)
			if op == nil || op.Name != w.op || op.Input != w.input {
				t.Errorf("%s: action %s dispatches to %+v, want %s with %s", file, w.action, op, w.op, w.input)
			}
		}
	}
}
