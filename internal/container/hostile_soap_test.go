package container_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestManyAttributesOnAHeaderAreCheap: a request under the 1 MiB body limit whose one
// header block carries many prefixed attributes must be answered fast; the
// mustUnderstand scan resolves every attribute's prefix by walking all of the
// element's attributes, so it costs the square of their number.
func TestManyAttributesOnAHeaderAreCheap(t *testing.T) {
	s := startWSAServer(t)
	d := dialect.WSRF12
	var attrs strings.Builder
	for i := 0; attrs.Len() < 900<<10; i++ {
		fmt.Fprintf(&attrs, ` x:a%x=""`, i)
	}
	body := envelope(d, s.getRP(t, d), "Version", `<x:H xmlns:x="urn:x"`+attrs.String()+`/>`)
	// declare x on the envelope instead, so each lookup walks the whole element
	body = strings.Replace(body, `<x:H xmlns:x="urn:x"`, `<x:H`, 1)
	body = strings.Replace(body, `<s:Envelope `, `<s:Envelope xmlns:x="urn:x" `, 1)
	if len(body) > 1<<20 {
		t.Fatalf("body %d bytes is over the limit", len(body))
	}
	start := time.Now()
	resp, err := http.Post(s.url, "text/xml; charset=utf-8", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a %d-byte request took %v to answer (HTTP %d); want well under 2 s", len(body), el, resp.StatusCode)
	} else {
		t.Logf("answered in %v, HTTP %d", el, resp.StatusCode)
	}
}

// TestNonSOAPMediaTypeIsNotCarriedOut: SOAP 1.1 over HTTP is "text/xml" (SOAP 1.1 §6.1).
// A POST a web page can make without a CORS preflight (text/plain, form encodings) must
// not be carried out: the caller is the TLS client certificate, which a browser presents
// on a cross-site request, so accepting any media type lets any web page act as a grid
// user whose certificate is in the browser (Destroy a workspace, Shutdown a guest).
func TestNonSOAPMediaTypeIsNotCarriedOut(t *testing.T) {
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		t.Run(ct, func(t *testing.T) {
			s := startWSAServer(t)
			d := dialect.WSRF12
			resp, err := http.Post(s.url, ct, bytes.NewBufferString(envelope(d, s.getRP(t, d), "Version")))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if n := s.calls.Load(); n != 0 || resp.StatusCode == http.StatusOK {
				t.Errorf("Content-Type %q: HTTP %d, handler ran %d time(s); want the request refused (415 or a fault) and nothing run",
					ct, resp.StatusCode, n)
			}
		})
	}
}

// TestSOAPActionThatDisagreesWithWSAActionIsRefused: WS-Addressing 1.0 SOAP Binding: over
// SOAP 1.1/HTTP the SOAPAction header is either empty or the [action] IRI; a receiver
// faults a message whose two disagree (InvalidAddressingHeader / ActionMismatch).
// Proxies, filters and logs that look at SOAPAction must not see one operation while
// the service carries out another.
func TestSOAPActionThatDisagreesWithWSAActionIsRefused(t *testing.T) {
	for _, d := range []*dialect.Dialect{dialect.WSRF12} {
		t.Run(d.Name, func(t *testing.T) {
			s := startWSAServer(t)
			req, _ := http.NewRequest(http.MethodPost, s.url, bytes.NewBufferString(envelope(d, s.getRP(t, d), "Version")))
			req.Header.Set("Content-Type", "text/xml; charset=utf-8")
			req.Header.Set("SOAPAction", `"http://vws.example/SomethingElse"`)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if n := s.calls.Load(); n != 0 || resp.StatusCode == http.StatusOK {
				t.Errorf("SOAPAction disagreeing with wsa:Action: HTTP %d, handler ran %d time(s); want a fault and nothing run", resp.StatusCode, n)
			}
		})
	}
}

// TestMustUnderstandFaultCarriesTheSOAPFaultAction: WS-Addressing 1.0 SOAP Binding §6: a
// fault SOAP itself defines (MustUnderstand, VersionMismatch) carries the action
// http://www.w3.org/2005/08/addressing/soap/fault; http://docs.oasis-open.org/wsrf/fault
// is the action of WSRF BaseFaults, which a MustUnderstand fault is not.
func TestMustUnderstandFaultCarriesTheSOAPFaultAction(t *testing.T) {
	s := startWSAServer(t)
	d := dialect.WSRF12
	r := s.post(t, envelope(d, s.getRP(t, d), "Version", `<x:Y xmlns:x="urn:x" s:mustUnderstand="1"/>`))
	if _, code := r.faultCode(t); code != "MustUnderstand" {
		t.Fatalf("faultcode %s, want MustUnderstand\n%s", code, r.raw)
	}
	const want = "http://www.w3.org/2005/08/addressing/soap/fault"
	if got := r.header(wsa.NS200508, "Action"); got != want {
		t.Errorf("MustUnderstand fault has wsa:Action %q, want %q", got, want)
	}
}

// TestGetWithoutWSDLNamesTheAllowedMethods: RFC 9110 §15.5.6: a 405 response MUST carry
// an Allow header; the SOAP endpoint sends one for PUT and HEAD but not for a plain GET.
func TestGetWithoutWSDLNamesTheAllowedMethods(t *testing.T) {
	s := startWSAServer(t)
	resp, err := http.Get(s.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") == "" {
		t.Errorf("GET %s: HTTP 405 without an Allow header", s.url)
	}
}

// TestReferenceParametersDoNotMultiplyNamespaceDeclarations: every reference parameter
// of wsa:ReplyTo is detached with a copy of every namespace declaration in scope, and
// echoed back as a header. A small request with n declarations on the envelope and m
// empty reference parameters therefore costs n×m attributes in memory and on the wire:
// a 30 KB request must not make the server allocate hundreds of megabytes or answer
// with megabytes.
func TestReferenceParametersDoNotMultiplyNamespaceDeclarations(t *testing.T) {
	s := startWSAServer(t)
	d := dialect.WSRF12
	const n, m = 1500, 1500
	var decls, refs strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&decls, ` xmlns:p%d="u"`, i)
	}
	for i := 0; i < m; i++ {
		refs.WriteString(`<r/>`)
	}
	body := envelope(d, s.getRP(t, d), "Version",
		`<wsa:ReplyTo><wsa:Address>`+wsa.V200508.Anonymous()+`</wsa:Address><wsa:ReferenceParameters>`+refs.String()+`</wsa:ReferenceParameters></wsa:ReplyTo>`)
	body = strings.Replace(body, `<s:Envelope `, `<s:Envelope`+decls.String()+` `, 1)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	resp, err := http.Post(s.url, "text/xml; charset=utf-8", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("request %d bytes: HTTP %d, response %d bytes, %d MB allocated, %v", len(body), resp.StatusCode, len(raw), alloc>>20, time.Since(start))
	if alloc > 64<<20 || len(raw) > 1<<20 {
		t.Errorf("a %d-byte request cost %d MB of allocation and a %d-byte response; want both bounded (well under 64 MB, 1 MiB)",
			len(body), alloc>>20, len(raw))
	}
}

// TestReplyToWithoutMessageIDIsRefused: WS-Addressing 1.0 Core §3.1: when [reply
// endpoint] (or [fault endpoint]) is present, [message id] is REQUIRED — without it
// the answer cannot carry the RelatesTo that ties it to its request. The receiver
// answers SOAP Binding §6.4.3 MessageAddressingHeaderRequired and does nothing.
func TestReplyToWithoutMessageIDIsRefused(t *testing.T) {
	s := startWSAServer(t)
	d := dialect.WSRF12
	body := envelope(d, s.getRP(t, d), "Version",
		`<wsa:ReplyTo><wsa:Address>`+wsa.V200508.Anonymous()+`</wsa:Address></wsa:ReplyTo>`)
	body = strings.Replace(body, `<wsa:MessageID>urn:uuid:req-1</wsa:MessageID>`, "", 1)
	r := s.post(t, body)
	if n := s.calls.Load(); n != 0 || r.status == http.StatusOK {
		t.Errorf("ReplyTo without MessageID: HTTP %d, handler ran %d time(s); want a MessageAddressingHeaderRequired fault\n%s", r.status, n, r.raw)
	}
}
