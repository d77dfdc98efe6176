package wsdl_test

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vws-grid/vws/wsdl"
)

const (
	nsWSDL  = "http://schemas.xmlsoap.org/wsdl/"
	nsSOAP  = "http://schemas.xmlsoap.org/wsdl/soap/"
	nsXSD   = "http://www.w3.org/2001/XMLSchema"
	nsWSA04 = "http://schemas.xmlsoap.org/ws/2004/03/addressing"
	nsWSAW  = "http://www.w3.org/2006/05/addressing/wsdl"
	nsVWF   = "http://vws.dev/ns/2026/faults"
)

var services = []string{"WorkspaceFactoryService", "WorkspaceService", "WorkspaceRepositoryService", "WorkspaceManagerService",
	"SubscriptionManagerService"}

// dialect describes what every WSDL of one dialect must say.
type dialect struct {
	name        string
	actionNS    string // namespace of the Action attribute on input/output/fault
	otherNS     string // the other dialect's action namespace, which must not appear
	rpAttrNS    string // namespace of the portType's ResourceProperties attribute
	faultAction string
	rlNS        string // WS-ResourceLifetime namespace (CurrentTime, TerminationTime)
	// Standard operations: input element, output element, input action, output action.
	std map[string][4]string
	// The element each standard fault name must refer to (by operation group).
	resourceUnknown map[string]string
}

const (
	gt4RP = "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties-1.2-draft-01.xsd"
	gt4RL = "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime-1.2-draft-01.xsd"
	gt4BN = "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification-1.2-draft-01.xsd"
	rp2   = "http://docs.oasis-open.org/wsrf/rp-2"
	rl2   = "http://docs.oasis-open.org/wsrf/rl-2"
	r2    = "http://docs.oasis-open.org/wsrf/r-2"
	b2    = "http://docs.oasis-open.org/wsn/b-2"
)

func q(ns, local string) string { return "{" + ns + "}" + local }

var dialects = []dialect{
	{
		name:        "gt4",
		actionNS:    nsWSA04,
		otherNS:     nsWSAW,
		rpAttrNS:    gt4RP,
		faultAction: "http://schemas.xmlsoap.org/ws/2004/03/addressing/fault",
		rlNS:        gt4RL,
		std: map[string][4]string{
			"GetResourceProperty": {q(gt4RP, "GetResourceProperty"), q(gt4RP, "GetResourcePropertyResponse"),
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetResourceProperty",
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetResourcePropertyResponse"},
			"GetMultipleResourceProperties": {q(gt4RP, "GetMultipleResourceProperties"), q(gt4RP, "GetMultipleResourcePropertiesResponse"),
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetMultipleResourceProperties",
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetMultipleResourcePropertiesResponse"},
			"QueryResourceProperties": {q(gt4RP, "QueryResourceProperties"), q(gt4RP, "QueryResourcePropertiesResponse"),
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/QueryResourceProperties",
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/QueryResourcePropertiesResponse"},
			"SetResourceProperties": {q(gt4RP, "SetResourceProperties"), q(gt4RP, "SetResourcePropertiesResponse"),
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/SetResourceProperties",
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/SetResourcePropertiesResponse"},
			"Destroy": {q(gt4RL, "Destroy"), q(gt4RL, "DestroyResponse"),
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime/Destroy",
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime/DestroyResponse"},
			"SetTerminationTime": {q(gt4RL, "SetTerminationTime"), q(gt4RL, "SetTerminationTimeResponse"),
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime/SetTerminationTime",
				"http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime/SetTerminationTimeResponse"},
			"Subscribe": {q(gt4BN, "Subscribe"), q(gt4BN, "SubscribeResponse"),
				"http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/Subscribe",
				"http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/SubscribeResponse"},
			// The draft's SubscriptionManager; a subscription ends with Destroy.
			"PauseSubscription": {q(gt4BN, "PauseSubscription"), q(gt4BN, "PauseSubscriptionResponse"),
				"http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/PauseSubscription",
				"http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/PauseSubscriptionResponse"},
			"ResumeSubscription": {q(gt4BN, "ResumeSubscription"), q(gt4BN, "ResumeSubscriptionResponse"),
				"http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/ResumeSubscription",
				"http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/ResumeSubscriptionResponse"},
		},
		// GT 4.0 (draft 01) declares ResourceUnknownFault separately in the RP, RL and BN
		// namespaces; vws operations use the RP one.
		resourceUnknown: map[string]string{
			"Destroy": q(gt4RL, "ResourceUnknownFault"), "SetTerminationTime": q(gt4RL, "ResourceUnknownFault"),
			"Subscribe": q(gt4BN, "ResourceUnknownFault"), "PauseSubscription": q(gt4BN, "ResourceUnknownFault"),
			"ResumeSubscription": q(gt4BN, "ResourceUnknownFault"), "": q(gt4RP, "ResourceUnknownFault"),
		},
	},
	{
		name:        "wsrf12",
		actionNS:    nsWSAW,
		otherNS:     nsWSA04,
		rpAttrNS:    rp2,
		faultAction: "http://docs.oasis-open.org/wsrf/fault",
		rlNS:        rl2,
		std: map[string][4]string{
			"GetResourcePropertyDocument": {q(rp2, "GetResourcePropertyDocument"), q(rp2, "GetResourcePropertyDocumentResponse"),
				"http://docs.oasis-open.org/wsrf/rpw-2/GetResourcePropertyDocument/GetResourcePropertyDocumentRequest",
				"http://docs.oasis-open.org/wsrf/rpw-2/GetResourcePropertyDocument/GetResourcePropertyDocumentResponse"},
			"GetResourceProperty": {q(rp2, "GetResourceProperty"), q(rp2, "GetResourcePropertyResponse"),
				"http://docs.oasis-open.org/wsrf/rpw-2/GetResourceProperty/GetResourcePropertyRequest",
				"http://docs.oasis-open.org/wsrf/rpw-2/GetResourceProperty/GetResourcePropertyResponse"},
			"GetMultipleResourceProperties": {q(rp2, "GetMultipleResourceProperties"), q(rp2, "GetMultipleResourcePropertiesResponse"),
				"http://docs.oasis-open.org/wsrf/rpw-2/GetMultipleResourceProperties/GetMultipleResourcePropertiesRequest",
				"http://docs.oasis-open.org/wsrf/rpw-2/GetMultipleResourceProperties/GetMultipleResourcePropertiesResponse"},
			"QueryResourceProperties": {q(rp2, "QueryResourceProperties"), q(rp2, "QueryResourcePropertiesResponse"),
				"http://docs.oasis-open.org/wsrf/rpw-2/QueryResourceProperties/QueryResourcePropertiesRequest",
				"http://docs.oasis-open.org/wsrf/rpw-2/QueryResourceProperties/QueryResourcePropertiesResponse"},
			"SetResourceProperties": {q(rp2, "SetResourceProperties"), q(rp2, "SetResourcePropertiesResponse"),
				"http://docs.oasis-open.org/wsrf/rpw-2/SetResourceProperties/SetResourcePropertiesRequest",
				"http://docs.oasis-open.org/wsrf/rpw-2/SetResourceProperties/SetResourcePropertiesResponse"},
			"Destroy": {q(rl2, "Destroy"), q(rl2, "DestroyResponse"),
				"http://docs.oasis-open.org/wsrf/rlw-2/ImmediateResourceTermination/DestroyRequest",
				"http://docs.oasis-open.org/wsrf/rlw-2/ImmediateResourceTermination/DestroyResponse"},
			"SetTerminationTime": {q(rl2, "SetTerminationTime"), q(rl2, "SetTerminationTimeResponse"),
				"http://docs.oasis-open.org/wsrf/rlw-2/ScheduledResourceTermination/SetTerminationTimeRequest",
				"http://docs.oasis-open.org/wsrf/rlw-2/ScheduledResourceTermination/SetTerminationTimeResponse"},
			"Subscribe": {q(b2, "Subscribe"), q(b2, "SubscribeResponse"),
				"http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest",
				"http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeResponse"},
			// bw-2.wsdl names no actions: these are the WS-Addressing default actions of
			// the port type that first declares each operation, as the WSN 1.3 text says.
			"Renew": {q(b2, "Renew"), q(b2, "RenewResponse"),
				"http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest",
				"http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewResponse"},
			"Unsubscribe": {q(b2, "Unsubscribe"), q(b2, "UnsubscribeResponse"),
				"http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest",
				"http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeResponse"},
			"PauseSubscription": {q(b2, "PauseSubscription"), q(b2, "PauseSubscriptionResponse"),
				"http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/PauseSubscriptionRequest",
				"http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/PauseSubscriptionResponse"},
			"ResumeSubscription": {q(b2, "ResumeSubscription"), q(b2, "ResumeSubscriptionResponse"),
				"http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/ResumeSubscriptionRequest",
				"http://docs.oasis-open.org/wsn/bw-2/PausableSubscriptionManager/ResumeSubscriptionResponse"},
		},
		resourceUnknown: map[string]string{"": q(r2, "ResourceUnknownFault")},
	},
}

// The WS-ResourceProperties reads every service declares first, per dialect: WS-RP 1.2
// has GetResourcePropertyDocument (first, as in rpw-2.wsdl); the 2004/06 draft of GT 4.0
// has no such operation.
var rpReads = map[string][]string{
	"gt4":    {"GetResourceProperty", "GetMultipleResourceProperties", "QueryResourceProperties"},
	"wsrf12": {"GetResourcePropertyDocument", "GetResourceProperty", "GetMultipleResourceProperties", "QueryResourceProperties"},
}

// The operation names the runtime registers handlers for, per service.
var expectedOps = map[string]struct {
	portType, tns string
	// std are the standard operations after the reads of rpReads.
	std, own []string
	// stdIn overrides std in the named dialect (the subscription manager's operations
	// differ between WSN 1.2 draft 01 and WSN 1.3).
	stdIn map[string][]string
}{
	"WorkspaceFactoryService": {"WorkspaceFactoryPortType", "http://vws.dev/ns/2026/factory", nil, []string{"Create"}, nil},
	"WorkspaceService": {"WorkspacePortType", "http://vws.dev/ns/2026/workspace",
		[]string{"SetResourceProperties", "Destroy", "SetTerminationTime", "Subscribe"},
		[]string{"Clone", "CheckOut", "CheckIn", "ReportState", "Place", "Reclaim", "Disown"}, nil},
	"WorkspaceRepositoryService": {"WorkspaceRepositoryPortType", "http://vws.dev/ns/2026/repository", nil,
		[]string{"ListWorkspaces", "ListImages", "RegisterWorkspace", "AnnounceHost"}, nil},
	"WorkspaceManagerService": {"WorkspaceManagerPortType", "http://vws.dev/ns/2026/manager", []string{"SetResourceProperties"},
		[]string{"Deploy", "Start", "Console", "Pause", "Unpause", "Shutdown", "Undeploy"}, nil},
	// Only standard operations: WS-ResourceProperties, WS-ResourceLifetime and the
	// subscription manager of each dialect's WS-BaseNotification.
	"SubscriptionManagerService": {"SubscriptionManagerPortType", "http://vws.dev/ns/2026/notification", nil, nil,
		map[string][]string{
			"gt4":    {"Destroy", "SetTerminationTime", "PauseSubscription", "ResumeSubscription"},
			"wsrf12": {"Destroy", "SetTerminationTime", "Renew", "Unsubscribe", "PauseSubscription", "ResumeSubscription"},
		}},
}

// stdOps is the standard operations svc must declare in dialect dl.
func stdOps(svc, dl string) []string {
	want := expectedOps[svc]
	rest := want.std
	if ops, ok := want.stdIn[dl]; ok {
		rest = ops
	}
	return append(slices.Clone(rpReads[dl]), rest...)
}

// ---------------------------------------------------------------- WSDL model

type definitions struct {
	Name            string     `xml:"name,attr"`
	TargetNamespace string     `xml:"targetNamespace,attr"`
	Imports         []locRef   `xml:"http://schemas.xmlsoap.org/wsdl/ import"`
	Schemas         []xsSchema `xml:"types>schema"`
	Messages        []struct {
		Name  string `xml:"name,attr"`
		Parts []struct {
			Name    string `xml:"name,attr"`
			Element string `xml:"element,attr"`
			Type    string `xml:"type,attr"`
		} `xml:"http://schemas.xmlsoap.org/wsdl/ part"`
	} `xml:"http://schemas.xmlsoap.org/wsdl/ message"`
	PortTypes []struct {
		Name       string      `xml:"name,attr"`
		Attrs      []xml.Attr  `xml:",any,attr"`
		Operations []operation `xml:"http://schemas.xmlsoap.org/wsdl/ operation"`
	} `xml:"http://schemas.xmlsoap.org/wsdl/ portType"`
	Bindings []struct {
		Name string `xml:"name,attr"`
		Type string `xml:"type,attr"`
		SOAP struct {
			Style     string `xml:"style,attr"`
			Transport string `xml:"transport,attr"`
		} `xml:"http://schemas.xmlsoap.org/wsdl/soap/ binding"`
		Operations []struct {
			Name   string `xml:"name,attr"`
			SOAPOp struct {
				SOAPAction string `xml:"soapAction,attr"`
			} `xml:"http://schemas.xmlsoap.org/wsdl/soap/ operation"`
			Input  soapBody `xml:"http://schemas.xmlsoap.org/wsdl/ input"`
			Output soapBody `xml:"http://schemas.xmlsoap.org/wsdl/ output"`
			Faults []struct {
				Name string `xml:"name,attr"`
				SOAP struct {
					Name string `xml:"name,attr"`
					Use  string `xml:"use,attr"`
				} `xml:"http://schemas.xmlsoap.org/wsdl/soap/ fault"`
			} `xml:"http://schemas.xmlsoap.org/wsdl/ fault"`
		} `xml:"http://schemas.xmlsoap.org/wsdl/ operation"`
	} `xml:"http://schemas.xmlsoap.org/wsdl/ binding"`
	Services []struct {
		Name  string `xml:"name,attr"`
		Ports []struct {
			Name    string `xml:"name,attr"`
			Binding string `xml:"binding,attr"`
			Address struct {
				Location string `xml:"location,attr"`
			} `xml:"http://schemas.xmlsoap.org/wsdl/soap/ address"`
		} `xml:"http://schemas.xmlsoap.org/wsdl/ port"`
	} `xml:"http://schemas.xmlsoap.org/wsdl/ service"`

	ns   map[string]string // prefixes declared on wsdl:definitions
	path string
}

type soapBody struct {
	Body struct {
		Use string `xml:"use,attr"`
	} `xml:"http://schemas.xmlsoap.org/wsdl/soap/ body"`
}

type locRef struct {
	Namespace      string `xml:"namespace,attr"`
	Location       string `xml:"location,attr"`
	SchemaLocation string `xml:"schemaLocation,attr"`
}

type xsSchema struct {
	TargetNamespace string   `xml:"targetNamespace,attr"`
	Imports         []locRef `xml:"http://www.w3.org/2001/XMLSchema import"`
	Includes        []locRef `xml:"http://www.w3.org/2001/XMLSchema include"`
	Elements        []struct {
		Name string `xml:"name,attr"`
		Refs []struct {
			Ref string `xml:"ref,attr"`
		} `xml:"http://www.w3.org/2001/XMLSchema complexType>sequence>element"`
	} `xml:"http://www.w3.org/2001/XMLSchema element"`
}

type operation struct {
	Name   string     `xml:"name,attr"`
	Input  ioMsg      `xml:"http://schemas.xmlsoap.org/wsdl/ input"`
	Output ioMsg      `xml:"http://schemas.xmlsoap.org/wsdl/ output"`
	Faults []faultMsg `xml:"http://schemas.xmlsoap.org/wsdl/ fault"`
}

type ioMsg struct {
	Message string     `xml:"message,attr"`
	Attrs   []xml.Attr `xml:",any,attr"`
}

type faultMsg struct {
	Name    string     `xml:"name,attr"`
	Message string     `xml:"message,attr"`
	Attrs   []xml.Attr `xml:",any,attr"`
}

func attr(attrs []xml.Attr, ns, local string) (string, bool) {
	for _, a := range attrs {
		if a.Name.Space == ns && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

func hasAttrNS(attrs []xml.Attr, ns string) bool {
	for _, a := range attrs {
		if a.Name.Space == ns {
			return true
		}
	}
	return false
}

func loadWSDL(t *testing.T, path string) *definitions {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := &definitions{path: path, ns: map[string]string{}}
	if err := xml.Unmarshal(data, d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	// The prefixes used in QName-valued attributes are all declared on the root.
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	for {
		tok, err := dec.RawToken()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if a.Name.Space == "xmlns" {
					d.ns[a.Name.Local] = a.Value
				}
			}
			break
		}
	}
	return d
}

// resolve turns a prefixed QName attribute value into {ns}local.
func (d *definitions) resolve(t *testing.T, qname string) string {
	t.Helper()
	prefix, local, ok := strings.Cut(qname, ":")
	if !ok {
		t.Fatalf("%s: unprefixed QName %q", d.path, qname)
	}
	ns, ok := d.ns[prefix]
	if !ok {
		t.Fatalf("%s: prefix %q of %q is not declared on wsdl:definitions", d.path, prefix, qname)
	}
	return q(ns, local)
}

func (d *definitions) messageElement(t *testing.T, msgQName string) string {
	t.Helper()
	name := d.resolve(t, msgQName)
	for _, m := range d.Messages {
		if q(d.TargetNamespace, m.Name) == name {
			if len(m.Parts) != 1 || m.Parts[0].Element == "" {
				t.Fatalf("%s: message %s must have exactly one element part", d.path, m.Name)
			}
			return d.resolve(t, m.Parts[0].Element)
		}
	}
	t.Fatalf("%s: no message %s", d.path, msgQName)
	return ""
}

func servedWSDL(dialect, service string) string {
	return filepath.Join(dialect, service+".wsdl")
}

// ---------------------------------------------------------------- tests

func TestWellFormed(t *testing.T) {
	paths, err := filepath.Glob("*/*.wsdl")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 14 {
		t.Fatalf("found %d WSDL files, want 10 served + 4 code-generation: %v", len(paths), paths)
	}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		d := xml.NewDecoder(f)
		for {
			if _, err = d.Token(); err != nil {
				break
			}
		}
		f.Close()
		if err != io.EOF {
			t.Errorf("%s is not well-formed: %v", p, err)
		}
	}
}

// TestContract checks, for each service and dialect, the operations, the action of every
// input, output and fault, the fault elements, the resource-property document, the
// binding and the service address.
func TestContract(t *testing.T) {
	for _, dl := range dialects {
		for _, svc := range services {
			t.Run(dl.name+"/"+svc, func(t *testing.T) {
				checkContract(t, dl, svc)
			})
		}
	}
}

func checkContract(t *testing.T, dl dialect, svc string) {
	d := loadWSDL(t, servedWSDL(dl.name, svc))
	want := expectedOps[svc]
	if d.Name != svc || d.TargetNamespace != want.tns {
		t.Errorf("definitions name=%q targetNamespace=%q, want %q %q", d.Name, d.TargetNamespace, svc, want.tns)
	}
	if len(d.PortTypes) != 1 || d.PortTypes[0].Name != want.portType {
		t.Fatalf("want exactly one portType %s", want.portType)
	}
	pt := d.PortTypes[0]

	// The resource-property document: declared by the portType, defined in the types.
	rpDoc, ok := attr(pt.Attrs, dl.rpAttrNS, "ResourceProperties")
	if !ok {
		t.Fatalf("portType lacks the {%s}ResourceProperties attribute", dl.rpAttrNS)
	}
	rpName := d.resolve(t, rpDoc)
	if len(d.Schemas) != 1 {
		t.Fatalf("want one inline schema, found %d", len(d.Schemas))
	}
	found := false
	for _, el := range d.Schemas[0].Elements {
		if q(d.Schemas[0].TargetNamespace, el.Name) == rpName {
			found = true
			refs := map[string]bool{}
			for _, r := range el.Refs {
				refs[d.resolve(t, r.Ref)] = true
			}
			for _, must := range []string{q(dl.rlNS, "CurrentTime")} {
				if !refs[must] {
					t.Errorf("resource-property document %s lacks %s", rpName, must)
				}
			}
			if svc == "WorkspaceService" && !refs[q(dl.rlNS, "TerminationTime")] {
				t.Errorf("resource-property document %s lacks the lifetime's TerminationTime", rpName)
			}
		}
	}
	if !found {
		t.Errorf("resource-property document %s is not declared in wsdl:types", rpName)
	}

	// Operations, exactly.
	var names []string
	for _, op := range pt.Operations {
		names = append(names, op.Name)
	}
	stdNames := stdOps(svc, dl.name)
	wantNames := append(slices.Clone(stdNames), want.own...)
	if !slices.Equal(names, wantNames) {
		t.Errorf("operations %v, want %v", names, wantNames)
	}

	for _, op := range pt.Operations {
		for _, a := range append(append(slices.Clone(op.Input.Attrs), op.Output.Attrs...), faultAttrs(op)...) {
			if a.Name.Space == dl.otherNS {
				t.Errorf("%s: the other dialect's Action attribute {%s}%s", op.Name, a.Name.Space, a.Name.Local)
			}
		}
		in, ok1 := attr(op.Input.Attrs, dl.actionNS, "Action")
		out, ok2 := attr(op.Output.Attrs, dl.actionNS, "Action")
		if !ok1 || !ok2 {
			t.Errorf("%s: input and output must both carry {%s}Action", op.Name, dl.actionNS)
			continue
		}
		inEl := d.messageElement(t, op.Input.Message)
		outEl := d.messageElement(t, op.Output.Message)
		if std, isStd := dl.std[op.Name]; isStd {
			if inEl != std[0] || outEl != std[1] || in != std[2] || out != std[3] {
				t.Errorf("%s: got (%s, %s, %s, %s), want %v", op.Name, inEl, outEl, in, out, std)
			}
		} else {
			wantIn := fmt.Sprintf("%s/%s/%sRequest", want.tns, want.portType, op.Name)
			wantOut := fmt.Sprintf("%s/%s/%sResponse", want.tns, want.portType, op.Name)
			if in != wantIn || out != wantOut {
				t.Errorf("%s: actions %s / %s, want %s / %s", op.Name, in, out, wantIn, wantOut)
			}
			if inEl != q(want.tns, op.Name) || outEl != q(want.tns, op.Name+"Response") {
				t.Errorf("%s: elements %s / %s, want {%s}%s and ...Response", op.Name, inEl, outEl, want.tns, op.Name)
			}
		}
		faults := map[string]string{}
		for _, f := range op.Faults {
			fa, ok := attr(f.Attrs, dl.actionNS, "Action")
			if !ok || fa != dl.faultAction {
				t.Errorf("%s/%s: fault action %q, want %q", op.Name, f.Name, fa, dl.faultAction)
			}
			el := d.messageElement(t, f.Message)
			if local := el[strings.Index(el, "}")+1:]; local != f.Name {
				t.Errorf("%s: fault %s refers to element %s", op.Name, f.Name, el)
			}
			faults[f.Name] = el
		}
		for _, must := range []string{"WorkspaceAuthorizationFault", "ServiceFault"} {
			if faults[must] != q(nsVWF, must) {
				t.Errorf("%s: fault %s is %q, want {%s}%s", op.Name, must, faults[must], nsVWF, must)
			}
		}
		if ru, ok := faults["ResourceUnknownFault"]; ok {
			wantRU := dl.resourceUnknown[op.Name]
			if wantRU == "" {
				wantRU = dl.resourceUnknown[""]
			}
			if ru != wantRU {
				t.Errorf("%s: ResourceUnknownFault is %s, want %s", op.Name, ru, wantRU)
			}
		} else if slices.Contains(stdNames, op.Name) || svc == "WorkspaceService" {
			t.Errorf("%s: no ResourceUnknownFault", op.Name)
		}
	}
	checkBinding(t, d, dl, svc)
}

func faultAttrs(op operation) []xml.Attr {
	var out []xml.Attr
	for _, f := range op.Faults {
		out = append(out, f.Attrs...)
	}
	return out
}

func checkBinding(t *testing.T, d *definitions, dl dialect, svc string) {
	pt := d.PortTypes[0]
	if len(d.Bindings) != 1 {
		t.Fatalf("want one binding, found %d", len(d.Bindings))
	}
	b := d.Bindings[0]
	if d.resolve(t, b.Type) != q(d.TargetNamespace, pt.Name) {
		t.Errorf("binding type %s is not the portType", b.Type)
	}
	if b.SOAP.Style != "document" || b.SOAP.Transport != "http://schemas.xmlsoap.org/soap/http" {
		t.Errorf("binding must be SOAP 1.1 document over HTTP: %+v", b.SOAP)
	}
	if len(b.Operations) != len(pt.Operations) {
		t.Errorf("binding has %d operations, portType %d", len(b.Operations), len(pt.Operations))
	}
	for i, bop := range b.Operations {
		if i >= len(pt.Operations) {
			break
		}
		op := pt.Operations[i]
		if bop.Name != op.Name {
			t.Errorf("binding operation %d is %s, portType's is %s", i, bop.Name, op.Name)
			continue
		}
		in, _ := attr(op.Input.Attrs, dl.actionNS, "Action")
		if bop.SOAPOp.SOAPAction != in {
			t.Errorf("%s: soapAction %q differs from the input action %q", op.Name, bop.SOAPOp.SOAPAction, in)
		}
		if bop.Input.Body.Use != "literal" || bop.Output.Body.Use != "literal" {
			t.Errorf("%s: input and output must be soap:body use=literal", op.Name)
		}
		var bf []string
		for _, f := range bop.Faults {
			if f.SOAP.Name != f.Name || f.SOAP.Use != "literal" {
				t.Errorf("%s: fault %s must be soap:fault name=%s use=literal", op.Name, f.Name, f.Name)
			}
			bf = append(bf, f.Name)
		}
		var pf []string
		for _, f := range op.Faults {
			pf = append(pf, f.Name)
		}
		if !slices.Equal(bf, pf) {
			t.Errorf("%s: binding faults %v, portType faults %v", op.Name, bf, pf)
		}
	}
	if len(d.Services) != 1 || d.Services[0].Name != svc || len(d.Services[0].Ports) != 1 {
		t.Fatalf("want one wsdl:service %s with one port", svc)
	}
	port := d.Services[0].Ports[0]
	if d.resolve(t, port.Binding) != q(d.TargetNamespace, b.Name) {
		t.Errorf("port binding %s is not %s", port.Binding, b.Name)
	}
	if want := "http://localhost:8080/wsrf/services/" + svc; port.Address.Location != want {
		t.Errorf("soap:address %q, want %q", port.Address.Location, want)
	}
}

// TestLocations checks every wsdl:import location and xsd:import/xsd:include
// schemaLocation: relative, resolving on disk, inside the repository.
func TestLocations(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob("*/*.wsdl")
	for _, p := range paths {
		d := loadWSDL(t, p)
		var locs []string
		for _, imp := range d.Imports {
			locs = append(locs, imp.Location)
		}
		for _, s := range d.Schemas {
			for _, r := range append(slices.Clone(s.Imports), s.Includes...) {
				locs = append(locs, r.SchemaLocation)
			}
		}
		if len(locs) == 0 {
			t.Errorf("%s imports no schema", p)
		}
		for _, loc := range locs {
			if loc == "" || strings.Contains(loc, ":") || filepath.IsAbs(loc) {
				t.Errorf("%s: location %q is not a relative path", p, loc)
				continue
			}
			target, _ := filepath.Abs(filepath.Join(filepath.Dir(p), loc))
			if rel, err := filepath.Rel(root, target); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s: location %q leaves the repository", p, loc)
			}
			if _, err := os.Stat(target); err != nil {
				t.Errorf("%s: location %q does not resolve: %v", p, loc, err)
			}
		}
	}
}

// TestElementsDeclared checks that every message part element and every reference of the
// resource-property documents is declared by the schemas the WSDL's types bring in.
func TestElementsDeclared(t *testing.T) {
	for _, dl := range dialects {
		for _, svc := range services {
			p := servedWSDL(dl.name, svc)
			d := loadWSDL(t, p)
			decl := map[string]bool{}
			seen := map[string]bool{}
			for _, s := range d.Schemas {
				for _, el := range s.Elements {
					decl[q(s.TargetNamespace, el.Name)] = true
				}
				for _, r := range append(slices.Clone(s.Imports), s.Includes...) {
					collectElements(t, filepath.Join(filepath.Dir(p), r.SchemaLocation), seen, decl)
				}
			}
			for _, m := range d.Messages {
				for _, part := range m.Parts {
					if el := d.resolve(t, part.Element); !decl[el] {
						t.Errorf("%s: message %s refers to undeclared element %s", p, m.Name, el)
					}
				}
			}
			for _, s := range d.Schemas {
				for _, el := range s.Elements {
					for _, r := range el.Refs {
						if ref := d.resolve(t, r.Ref); !decl[ref] {
							t.Errorf("%s: %s refers to undeclared element %s", p, el.Name, ref)
						}
					}
				}
			}
		}
	}
}

func collectElements(t *testing.T, path string, seen, decl map[string]bool) {
	t.Helper()
	path = filepath.Clean(path)
	if seen[path] {
		return
	}
	seen[path] = true
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s xsSchema
	if err := xml.Unmarshal(data, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, el := range s.Elements {
		decl[q(s.TargetNamespace, el.Name)] = true
	}
	for _, r := range append(s.Imports, s.Includes...) {
		collectElements(t, filepath.Join(filepath.Dir(path), r.SchemaLocation), seen, decl)
	}
}

// TestCodegenMatchesContract checks that the code-generation WSDLs describe exactly the
// vws-specific operations of the served WSDLs, with the same elements and actions.
func TestCodegenMatchesContract(t *testing.T) {
	pkgs := map[string]string{
		"factory": "WorkspaceFactoryService", "workspace": "WorkspaceService",
		"repository": "WorkspaceRepositoryService", "manager": "WorkspaceManagerService",
	}
	for pkg, svc := range pkgs {
		cg := loadWSDL(t, filepath.Join("codegen", pkg+".wsdl"))
		want := expectedOps[svc]
		if len(cg.PortTypes) != 1 || cg.PortTypes[0].Name != want.portType {
			t.Fatalf("codegen/%s.wsdl: want one portType %s", pkg, want.portType)
		}
		var names []string
		for _, op := range cg.PortTypes[0].Operations {
			names = append(names, op.Name)
		}
		if !slices.Equal(names, want.own) {
			t.Errorf("codegen/%s.wsdl operations %v, want %v", pkg, names, want.own)
		}
		for _, dl := range dialects {
			served := loadWSDL(t, servedWSDL(dl.name, svc))
			byName := map[string]operation{}
			for _, op := range served.PortTypes[0].Operations {
				byName[op.Name] = op
			}
			for _, op := range cg.PortTypes[0].Operations {
				sop := byName[op.Name]
				if a, b := cg.messageElement(t, op.Input.Message), served.messageElement(t, sop.Input.Message); a != b {
					t.Errorf("%s %s: codegen input %s, served %s", dl.name, op.Name, a, b)
				}
				if a, b := cg.messageElement(t, op.Output.Message), served.messageElement(t, sop.Output.Message); a != b {
					t.Errorf("%s %s: codegen output %s, served %s", dl.name, op.Name, a, b)
				}
				ca, _ := attr(op.Input.Attrs, nsWSAW, "Action")
				sa, _ := attr(sop.Input.Attrs, dl.actionNS, "Action")
				if ca != sa {
					t.Errorf("%s %s: codegen action %s, served %s", dl.name, op.Name, ca, sa)
				}
			}
		}
	}
}

// ---------------------------------------------------------------- xmllint

func xmllint(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not found (Debian: apt-get install libxml2-utils); skipping XML Schema validation")
	}
	return p
}

func lint(t *testing.T, xmllint, xsd, doc string) (int, string) {
	t.Helper()
	out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", xsd, doc).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 0 && code != 3 {
		t.Fatalf("xmllint --schema %s %s: exit %d:\n%s", xsd, doc, code, out)
	}
	return code, string(out)
}

var schemaLocationRE = regexp.MustCompile(`schemaLocation="([^"]*)"`)

// inlineSchema extracts the WSDL's xsd:schema into a standalone file: the namespace
// declarations of wsdl:definitions copied onto it, schemaLocations made absolute.
func inlineSchema(t *testing.T, wsdlPath string) string {
	t.Helper()
	data, err := os.ReadFile(wsdlPath)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	start := strings.Index(s, "<xsd:schema")
	end := strings.Index(s, "</xsd:schema>")
	if start < 0 || end < 0 || strings.Count(s, "<xsd:schema") != 1 {
		t.Fatalf("%s: want exactly one <xsd:schema> in wsdl:types", wsdlPath)
	}
	schema := s[start : end+len("</xsd:schema>")]
	d := loadWSDL(t, wsdlPath)
	var decls strings.Builder
	for _, prefix := range sortedKeys(d.ns) {
		fmt.Fprintf(&decls, " xmlns:%s=%q", prefix, d.ns[prefix])
	}
	schema = "<xsd:schema" + decls.String() + schema[len("<xsd:schema"):]
	dir, _ := filepath.Abs(filepath.Dir(wsdlPath))
	schema = schemaLocationRE.ReplaceAllStringFunc(schema, func(m string) string {
		loc := schemaLocationRE.FindStringSubmatch(m)[1]
		return fmt.Sprintf("schemaLocation=%q", filepath.Join(dir, loc))
	})
	out := filepath.Join(t.TempDir(), filepath.Base(wsdlPath)+".xsd")
	if err := os.WriteFile(out, []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestInlineSchemas compiles each WSDL's types with libxml2 and validates a sample
// resource-property document against it.
func TestInlineSchemas(t *testing.T) {
	xl := xmllint(t)
	for _, dl := range dialects {
		for _, svc := range services {
			t.Run(dl.name+"/"+svc, func(t *testing.T) {
				xsd := inlineSchema(t, servedWSDL(dl.name, svc))
				// A dialect's own sample, where the documents of the two dialects differ
				// by more than the lifetime namespace.
				sample, err := os.ReadFile(filepath.Join("testdata", "rp", dl.name, svc+".xml"))
				if errors.Is(err, fs.ErrNotExist) {
					sample, err = os.ReadFile(filepath.Join("testdata", "rp", svc+".xml"))
				}
				if err != nil {
					t.Fatal(err)
				}
				doc := filepath.Join(t.TempDir(), "rp.xml")
				if err := os.WriteFile(doc, []byte(strings.ReplaceAll(string(sample), "{{RL}}", dl.rlNS)), 0o644); err != nil {
					t.Fatal(err)
				}
				if code, out := lint(t, xl, xsd, doc); code != 0 {
					t.Errorf("resource-property document does not validate against the %s types:\n%s", dl.name, out)
				}
			})
		}
	}
}

// TestGT4WireCaptures checks the captured GT 4.0 client requests against the contract:
// their wsa:Action is the one gt4/WorkspaceService.wsdl declares for their body element,
// and their body and addressing headers validate against schema/gt4.
func TestGT4WireCaptures(t *testing.T) {
	xl := xmllint(t)
	d := loadWSDL(t, servedWSDL("gt4", "WorkspaceService"))
	actionOf := map[string]string{}
	for _, op := range d.PortTypes[0].Operations {
		a, _ := attr(op.Input.Attrs, nsWSA04, "Action")
		actionOf[d.messageElement(t, op.Input.Message)] = a
	}
	schemaDir, _ := filepath.Abs(filepath.Join("..", "schema", "gt4"))
	composite := filepath.Join(t.TempDir(), "gt4.xsd")
	var b strings.Builder
	b.WriteString(`<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:vws:test:composite">` + "\n")
	for ns, file := range map[string]string{
		nsWSA04: "ws-addr-2004-03.xsd", gt4RP: "WS-ResourceProperties-1.2-draft-01.xsd",
		gt4RL: "WS-ResourceLifetime-1.2-draft-01.xsd", gt4BN: "WS-BaseNotification-1.2-draft-01.xsd",
	} {
		fmt.Fprintf(&b, "  <xs:import namespace=%q schemaLocation=%q/>\n", ns, filepath.Join(schemaDir, file))
	}
	b.WriteString("</xs:schema>\n")
	if err := os.WriteFile(composite, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}

	captures, _ := filepath.Glob(filepath.Join("testdata", "gt4-0-wire", "*.xml"))
	if len(captures) == 0 {
		t.Fatal("no captures in testdata/gt4-0-wire")
	}
	for _, c := range captures {
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		action, body, headers := envelopeParts(t, data)
		if got := actionOf[body.name]; got == "" || got != action {
			t.Errorf("%s: wsa:Action %q, but the WSDL's action for %s is %q", c, action, body.name, got)
		}
		for i, part := range append([]fragment{body}, headers...) {
			doc := filepath.Join(t.TempDir(), fmt.Sprintf("part%d.xml", i))
			if err := os.WriteFile(doc, []byte(part.xml), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, out := lint(t, xl, composite, doc); code != 0 {
				t.Errorf("%s: %s does not validate against schema/gt4:\n%s\n%s", c, part.name, part.xml, out)
			}
		}
	}
}

type fragment struct{ name, xml string }

// envelopeParts returns the wsa:Action value, the first body child and the WS-Addressing
// header blocks of a SOAP envelope, each as a standalone document carrying the
// envelope's namespace declarations.
func envelopeParts(t *testing.T, data []byte) (action string, body fragment, headers []fragment) {
	t.Helper()
	const soapNS = "http://schemas.xmlsoap.org/soap/envelope/"
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	var stack []xml.Name
	var envDecls []xml.Attr
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			depth := len(stack)
			stack = append(stack, tk.Name)
			if depth == 0 {
				for _, a := range tk.Attr {
					if a.Name.Space == "xmlns" {
						envDecls = append(envDecls, a)
					}
				}
			}
			if depth != 2 {
				continue
			}
			parent := stack[1]
			inHeader := parent == xml.Name{Space: soapNS, Local: "Header"}
			inBody := parent == xml.Name{Space: soapNS, Local: "Body"}
			if !inBody && !(inHeader && tk.Name.Space == nsWSA04) {
				continue
			}
			if err := dec.Skip(); err != nil {
				t.Fatal(err)
			}
			stack = stack[:len(stack)-1]
			raw := string(data[start:dec.InputOffset()])
			// Re-declare the envelope's prefixes on the fragment's root start tag.
			var decls strings.Builder
			for _, a := range envDecls {
				fmt.Fprintf(&decls, " xmlns:%s=%q", a.Name.Local, a.Value)
			}
			nameEnd := strings.IndexAny(raw[1:], " \t\r\n/>") + 1
			raw = raw[:nameEnd] + decls.String() + raw[nameEnd:]
			f := fragment{name: q(tk.Name.Space, tk.Name.Local), xml: raw}
			if inBody && body.xml == "" {
				body = f
			} else if inHeader {
				headers = append(headers, f)
				if tk.Name.Local == "Action" {
					var v struct {
						Value string `xml:",chardata"`
					}
					if err := xml.Unmarshal([]byte(raw), &v); err != nil {
						t.Fatal(err)
					}
					action = strings.TrimSpace(v.Value)
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
}

// TestFS checks that FS embeds the served WSDLs under the paths the runtime uses.
func TestFS(t *testing.T) {
	for _, dl := range dialects {
		for _, svc := range services {
			name := dl.name + "/" + svc + ".wsdl"
			emb, err := fs.ReadFile(wsdl.FS, name)
			if err != nil {
				t.Errorf("FS lacks %s: %v", name, err)
				continue
			}
			disk, err := os.ReadFile(filepath.FromSlash(name))
			if err != nil {
				t.Fatal(err)
			}
			if string(emb) != string(disk) {
				t.Errorf("FS copy of %s differs from the file", name)
			}
		}
	}
	if _, err := fs.Stat(wsdl.FS, "codegen/factory.wsdl"); err == nil {
		t.Error("FS should hold only the served WSDLs, not codegen/")
	}
}
