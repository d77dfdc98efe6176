package test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/test/harness"
)

// golden loads a GT 4.0 wire capture and substitutes this server's address, key
// element and property, keeping everything else byte for byte.
func golden(t *testing.T, name, serviceURL, key string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "gt4-0", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	s = strings.ReplaceAll(s, "http://127.0.0.1:18089/wsrf/services/WorkspaceService", serviceURL)
	s = strings.ReplaceAll(s, `xmlns:ns1="http://example.org/workspace"`, `xmlns:ns1="`+vwsns.Workspace+`"`)
	s = strings.ReplaceAll(s, ">abc</ns1:WorkspaceKey>", ">"+key+"</ns1:WorkspaceKey>")
	s = strings.ReplaceAll(s, "ns1:Status", "ns1:state")
	s = strings.ReplaceAll(s, "2026-11-22T01:13:56.303Z", wsrf.FormatTime(time.Now().Add(2*time.Hour)))
	return []byte(s)
}

type answer struct {
	status int
	env    *soap.Envelope
	raw    string
}

// post sends a request the way GT4's Axis does: chunked, SOAPAction "".
func post(t *testing.T, url string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, io.MultiReader(bytes.NewReader(body))) // unknown length → chunked
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `""`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	env, err := soap.Parse(raw)
	if err != nil {
		return answer{status: resp.StatusCode, raw: string(raw)}
	}
	return answer{status: resp.StatusCode, env: env, raw: string(raw)}
}

func (a answer) header(ns, local string) string {
	for _, h := range a.env.Headers {
		if h.Tag == local && h.NamespaceURI() == ns {
			return strings.TrimSpace(h.Text())
		}
	}
	return ""
}

// faultType returns the BaseFault subtype's local name and the fault's code.
func (a answer) fault(t *testing.T) (typ string, code soap.FaultCode, desc string) {
	t.Helper()
	if a.env == nil || !soap.IsFault(a.env.Payload) {
		t.Fatalf("expected a fault, got HTTP %d: %s", a.status, a.raw)
	}
	f := soap.ParseFault(a.env.Payload)
	if len(f.Detail) != 1 {
		t.Fatalf("fault without a BaseFault detail: %s", a.raw)
	}
	d := f.Detail[0]
	for _, want := range []string{"Timestamp", "ErrorCode", "Description"} {
		if d.SelectElement(want) == nil {
			t.Fatalf("BaseFault lacks %s: %s", want, a.raw)
		}
	}
	if d.SelectElement("Originator") == nil { // both bf-2 and the 2004/06 draft name it Originator
		t.Fatalf("BaseFault lacks its originator: %s", a.raw)
	}
	return d.Tag, f.Code, f.String
}

func TestGT4GoldenRequests(t *testing.T) {
	s := harness.Start(t)
	svcURL := s.ServiceURL(vwsns.WorkspaceService)
	s.SeedWorkspace(t, "ws-1", "alpha", nil)
	const wsa04 = "http://schemas.xmlsoap.org/ws/2004/03/addressing"

	t.Run("GetResourceProperty", func(t *testing.T) {
		a := post(t, svcURL, golden(t, "GetResourceProperty.xml", svcURL, "ws-1"))
		if a.status != 200 {
			t.Fatalf("HTTP %d: %s", a.status, a.raw)
		}
		if got := a.header(wsa04, "Action"); got != "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetResourcePropertyResponse" {
			t.Errorf("response action %q", got)
		}
		if got := a.header(wsa04, "RelatesTo"); got != "uuid:9ac1ead0-e609-11f1-a14b-bf021c042f8c" {
			t.Errorf("RelatesTo %q", got)
		}
		if a.header(wsa04, "MessageID") == "" {
			t.Error("no MessageID")
		}
		p := a.env.Payload
		if p.Tag != "GetResourcePropertyResponse" || p.NamespaceURI() != dialect.GT4.RP {
			t.Fatalf("payload %s", a.raw)
		}
		st := p.ChildElements()
		if len(st) != 1 || st[0].Tag != "state" || st[0].Text() != "shutdown" || st[0].NamespaceURI() != vwsns.Workspace {
			t.Fatalf("state property: %s", a.raw)
		}
	})
	t.Run("QueryResourceProperties", func(t *testing.T) {
		a := post(t, svcURL, golden(t, "QueryResourceProperties.xml", svcURL, "ws-1"))
		if a.status != 200 || !strings.Contains(a.raw, ">alpha<") || !strings.Contains(a.raw, "TerminationTime") {
			t.Fatalf("HTTP %d: %s", a.status, a.raw)
		}
	})
	t.Run("SetTerminationTime", func(t *testing.T) {
		a := post(t, svcURL, golden(t, "SetTerminationTime.xml", svcURL, "ws-1"))
		if a.status != 200 {
			t.Fatalf("HTTP %d: %s", a.status, a.raw)
		}
		nt := a.env.Payload.SelectElement("NewTerminationTime")
		if nt == nil || nt.Text() == "" || a.env.Payload.SelectElement("CurrentTime") == nil {
			t.Fatalf("response: %s", a.raw)
		}
	})
	t.Run("Destroy", func(t *testing.T) {
		a := post(t, svcURL, golden(t, "Destroy.xml", svcURL, "ws-1"))
		if a.status != 200 || a.env.Payload.Tag != "DestroyResponse" {
			t.Fatalf("HTTP %d: %s", a.status, a.raw)
		}
		again := post(t, svcURL, golden(t, "GetResourceProperty.xml", svcURL, "ws-1"))
		typ, code, _ := again.fault(t)
		if again.status != 500 || typ != "ResourceUnknownFault" || code != soap.CodeClient {
			t.Fatalf("after destroy: HTTP %d %s %s", again.status, typ, code)
		}
	})
}

// request builds an envelope in dialect d addressed to workspace key (if any).
func request(d *dialect.Dialect, to, action, key, body string, extraHeaders ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="%s" xmlns:vw="%s" xmlns:rp="%s" xmlns:rl="%s"><s:Header>`,
		d.WSA.Namespace(), vwsns.Workspace, d.RP, d.RL)
	fmt.Fprintf(&b, `<wsa:To>%s</wsa:To><wsa:Action>%s</wsa:Action><wsa:MessageID>urn:uuid:test-1</wsa:MessageID>`, to, action)
	if key != "" {
		if d == dialect.WSRF12 {
			fmt.Fprintf(&b, `<vw:WorkspaceKey wsa:IsReferenceParameter="true">%s</vw:WorkspaceKey>`, key)
		} else {
			fmt.Fprintf(&b, `<vw:WorkspaceKey>%s</vw:WorkspaceKey>`, key)
		}
	}
	for _, h := range extraHeaders {
		b.WriteString(h)
	}
	fmt.Fprintf(&b, `</s:Header><s:Body>%s</s:Body></s:Envelope>`, body)
	return []byte(b.String())
}

func getRPAction(d *dialect.Dialect) string {
	if d == dialect.GT4 {
		return "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/GetResourceProperty"
	}
	return "http://docs.oasis-open.org/wsrf/rpw-2/GetResourceProperty/GetResourcePropertyRequest"
}

func queryAction(d *dialect.Dialect) string {
	if d == dialect.GT4 {
		return "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/QueryResourceProperties"
	}
	return "http://docs.oasis-open.org/wsrf/rpw-2/QueryResourceProperties/QueryResourcePropertiesRequest"
}

func setRPAction(d *dialect.Dialect) string {
	if d == dialect.GT4 {
		return "http://docs.oasis-open.org/wsrf/2004/06/wsrf-WS-ResourceProperties/SetResourceProperties"
	}
	return "http://docs.oasis-open.org/wsrf/rpw-2/SetResourceProperties/SetResourcePropertiesRequest"
}

// snapshot is the workspace's property document minus CurrentTime, to prove a fault
// changed nothing.
func snapshot(t *testing.T, s *harness.Server, key string) string {
	t.Helper()
	doc, err := s.Srv.Repository.Workspaces.Document(t.Context(), dialect.WSRF12, key)
	if err != nil {
		return "gone: " + err.Error()
	}
	for _, c := range doc.ChildElements() {
		if c.Tag == "CurrentTime" {
			doc.RemoveChild(c)
		}
	}
	out, _ := etree.NewDocumentWithRoot(doc).WriteToString()
	return out
}

func TestHostileInputFaultsAndChangesNothing(t *testing.T) {
	s := harness.Start(t)
	svcURL := s.ServiceURL(vwsns.WorkspaceService)
	s.SeedWorkspace(t, "ws-h", "hostile", nil)
	before := snapshot(t, s, "ws-h")

	for _, d := range dialect.Dialects {
		d := d
		other := dialect.WSRF12
		if d == dialect.WSRF12 {
			other = dialect.GT4
		}
		cases := []struct {
			name    string
			body    []byte
			status  int
			fault   string
			code    soap.FaultCode
			descHas string
		}{
			{"over the size limit", append(request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`), bytes.Repeat([]byte(" "), 1<<20)...),
				413, "ServiceFault", soap.CodeClient, "larger than"},
			{"DTD", append([]byte(`<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]>`),
				bytes.TrimPrefix(request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`), []byte(`<?xml version="1.0" encoding="UTF-8"?>`))...),
				500, "ServiceFault", soap.CodeClient, "DTD"},
			{"mustUnderstand header", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`,
				`<x:Secret xmlns:x="urn:unknown" s:mustUnderstand="1">1</x:Secret>`),
				500, "ServiceFault", soap.CodeMustUnderstand, "{urn:unknown}Secret"},
			{"two resource keys", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`,
				`<vw:WorkspaceKey>ws-other</vw:WorkspaceKey>`),
				500, "ServiceFault", soap.CodeClient, "one resource"},
			{"two wsa:Action headers", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`,
				`<wsa:Action>urn:another-action</wsa:Action>`),
				500, "ServiceFault", map[*dialect.Dialect]soap.FaultCode{dialect.GT4: "InvalidMessageInformationHeader", dialect.WSRF12: "InvalidCardinality"}[d], "more than once"},
			// Refused as addressing in two versions (which of them the sender meant is
			// not ours to guess), before any header is judged understood or not.
			{"the other addressing version's header, to be understood", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`,
				`<o:ReplyTo xmlns:o="`+other.WSA.Namespace()+`" s:mustUnderstand="1"><o:Address>http://example.org/replies</o:Address></o:ReplyTo>`),
				500, "ServiceFault", map[*dialect.Dialect]soap.FaultCode{dialect.GT4: "InvalidMessageInformationHeader", dialect.WSRF12: "InvalidAddressingHeader"}[d], "send all of them in one WS-Addressing version"},
			{"signed request to a server without CAs", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`,
				`<wsse:Security xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" s:mustUnderstand="1"/>`),
				500, "ServiceFault", soap.CodeMustUnderstand, "runs --insecure"},
			{"malformed XML", []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><a></s:Body>`),
				500, "ServiceFault", soap.CodeClient, "well-formed"},
			{"SOAP 1.2 namespace", []byte(`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>`),
				500, "ServiceFault", soap.CodeVersionMismatch, "SOAP 1.1"},
			{"unknown action", request(d, svcURL, "urn:no-such-action", "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`),
				500, "ServiceFault", "ActionNotSupported", "urn:no-such-action"},
			{"action and body disagree", request(d, svcURL, queryAction(d), "ws-h", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`),
				500, "ServiceFault", soap.CodeClient, "expects body element"},
			{"missing key", request(d, svcURL, getRPAction(d), "", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`),
				500, "ResourceUnknownFault", soap.CodeClient, "WorkspaceKey"},
			{"unknown key", request(d, svcURL, getRPAction(d), "no-such-ws", `<rp:GetResourceProperty>vw:state</rp:GetResourceProperty>`),
				500, "ResourceUnknownFault", soap.CodeClient, "no-such-ws"},
			{"undeclared prefix", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>zz:state</rp:GetResourceProperty>`),
				500, "InvalidResourcePropertyQNameFault", soap.CodeClient, "zz"},
			{"unknown property", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:color</rp:GetResourceProperty>`),
				500, "InvalidResourcePropertyQNameFault", soap.CodeClient, "color"},
			{"bad XPath", request(d, svcURL, queryAction(d), "ws-h", `<rp:QueryResourceProperties><rp:QueryExpression Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116">//vw:state[</rp:QueryExpression></rp:QueryResourceProperties>`),
				500, "InvalidQueryExpressionFault", soap.CodeClient, ""},
			{"runaway XPath", request(d, svcURL, queryAction(d), "ws-h", `<rp:QueryResourceProperties><rp:QueryExpression Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116">count(//*[count(//*[count(//*[count(//*[count(//*)&gt;0])&gt;0])&gt;0])&gt;0])</rp:QueryExpression></rp:QueryResourceProperties>`),
				500, "QueryEvaluationErrorFault", soap.CodeClient, "budget"},
			{"unknown query dialect", request(d, svcURL, queryAction(d), "ws-h", `<rp:QueryResourceProperties><rp:QueryExpression Dialect="urn:sql">select</rp:QueryExpression></rp:QueryResourceProperties>`),
				500, "UnknownQueryExpressionDialectFault", soap.CodeClient, "urn:sql"},
			{"read-only property", request(d, svcURL, setRPAction(d), "ws-h", `<rp:SetResourceProperties><rp:Update><vw:state>running</vw:state></rp:Update></rp:SetResourceProperties>`),
				500, "UnableToModifyResourcePropertyFault", soap.CodeClient, "state"},
			{"oversized name", request(d, svcURL, getRPAction(d), "ws-h", `<rp:GetResourceProperty>vw:`+strings.Repeat("a", 5000)+`</rp:GetResourceProperty>`),
				500, "InvalidResourcePropertyQNameFault", soap.CodeClient, "not a resource property"},
			{"empty body", request(d, svcURL, getRPAction(d), "ws-h", ``),
				500, "ServiceFault", soap.CodeClient, "empty"},
		}
		for _, c := range cases {
			t.Run(d.Name+"/"+c.name, func(t *testing.T) {
				a := post(t, svcURL, c.body)
				typ, code, desc := a.fault(t)
				if a.status != c.status || typ != c.fault || code != c.code {
					t.Fatalf("got HTTP %d %s %s, want %d %s %s\n%s", a.status, typ, code, c.status, c.fault, c.code, a.raw)
				}
				if !strings.Contains(desc, c.descHas) {
					t.Errorf("description %q does not mention %q", desc, c.descHas)
				}
				// The caller's mistake is not told as the service's failure.
				if strings.Contains(desc, "failed internally") {
					t.Errorf("the fault for a bad request says the service failed: %q", desc)
				}
				// A request too broken to show its dialect is answered in WSRF 1.2's.
				if a.header(dialect.GT4.WSA.Namespace(), "Action") == "" && a.header(dialect.WSRF12.WSA.Namespace(), "Action") == "" {
					t.Error("fault without wsa:Action")
				}
				if after := snapshot(t, s, "ws-h"); after != before {
					t.Fatalf("a fault changed the workspace:\nbefore %s\nafter  %s", before, after)
				}
			})
		}
	}
}

func TestWSRF12ReferenceParametersAndResponseHeaders(t *testing.T) {
	s := harness.Start(t)
	svcURL := s.ServiceURL(vwsns.WorkspaceService)
	s.SeedWorkspace(t, "ws-w", "w3c", nil)
	d := dialect.WSRF12
	a := post(t, svcURL, request(d, svcURL, getRPAction(d), "ws-w", `<rp:GetResourceProperty>vw:name</rp:GetResourceProperty>`,
		`<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>`))
	if a.status != 200 {
		t.Fatalf("HTTP %d: %s", a.status, a.raw)
	}
	if got := a.header(d.WSA.Namespace(), "Action"); got != "http://docs.oasis-open.org/wsrf/rpw-2/GetResourceProperty/GetResourcePropertyResponse" {
		t.Errorf("action %q", got)
	}
	if got := a.header(d.WSA.Namespace(), "RelatesTo"); got != "urn:uuid:test-1" {
		t.Errorf("RelatesTo %q", got)
	}
	if !strings.Contains(a.raw, ">w3c</") {
		t.Fatalf("no name: %s", a.raw)
	}
	// A fault's originator carries the key exactly as the reference parameter.
	f := post(t, svcURL, request(d, svcURL, getRPAction(d), "ws-w", `<rp:GetResourceProperty>vw:nope</rp:GetResourceProperty>`))
	if !strings.Contains(f.raw, "ReferenceParameters") || !strings.Contains(f.raw, ">ws-w</") {
		t.Fatalf("originator EPR lacks the key: %s", f.raw)
	}
}

func TestSetResourcePropertiesAllOrNothing(t *testing.T) {
	s := harness.Start(t)
	svcURL := s.ServiceURL(vwsns.WorkspaceService)
	s.SeedWorkspace(t, "ws-s", "set", nil)
	for _, d := range dialect.Dialects {
		// A writable update followed by a read-only one: neither may apply.
		before := snapshot(t, s, "ws-s")
		a := post(t, svcURL, request(d, svcURL, setRPAction(d), "ws-s",
			`<rp:SetResourceProperties><rp:Update><cap:capability xmlns:cap="`+vwsns.Capability+`"/></rp:Update><rp:Update><vw:state>running</vw:state></rp:Update></rp:SetResourceProperties>`))
		if typ, _, _ := a.fault(t); typ != "UnableToModifyResourcePropertyFault" {
			t.Fatalf("%s: %s", d.Name, typ)
		}
		if after := snapshot(t, s, "ws-s"); after != before {
			t.Fatalf("%s: partial update applied", d.Name)
		}
		ok := post(t, svcURL, request(d, svcURL, setRPAction(d), "ws-s",
			`<rp:SetResourceProperties><rp:Insert><cap:capability xmlns:cap="`+vwsns.Capability+`"/></rp:Insert></rp:SetResourceProperties>`))
		if ok.status != 200 || ok.env.Payload.Tag != "SetResourcePropertiesResponse" {
			t.Fatalf("%s: HTTP %d %s", d.Name, ok.status, ok.raw)
		}
		del := post(t, svcURL, request(d, svcURL, setRPAction(d), "ws-s",
			`<rp:SetResourceProperties><rp:Delete xmlns:c="`+vwsns.Capability+`" ResourceProperty="c:capability"/></rp:SetResourceProperties>`))
		if del.status != 200 {
			t.Fatalf("%s: delete HTTP %d %s", d.Name, del.status, del.raw)
		}
		if after := snapshot(t, s, "ws-s"); after != before {
			t.Fatalf("%s: insert+delete did not restore the document:\n%s\n%s", d.Name, before, after)
		}
	}
}
