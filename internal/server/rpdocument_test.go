package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/internal/xsdtest"
)

const (
	rpDocAction   = "http://docs.oasis-open.org/wsrf/rpw-2/GetResourcePropertyDocument/GetResourcePropertyDocumentRequest"
	rpDocResponse = "http://docs.oasis-open.org/wsrf/rpw-2/GetResourcePropertyDocument/GetResourcePropertyDocumentResponse"
	queryAction12 = "http://docs.oasis-open.org/wsrf/rpw-2/QueryResourceProperties/QueryResourcePropertiesRequest"
	xpathDialect  = "http://www.w3.org/TR/1999/REC-xpath-19991116"
)

// TestGetResourcePropertyDocument: every WS-Resource service of a running server
// answers WS-RP 1.2's GetResourcePropertyDocument with its whole property document, the
// one QueryResourceProperties "/*" selects, in an answer its WSDL's types validate; in
// GT 4.0, whose WS-RP draft has no such operation, the same action is refused.
func TestGetResourcePropertyDocument(t *testing.T) {
	srv, err := New(t.Context(), Config{DataDir: t.TempDir(), Roles: []string{"factory", "repository"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	srv.SetBaseURL(hs.URL)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	url := func(svc string) string { return hs.URL + "/wsrf/services/" + svc }

	now := wsrf.FormatTime(time.Now().UTC())
	prop := func(local, text string) *etree.Element {
		e := etree.NewElement("vw:" + local)
		e.CreateAttr("xmlns:vw", vwsns.Workspace)
		e.SetText(text)
		return e
	}
	cat := prop("category", "vm")
	cat.CreateAttr("vmm", "qemu")
	if err := srv.Repository.Workspaces.Create(context.Background(), "d1", []*etree.Element{
		prop("name", "doc"), cat, prop("state", "shutdown"), prop("creationTime", now), prop("lastModified", now),
		prop("deployment", "in-repository"), prop("owner", "/O=Grid/OU=Test/CN=Alice"),
	}, nil); err != nil {
		t.Fatal(err)
	}
	wsKey := `<vw:WorkspaceKey xmlns:vw="` + vwsns.Workspace + `" wsa:IsReferenceParameter="true">d1</vw:WorkspaceKey>`

	cases := []struct {
		svc     string
		headers func(t *testing.T) []string
	}{
		{vwsns.FactoryService, nil},
		{vwsns.RepositoryService, nil},
		{vwsns.WorkspaceService, func(*testing.T) []string { return []string{wsKey} }},
		{vwsns.SubscriptionManagerService, func(t *testing.T) []string { return subscribe12(t, url(vwsns.WorkspaceService), wsKey) }},
	}
	for _, c := range cases {
		t.Run(c.svc, func(t *testing.T) {
			var headers []string
			if c.headers != nil {
				headers = c.headers(t)
			}
			a := call(t, url(c.svc), envelope12(url(c.svc), rpDocAction, `<rp:GetResourcePropertyDocument/>`, headers...))
			if a.status != 200 || a.env == nil {
				if a.env != nil && soap.IsFault(a.env.Payload) {
					t.Fatalf("HTTP %d, fault: %s", a.status, soap.ParseFault(a.env.Payload).String)
				}
				t.Fatalf("HTTP %d: %s", a.status, a.raw)
			}
			if got := a.header(wsa.NS200508, "Action"); got != rpDocResponse {
				t.Errorf("response action %q, want %s", got, rpDocResponse)
			}
			p := a.env.Payload
			if p.Tag != "GetResourcePropertyDocumentResponse" || p.NamespaceURI() != dialect.WSRF12.RP || len(p.ChildElements()) != 1 {
				t.Fatalf("want one document in rp-2's GetResourcePropertyDocumentResponse: %s", a.raw)
			}
			doc := p.ChildElements()[0]

			q := call(t, url(c.svc), envelope12(url(c.svc), queryAction12,
				`<rp:QueryResourceProperties><rp:QueryExpression Dialect="`+xpathDialect+`">/*</rp:QueryExpression></rp:QueryResourceProperties>`, headers...))
			if q.status != 200 || q.env == nil || len(q.env.Payload.ChildElements()) != 1 {
				t.Fatalf("QueryResourceProperties /*: HTTP %d: %s", q.status, q.raw)
			}
			whole := q.env.Payload.ChildElements()[0]
			if got, want := names(doc), names(whole); doc.Tag != whole.Tag || doc.NamespaceURI() != whole.NamespaceURI() || !slices.Equal(got, want) {
				t.Errorf("document {%s}%s %v, but the whole document (query /*) is {%s}%s %v",
					doc.NamespaceURI(), doc.Tag, got, whole.NamespaceURI(), whole.Tag, want)
			}

			validateAgainstTypes(t, c.svc, p)
		})
	}

	// GT 4.0: neither the WSRF 1.2 action nor the element in the draft's namespace is an
	// operation of any of its services.
	for _, body := range []struct{ name, env string }{
		{"rpw-2 action", envelopeGT4(url(vwsns.FactoryService), rpDocAction, `<rp:GetResourcePropertyDocument/>`)},
		{"draft element, no action", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>` +
			`<rp:GetResourcePropertyDocument xmlns:rp="` + dialect.GT4.RP + `"/></s:Body></s:Envelope>`},
	} {
		t.Run("gt4/"+body.name, func(t *testing.T) {
			a := call(t, url(vwsns.FactoryService), body.env)
			if a.status != 500 || a.env == nil || !soap.IsFault(a.env.Payload) {
				t.Fatalf("want a fault, got HTTP %d: %s", a.status, a.raw)
			}
			f := soap.ParseFault(a.env.Payload)
			if len(f.Detail) != 1 || f.Detail[0].Tag != "ServiceFault" {
				t.Errorf("want a ServiceFault detail: %s", a.raw)
			}
			if !strings.Contains(f.String, "gt4 dialect") {
				t.Errorf("the fault does not say the GT 4.0 dialect lacks the operation: %q", f.String)
			}
		})
	}
}

func names(el *etree.Element) []string {
	var out []string
	for _, c := range el.ChildElements() {
		out = append(out, "{"+c.NamespaceURI()+"}"+c.Tag)
	}
	return out
}

type answer struct {
	status int
	env    *soap.Envelope
	raw    string
}

func (a answer) header(ns, local string) string {
	for _, h := range a.env.Headers {
		if h.Tag == local && h.NamespaceURI() == ns {
			return strings.TrimSpace(h.Text())
		}
	}
	return ""
}

func call(t *testing.T, url, body string) answer {
	t.Helper()
	resp, err := http.Post(url, "text/xml; charset=utf-8", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw)}
	if env, err := soap.Parse(raw); err == nil {
		a.env = env
	}
	return a
}

func envelope12(to, action, body string, headers ...string) string {
	return envelope(dialect.WSRF12, to, action, body, headers...)
}

func envelopeGT4(to, action, body string) string { return envelope(dialect.GT4, to, action, body) }

func envelope(d *dialect.Dialect, to, action, body string, headers ...string) string {
	return fmt.Sprintf(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="%s" xmlns:rp="%s"><s:Header>`+
		`<wsa:To>%s</wsa:To><wsa:Action>%s</wsa:Action><wsa:MessageID>urn:uuid:rpdoc-1</wsa:MessageID>%s</s:Header>`+
		`<s:Body>%s</s:Body></s:Envelope>`, d.WSA.Namespace(), d.RP, to, action, strings.Join(headers, ""), body)
}

// subscribe12 subscribes (WSN 1.3) to the first topic of the workspace the header
// addresses and returns the headers that address the subscription.
func subscribe12(t *testing.T, wsURL, keyHeader string) []string {
	t.Helper()
	d := dialect.WSRF12
	a := call(t, wsURL, envelope12(wsURL, "http://docs.oasis-open.org/wsrf/rpw-2/GetResourceProperty/GetResourcePropertyRequest",
		`<rp:GetResourceProperty xmlns:wsnt="`+d.BN+`">wsnt:TopicExpression</rp:GetResourceProperty>`, keyHeader))
	if a.status != 200 || a.env == nil || len(a.env.Payload.ChildElements()) == 0 {
		t.Fatalf("reading the workspace's topics: HTTP %d: %s", a.status, a.raw)
	}
	topic := wsa.Detach(a.env.Payload.ChildElements()[0])
	topic.Space, topic.Tag = "wsnt", "TopicExpression"
	topic.CreateAttr("xmlns:wsnt", d.BN)
	te, err := etree.NewDocumentWithRoot(topic).WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	a = call(t, wsURL, envelope12(wsURL, "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest",
		`<wsnt:Subscribe xmlns:wsnt="`+d.BN+`"><wsnt:ConsumerReference><wsa:Address>http://127.0.0.1:9/wsrf/services/Consumer</wsa:Address>`+
			`</wsnt:ConsumerReference><wsnt:Filter>`+te+`</wsnt:Filter></wsnt:Subscribe>`, keyHeader))
	if a.status != 200 || a.env == nil || a.env.Payload.SelectElement("SubscriptionReference") == nil {
		t.Fatalf("Subscribe: HTTP %d: %s", a.status, a.raw)
	}
	epr, err := wsa.ParseEPR(a.env.Payload.SelectElement("SubscriptionReference"))
	if err != nil {
		t.Fatal(err)
	}
	var headers []string
	for _, h := range epr.Headers() {
		x, err := etree.NewDocumentWithRoot(h).WriteToString()
		if err != nil {
			t.Fatal(err)
		}
		headers = append(headers, x)
	}
	if len(headers) == 0 {
		t.Fatalf("the subscription's EPR has no reference parameters: %s", a.raw)
	}
	return headers
}

// validateAgainstTypes validates el with xmllint against the inline schema of the
// service's WSRF 1.2 WSDL.
func validateAgainstTypes(t *testing.T, svc string, el *etree.Element) {
	t.Helper()
	xsdtest.Validate(t, xsdtest.TypesSchema(t, filepath.Join("..", "..", "wsdl", "wsrf12", svc+".wsdl")), el)
}
