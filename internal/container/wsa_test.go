package container_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// wsaServer serves the factory service with handlers that count their calls; the
// GetResourceProperty handler fails when asked for f:Fail.
type wsaServer struct {
	url   string
	calls atomic.Int64
	svc   *container.Service
}

func startWSAServer(t *testing.T) *wsaServer {
	t.Helper()
	s := &wsaServer{}
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.FactoryService, wsa.QName{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, op := range svc.Contract(d).Operations {
			svc.Handle(op.Name, func(ctx context.Context, req *container.Request) (*etree.Element, error) {
				s.calls.Add(1)
				if strings.Contains(req.Payload.Text(), "Fail") {
					return nil, fmt.Errorf("%w: no property Fail", errdefs.ErrInvalidQName)
				}
				return etree.NewElement("ok"), nil
			})
		}
	}
	s.svc = svc
	c, err := container.New(container.Config{}, svc)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	s.url = hs.URL + container.ServicesPath + vwsns.FactoryService
	return s
}

// getRP returns GetResourceProperty's action in dialect d.
func (s *wsaServer) getRP(t *testing.T, d *dialect.Dialect) string {
	t.Helper()
	for _, op := range s.svc.Contract(d).Operations {
		if op.Name == "GetResourceProperty" {
			return op.InputAction
		}
	}
	t.Fatal("no GetResourceProperty")
	return ""
}

// envelope builds a GetResourceProperty request in dialect d with the given extra
// addressing headers (prefix wsa, in d's version) and action.
func envelope(d *dialect.Dialect, action, property string, headers ...string) string {
	return `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="` + d.WSA.Namespace() + `"><s:Header>` +
		`<wsa:Action>` + action + `</wsa:Action><wsa:MessageID>urn:uuid:req-1</wsa:MessageID>` + strings.Join(headers, "") +
		`</s:Header><s:Body><rp:GetResourceProperty xmlns:rp="` + d.RP + `" xmlns:f="` + vwsns.Factory + `">f:` + property +
		`</rp:GetResourceProperty></s:Body></s:Envelope>`
}

type reply struct {
	status int
	raw    string
	env    *soap.Envelope
}

func (s *wsaServer) post(t *testing.T, body string) reply {
	t.Helper()
	resp, err := http.Post(s.url, "text/xml; charset=utf-8", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	if len(raw) > 0 {
		if r.env, err = soap.Parse(raw); err != nil {
			t.Fatalf("response does not parse: %v\n%s", err, raw)
		}
	}
	return r
}

// headers returns the response header blocks named {ns}local.
func (r reply) headers(ns, local string) []*etree.Element {
	var out []*etree.Element
	for _, h := range r.env.Headers {
		if h.Tag == local && h.NamespaceURI() == ns {
			out = append(out, h)
		}
	}
	return out
}

func (r reply) header(ns, local string) string {
	if hs := r.headers(ns, local); len(hs) == 1 {
		return strings.TrimSpace(hs[0].Text())
	}
	return ""
}

// TestReplyEchoesReferenceParameters: WS-Addressing 1.0 Core §3.3 and 2004/03 §3 add
// each reference parameter/property of the endpoint a reply goes to as a header block
// of the reply (1.0: marked wsa:IsReferenceParameter="true"): ReplyTo's for a normal
// reply, FaultTo's for a fault when there is one, else ReplyTo's.
func TestReplyEchoesReferenceParameters(t *testing.T) {
	s := startWSAServer(t)
	for _, d := range dialect.Dialects {
		v := d.WSA
		epr := func(name, corr string) string {
			return `<wsa:` + name + `><wsa:Address>` + v.Anonymous() + `</wsa:Address><wsa:` + v.ReferenceContainer() +
				`><c:Corr xmlns:c="urn:c">` + corr + `</c:Corr></wsa:` + v.ReferenceContainer() + `></wsa:` + name + `>`
		}
		corr := func(t *testing.T, r reply, want string) {
			t.Helper()
			hs := r.headers("urn:c", "Corr")
			if len(hs) != 1 || strings.TrimSpace(hs[0].Text()) != want {
				t.Fatalf("want one c:Corr header %q: %s", want, r.raw)
			}
			isRP := ""
			for _, a := range hs[0].Attr {
				if a.Key == "IsReferenceParameter" && a.NamespaceURI() == wsa.NS200508 {
					isRP = a.Value
				}
			}
			if wantRP := map[wsa.Version]string{wsa.V200403: "", wsa.V200508: "true"}[v]; isRP != wantRP {
				t.Errorf("IsReferenceParameter %q, want %q: %s", isRP, wantRP, r.raw)
			}
		}
		t.Run(d.Name+"/reply", func(t *testing.T) {
			r := s.post(t, envelope(d, s.getRP(t, d), "Version", epr("ReplyTo", "42")))
			if r.status != 200 {
				t.Fatalf("HTTP %d: %s", r.status, r.raw)
			}
			corr(t, r, "42")
		})
		t.Run(d.Name+"/fault to ReplyTo", func(t *testing.T) {
			r := s.post(t, envelope(d, s.getRP(t, d), "Fail", epr("ReplyTo", "42")))
			if r.status != 500 {
				t.Fatalf("HTTP %d: %s", r.status, r.raw)
			}
			corr(t, r, "42")
		})
		t.Run(d.Name+"/fault to FaultTo", func(t *testing.T) {
			r := s.post(t, envelope(d, s.getRP(t, d), "Fail", epr("ReplyTo", "42"), epr("FaultTo", "43")))
			if r.status != 500 {
				t.Fatalf("HTTP %d: %s", r.status, r.raw)
			}
			corr(t, r, "43")
		})
		t.Run(d.Name+"/reply with FaultTo", func(t *testing.T) {
			r := s.post(t, envelope(d, s.getRP(t, d), "Version", epr("ReplyTo", "42"), epr("FaultTo", "43")))
			if r.status != 200 {
				t.Fatalf("HTTP %d: %s", r.status, r.raw)
			}
			corr(t, r, "42")
		})
	}
}

// faultCode resolves the SOAP 1.1 faultcode of r to {namespace}local.
func (r reply) faultCode(t *testing.T) (ns, local string) {
	t.Helper()
	if r.env == nil || !soap.IsFault(r.env.Payload) {
		t.Fatalf("not a fault: HTTP %d %s", r.status, r.raw)
	}
	fc := r.env.Payload.SelectElement("faultcode")
	prefix, local, _ := strings.Cut(strings.TrimSpace(fc.Text()), ":")
	ns, ok := wsa.LookupNamespace(fc, prefix)
	if !ok {
		t.Fatalf("faultcode prefix %q undeclared: %s", prefix, r.raw)
	}
	return ns, local
}

// TestAddressingFaults: errors in the addressing headers are WS-Addressing faults bound
// to SOAP 1.1 as the 1.0 SOAP Binding §6 says (the most specific code as faultcode, the
// details in a wsa:FaultDetail header, the addressing fault action), in 2004/03 with
// its own codes; each keeps its human faultstring and the BaseFault detail, relates to
// the request, and runs nothing.
func TestAddressingFaults(t *testing.T) {
	s := startWSAServer(t)
	for _, d := range dialect.Dialects {
		v := d.WSA
		for _, c := range []struct {
			name         string
			body         string
			code         map[wsa.Version]string
			problem      string // FaultDetail child in 1.0
			problemValue string
			says         string
		}{
			{"unknown action", envelope(d, "urn:bogus", "Version"),
				map[wsa.Version]string{wsa.V200508: "ActionNotSupported", wsa.V200403: "ActionNotSupported"},
				"ProblemAction/Action", "urn:bogus", `does not support action "urn:bogus"`},
			{"two actions", envelope(d, s.getRP(t, d), "Version", `<wsa:Action>urn:another</wsa:Action>`),
				map[wsa.Version]string{wsa.V200508: "InvalidCardinality", wsa.V200403: "InvalidMessageInformationHeader"},
				"ProblemHeaderQName", "wsa:Action", "wsa:Action appears more than once"},
			{"two actions before the MessageID", strings.Replace(envelope(d, s.getRP(t, d), "Version"),
				`<wsa:Action>`, `<wsa:Action>urn:first</wsa:Action><wsa:Action>`, 1),
				map[wsa.Version]string{wsa.V200508: "InvalidCardinality", wsa.V200403: "InvalidMessageInformationHeader"},
				"ProblemHeaderQName", "wsa:Action", "wsa:Action appears more than once"},
		} {
			t.Run(d.Name+"/"+c.name, func(t *testing.T) {
				before := s.calls.Load()
				r := s.post(t, c.body)
				if r.status != 500 {
					t.Fatalf("HTTP %d: %s", r.status, r.raw)
				}
				if ns, local := r.faultCode(t); ns != v.Namespace() || local != c.code[v] {
					t.Errorf("faultcode {%s}%s, want {%s}%s", ns, local, v.Namespace(), c.code[v])
				}
				if got := r.header(v.Namespace(), "Action"); got != v.Namespace()+"/fault" {
					t.Errorf("action %q, want %s/fault", got, v.Namespace())
				}
				if got := r.header(v.Namespace(), "RelatesTo"); got != "urn:uuid:req-1" {
					t.Errorf("RelatesTo %q", got)
				}
				f := soap.ParseFault(r.env.Payload)
				if !strings.Contains(f.String, c.says) || !strings.Contains(f.String, "; ") {
					t.Errorf("faultstring %q lacks %q and advice", f.String, c.says)
				}
				if len(f.Detail) != 1 || f.Detail[0].SelectElement("Description") == nil {
					t.Errorf("no BaseFault detail: %s", r.raw)
				}
				fd := r.headers(wsa.NS200508, "FaultDetail")
				if v == wsa.V200403 {
					if len(fd) != 0 {
						t.Errorf("2004/03 fault with a 1.0 FaultDetail: %s", r.raw)
					}
				} else if len(fd) != 1 || fd[0].FindElement(c.problem) == nil || fd[0].FindElement(c.problem).Text() != c.problemValue {
					t.Errorf("want wsa:FaultDetail/%s %s: %s", c.problem, c.problemValue, r.raw)
				}
				if s.calls.Load() != before {
					t.Error("the handler ran")
				}
			})
		}
	}
}

// TestAnswersOnlyOnTheHTTPResponse: the container answers only on the HTTP response, so
// a request whose ReplyTo or FaultTo names another address is refused with the
// WS-Addressing fault for it, before anything runs (1.0 OnlyAnonymousAddressSupported,
// 2004/03 InvalidMessageInformationHeader), the fault going back on the HTTP response
// without the refused endpoint's reference parameters. In 1.0, an answer to the none
// address is not sent: HTTP 202 with no body, the operation done.
func TestAnswersOnlyOnTheHTTPResponse(t *testing.T) {
	s := startWSAServer(t)
	epr := func(v wsa.Version, name, address, corr string) string {
		return `<wsa:` + name + `><wsa:Address>` + address + `</wsa:Address><wsa:` + v.ReferenceContainer() +
			`><c:Corr xmlns:c="urn:c">` + corr + `</c:Corr></wsa:` + v.ReferenceContainer() + `></wsa:` + name + `>`
	}
	const elsewhere = "http://127.0.0.1:9/cb"
	for _, d := range dialect.Dialects {
		v := d.WSA
		code := map[wsa.Version]string{wsa.V200508: "OnlyAnonymousAddressSupported", wsa.V200403: "InvalidMessageInformationHeader"}[v]
		for _, c := range []struct {
			name, header string
			headers      []string
			corr         string // the c:Corr the fault must echo, "" for none
		}{
			{"ReplyTo elsewhere", "ReplyTo", []string{epr(v, "ReplyTo", elsewhere, "42")}, ""},
			{"FaultTo elsewhere", "FaultTo", []string{epr(v, "ReplyTo", v.Anonymous(), "42"), epr(v, "FaultTo", elsewhere, "43")}, "42"},
			{"ReplyTo elsewhere, FaultTo anonymous", "ReplyTo", []string{epr(v, "ReplyTo", elsewhere, "42"), epr(v, "FaultTo", v.Anonymous(), "43")}, "43"},
			{"ReplyTo the other version's none", "ReplyTo", []string{epr(v, "ReplyTo", map[wsa.Version]string{
				wsa.V200403: wsa.V200508.None(), wsa.V200508: wsa.NS200403 + "/none"}[v], "42")}, ""},
		} {
			t.Run(d.Name+"/"+c.name, func(t *testing.T) {
				before := s.calls.Load()
				r := s.post(t, envelope(d, s.getRP(t, d), "Version", c.headers...))
				if r.status != 500 {
					t.Fatalf("HTTP %d: %s", r.status, r.raw)
				}
				if s.calls.Load() != before {
					t.Error("the operation ran")
				}
				if ns, local := r.faultCode(t); ns != v.Namespace() || local != code {
					t.Errorf("faultcode {%s}%s, want {%s}%s", ns, local, v.Namespace(), code)
				}
				if got := r.header(v.Namespace(), "To"); got != v.Anonymous() {
					t.Errorf("wsa:To %q, want %s", got, v.Anonymous())
				}
				if got := r.header(v.Namespace(), "RelatesTo"); got != "urn:uuid:req-1" {
					t.Errorf("RelatesTo %q", got)
				}
				if got := r.header(v.Namespace(), "Action"); got != v.Namespace()+"/fault" {
					t.Errorf("action %q", got)
				}
				f := soap.ParseFault(r.env.Payload)
				if !strings.Contains(f.String, "wsa:"+c.header+" is ") || !strings.Contains(f.String, "anonymous") {
					t.Errorf("faultstring %q", f.String)
				}
				if got := r.header("urn:c", "Corr"); got != c.corr {
					t.Errorf("echoed c:Corr %q, want %q: %s", got, c.corr, r.raw)
				}
				if v == wsa.V200508 {
					fd := r.headers(wsa.NS200508, "FaultDetail")
					if len(fd) != 1 || fd[0].SelectElement("ProblemHeaderQName") == nil || fd[0].SelectElement("ProblemHeaderQName").Text() != "wsa:"+c.header {
						t.Errorf("want FaultDetail/ProblemHeaderQName wsa:%s: %s", c.header, r.raw)
					}
				}
			})
		}
	}

	d, v := dialect.WSRF12, wsa.V200508
	none := v.None()
	for _, c := range []struct {
		name     string
		property string // Fail makes the operation fail
		headers  []string
		status   int
	}{
		{"reply to none", "Version", []string{epr(v, "ReplyTo", none, "42")}, 202},
		{"fault to none via ReplyTo", "Fail", []string{epr(v, "ReplyTo", none, "42")}, 202},
		{"fault to none", "Fail", []string{epr(v, "ReplyTo", v.Anonymous(), "42"), epr(v, "FaultTo", none, "43")}, 202},
		{"reply with FaultTo none", "Version", []string{epr(v, "FaultTo", none, "43")}, 200},
		{"fault to anonymous FaultTo, reply to none", "Fail", []string{epr(v, "ReplyTo", none, "42"), epr(v, "FaultTo", v.Anonymous(), "43")}, 500},
	} {
		t.Run("wsrf12/"+c.name, func(t *testing.T) {
			before := s.calls.Load()
			r := s.post(t, envelope(d, s.getRP(t, d), c.property, c.headers...))
			if r.status != c.status {
				t.Fatalf("HTTP %d, want %d: %s", r.status, c.status, r.raw)
			}
			if s.calls.Load() != before+1 {
				t.Error("the operation did not run")
			}
			if c.status == 202 && r.raw != "" {
				t.Errorf("an answer to none has a body: %s", r.raw)
			}
		})
	}
	// A fault about the request itself is not the operation's answer: it comes back.
	r := s.post(t, envelope(d, "urn:bogus", "Version", epr(v, "ReplyTo", none, "42")))
	if ns, local := r.faultCode(t); r.status != 500 || ns != wsa.NS200508 || local != "ActionNotSupported" {
		t.Errorf("unknown action with ReplyTo none: HTTP %d {%s}%s", r.status, ns, local)
	}
}
