package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/test/harness"
)

// typesSchema extracts a WSDL's inline xsd:schema into a standalone file whose
// schemaLocations point at the repository's schema files.
func typesSchema(t *testing.T, d *dialect.Dialect, service string) string {
	t.Helper()
	wsdlPath, _ := filepath.Abs(filepath.Join("..", "wsdl", d.WSDLDir, service+".wsdl"))
	doc := etree.NewDocument()
	if err := doc.ReadFromFile(wsdlPath); err != nil {
		t.Fatal(err)
	}
	el := doc.Root().FindElement("types/schema")
	if el == nil {
		t.Fatalf("%s: no wsdl:types/xsd:schema", wsdlPath)
	}
	schema := wsa.Detach(el)
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		if a := e.SelectAttr("schemaLocation"); a != nil && !strings.Contains(a.Value, "://") {
			a.Value = filepath.Join(filepath.Dir(wsdlPath), a.Value)
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	walk(schema)
	out := filepath.Join(t.TempDir(), service+".xsd")
	if err := etree.NewDocumentWithRoot(schema).WriteToFile(out); err != nil {
		t.Fatal(err)
	}
	return out
}

// validate runs xmllint --schema on el as a standalone document.
func validate(t *testing.T, xsd string, el *etree.Element) {
	t.Helper()
	xl, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint not found (Debian: libxml2-utils); test/setup.sh installs it")
	}
	docPath := filepath.Join(t.TempDir(), "doc.xml")
	if err := etree.NewDocumentWithRoot(wsa.Detach(el)).WriteToFile(docPath); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xl, "--noout", "--nonet", "--schema", xsd, docPath).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		data, _ := os.ReadFile(docPath)
		t.Fatalf("does not validate against %s:\n%s\n%s", filepath.Base(xsd), out, data)
	} else if err != nil {
		t.Fatal(err)
	}
}

// TestResponsesConformToContract checks what the server really sends — every service's
// resource-property document and the faults — against the WSDL types of the dialect.
func TestResponsesConformToContract(t *testing.T) {
	s := harness.Start(t)
	s.SeedWorkspace(t, "c1", "conform", nil)
	queryRoot := `<rp:QueryResourceProperties><rp:QueryExpression Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116">/*</rp:QueryExpression></rp:QueryResourceProperties>`
	for _, d := range dialect.Dialects {
		for _, svc := range []string{vwsns.WorkspaceService, vwsns.FactoryService, vwsns.RepositoryService, vwsns.ManagerService,
			vwsns.SubscriptionManagerService} {
			t.Run(d.Name+"/"+svc, func(t *testing.T) {
				key := ""
				var headers []string
				switch svc {
				case vwsns.WorkspaceService:
					key = "c1"
				case vwsns.SubscriptionManagerService:
					headers = subscribe(t, s, d, "c1")
				}
				url := s.ServiceURL(svc)
				a := post(t, url, request(d, url, queryAction(d), key, queryRoot, headers...))
				if a.status != 200 {
					t.Fatalf("HTTP %d: %s", a.status, a.raw)
				}
				docs := a.env.Payload.ChildElements()
				if len(docs) != 1 {
					t.Fatalf("query / returned %d elements", len(docs))
				}
				xsd := typesSchema(t, d, svc)
				validate(t, xsd, docs[0])

				// A fault from this service validates too.
				f := post(t, url, request(d, url, getRPAction(d), key, `<rp:GetResourceProperty>vw:nope</rp:GetResourceProperty>`, headers...))
				f.fault(t)
				validate(t, xsd, f.env.Payload.FindElement("detail/*"))
			})
		}
		t.Run(d.Name+"/more faults", func(t *testing.T) {
			url := s.ServiceURL(vwsns.WorkspaceService)
			xsd := typesSchema(t, d, vwsns.WorkspaceService)
			for _, body := range []struct{ action, key, body string }{
				{getRPAction(d), "gone", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`},
				{setRPAction(d), "c1", `<rp:SetResourceProperties><rp:Update><vw:state>running</vw:state></rp:Update></rp:SetResourceProperties>`},
				{queryAction(d), "c1", `<rp:QueryResourceProperties><rp:QueryExpression Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116">((</rp:QueryExpression></rp:QueryResourceProperties>`},
			} {
				f := post(t, url, request(d, url, body.action, body.key, body.body))
				f.fault(t)
				validate(t, xsd, f.env.Payload.FindElement("detail/*"))
			}
		})
	}
}

// subscribe subscribes to the first topic workspace key advertises and returns the
// SOAP headers that address the new subscription (its EPR's reference properties or
// parameters), checking that the EPR points at SubscriptionManagerService.
func subscribe(t *testing.T, s *harness.Server, d *dialect.Dialect, key string) []string {
	t.Helper()
	url := s.ServiceURL(vwsns.WorkspaceService)
	// GT 4.0's NotificationProducer lists its topics in wsnt:Topic, WSN 1.3's in
	// wsnt:TopicExpression.
	topicRP, subscribeAction := "Topic", "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/Subscribe"
	if d == dialect.WSRF12 {
		topicRP, subscribeAction = "TopicExpression", "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest"
	}
	a := post(t, url, request(d, url, getRPAction(d), key,
		`<rp:GetResourceProperty xmlns:wsnt="`+d.BN+`">wsnt:`+topicRP+`</rp:GetResourceProperty>`))
	if a.status != 200 || a.env == nil || a.env.Payload == nil {
		t.Fatalf("reading the workspace's topics: HTTP %d: %s", a.status, a.raw)
	}
	topics := a.env.Payload.ChildElements()
	if len(topics) == 0 {
		t.Fatalf("the workspace advertises no topic: %s", a.raw)
	}
	topic := wsa.Detach(topics[0])
	topic.Space, topic.Tag = "wsnt", "TopicExpression"
	topic.CreateAttr("xmlns:wsnt", d.BN)
	te, err := etree.NewDocumentWithRoot(topic).WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	if d == dialect.WSRF12 {
		te = `<wsnt:Filter>` + te + `</wsnt:Filter>`
	}
	body := `<wsnt:Subscribe xmlns:wsnt="` + d.BN + `"><wsnt:ConsumerReference><wsa:Address>http://127.0.0.1:9/wsrf/services/Consumer</wsa:Address>` +
		`</wsnt:ConsumerReference>` + te + `</wsnt:Subscribe>`
	a = post(t, url, request(d, url, subscribeAction, key, body))
	if a.status != 200 || a.env == nil || a.env.Payload == nil || a.env.Payload.Tag != "SubscribeResponse" {
		t.Fatalf("Subscribe: HTTP %d: %s", a.status, a.raw)
	}
	ref := a.env.Payload.SelectElement("SubscriptionReference")
	if ref == nil {
		t.Fatalf("SubscribeResponse without a SubscriptionReference: %s", a.raw)
	}
	epr, err := wsa.ParseEPR(ref)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(epr.Address, "/wsrf/services/"+vwsns.SubscriptionManagerService) {
		t.Errorf("SubscriptionReference addresses %s, not %s", epr.Address, vwsns.SubscriptionManagerService)
	}
	if epr.Reference(vwsns.SubscriptionKey.Space, vwsns.SubscriptionKey.Local) == nil {
		t.Errorf("SubscriptionReference lacks %s: %s", vwsns.SubscriptionKey, a.raw)
	}
	var headers []string
	for _, h := range epr.Headers() {
		x, err := etree.NewDocumentWithRoot(h).WriteToString()
		if err != nil {
			t.Fatal(err)
		}
		headers = append(headers, x)
	}
	return headers
}
