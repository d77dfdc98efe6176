package test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/xsdtest"
	"github.com/vws-grid/vws/test/harness"
)

// typesSchema extracts the inline xsd:schema of service's WSDL in dialect d.
func typesSchema(t *testing.T, d *dialect.Dialect, service string) string {
	t.Helper()
	return xsdtest.TypesSchema(t, filepath.Join("..", "wsdl", d.WSDLDir, service+".wsdl"))
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
				xsdtest.Validate(t, xsd, docs[0])

				// A fault from this service validates too.
				f := post(t, url, request(d, url, getRPAction(d), key, `<rp:GetResourceProperty>vw:nope</rp:GetResourceProperty>`, headers...))
				f.fault(t)
				xsdtest.Validate(t, xsd, f.env.Payload.FindElement("detail/*"))
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
				xsdtest.Validate(t, xsd, f.env.Payload.FindElement("detail/*"))
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

// Subscribe's answers, its faults and the Notify messages it brings validate against
// the WSDL types of each dialect, and each refusal is the fault WS-BaseNotification
// names for it.
func TestNotificationConformsToContract(t *testing.T) {
	s := harness.Start(t)
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			key := "n-" + d.Name
			s.SeedWorkspace(t, key, "notified-"+d.Name, nil)
			url := s.ServiceURL(vwsns.WorkspaceService)
			xsd := typesSchema(t, d, vwsns.WorkspaceService)
			action, simple, full := "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/Subscribe",
				"http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Simple", "http://docs.oasis-open.org/wsn/2004/06/TopicExpression/Full"
			if d == dialect.WSRF12 {
				action, simple, full = "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest",
					"http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple", "http://docs.oasis-open.org/wsn/t-1/TopicExpression/Full"
			}
			topic := func(dialectURI, text string) string {
				te := `<wsnt:TopicExpression Dialect="` + dialectURI + `">` + text + `</wsnt:TopicExpression>`
				if d == dialect.WSRF12 {
					return `<wsnt:Filter>` + te + `</wsnt:Filter>`
				}
				return te
			}
			// A consumer that validates each Notify it gets.
			got := make(chan *etree.Element, 10)
			consumer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				data, _ := io.ReadAll(r.Body)
				env, err := soap.Parse(data)
				if err != nil {
					t.Errorf("Notify is not SOAP: %v", err)
					return
				}
				got <- env.Payload
			}))
			defer consumer.Close()
			subscribe := func(addr, te, extra string) answer {
				return post(t, url, request(d, url, action, key, `<wsnt:Subscribe xmlns:wsnt="`+d.BN+`"><wsnt:ConsumerReference><wsa:Address>`+addr+
					`</wsa:Address></wsnt:ConsumerReference>`+te+extra+`</wsnt:Subscribe>`))
			}

			ok := subscribe(consumer.URL, topic(simple, "vw:state"), "")
			if ok.status != 200 {
				t.Fatalf("Subscribe: HTTP %d: %s", ok.status, ok.raw)
			}
			xsdtest.Validate(t, xsd, ok.env.Payload)

			for _, c := range []struct {
				name, addr, te, extra string
				gt4, wsrf12           string // fault type in each dialect
			}{
				{"unknown topic", consumer.URL, topic(simple, "vw:owner"), "", "TopicNotSupportedFault", "TopicNotSupportedFault"},
				{"unbound prefix", consumer.URL, topic(simple, "zz:state"), "", "InvalidTopicExpressionFault", "InvalidTopicExpressionFault"},
				{"Full dialect", consumer.URL, topic(full, "vw:*"), "", "TopicPathDialectUnknownFault", "TopicExpressionDialectUnknownFault"},
				{"consumer not http", "mailto:x@example.org", topic(simple, "vw:state"), "", "SubscribeCreationFailedFault", "SubscribeCreationFailedFault"},
				{"past termination", consumer.URL, topic(simple, "vw:state"), `<wsnt:InitialTerminationTime>2001-01-01T00:00:00Z</wsnt:InitialTerminationTime>`,
					"SubscribeCreationFailedFault", "UnacceptableInitialTerminationTimeFault"},
			} {
				f := subscribe(c.addr, c.te, c.extra)
				typ, _, desc := f.fault(t)
				want := c.gt4
				if d == dialect.WSRF12 {
					want = c.wsrf12
				}
				if typ != want {
					t.Errorf("%s: %s (%s), want %s", c.name, typ, desc, want)
				}
				xsdtest.Validate(t, xsd, f.env.Payload.FindElement("detail/*"))
			}

			// A change of the workspace's state, then its end, reach the consumer as
			// valid Notify messages whose payloads validate too.
			rl := `xmlns:wsrl="` + d.RL + `"`
			if end := subscribe(consumer.URL, strings.Replace(topic(simple, "wsrl:ResourceTermination"), "<wsnt:TopicExpression ", "<wsnt:TopicExpression "+rl+" ", 1), ""); end.status != 200 {
				t.Fatalf("Subscribe to ResourceTermination: HTTP %d: %s", end.status, end.raw)
			}
			if err := s.Srv.Repository.Workspaces.Update(context.Background(), key, func(props []*etree.Element) ([]*etree.Element, error) {
				for _, p := range props {
					if p.Tag == "state" {
						p.SetText("running")
					}
				}
				return props, nil
			}); err != nil {
				t.Fatal(err)
			}
			if f := post(t, url, request(d, url, destroyAction(d), key, `<rl:Destroy/>`)); f.status != 200 {
				t.Fatalf("Destroy: HTTP %d: %s", f.status, f.raw)
			}
			// Two subscriptions, each with its own queue: the messages may come in
			// either order.
			kinds := map[string]bool{}
			for range 2 {
				select {
				case n := <-got:
					xsdtest.Validate(t, xsd, n)
					payload := n.FindElement("NotificationMessage/Message/*")
					if payload == nil {
						t.Fatalf("Notify without a message: %v", n)
					}
					kinds[payload.Tag] = true
					xsdtest.Validate(t, xsd, payload)
				case <-time.After(10 * time.Second):
					t.Fatalf("within 10 s the consumer got only %v", kinds)
				}
			}
			if !kinds["ResourcePropertyValueChangeNotification"] || !kinds["TerminationNotification"] {
				t.Fatalf("the consumer got %v, want a value change and a termination", kinds)
			}
		})
	}
}

func destroyAction(d *dialect.Dialect) string {
	if d == dialect.GT4 {
		return "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceLifetime/Destroy"
	}
	return "http://docs.oasis-open.org/wsrf/rlw-2/ImmediateResourceTermination/DestroyRequest"
}
