package manager

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
)

// TestGetResourcePropertyDocumentOverSOAP: the Manager's service answers WS-RP 1.2's
// GetResourcePropertyDocument with the document QueryResourceProperties "/*" selects
// (internal/server checks the other services, and the schema, with a whole server; the
// manager role needs libvirt there).
func TestGetResourcePropertyDocumentOverSOAP(t *testing.T) {
	m, _, _ := crashManager(t, "ws-doc", stateShutdown, false)
	svc, err := m.Service(contract.FS)
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.New(container.Config{Logger: slog.New(slog.DiscardHandler)}, svc)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	t.Cleanup(hs.Close)
	url := hs.URL + container.ServicesPath + vwsns.ManagerService
	d := dialect.WSRF12
	post := func(action, body string) *etree.Element {
		t.Helper()
		env := `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="` + d.WSA.Namespace() + `" xmlns:rp="` + d.RP + `">` +
			`<s:Header><wsa:To>` + url + `</wsa:To><wsa:Action>` + action + `</wsa:Action><wsa:MessageID>urn:uuid:mgr-doc</wsa:MessageID></s:Header>` +
			`<s:Body>` + body + `</s:Body></s:Envelope>`
		resp, err := http.Post(url, "text/xml; charset=utf-8", bytes.NewBufferString(env))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		e, err := soap.Parse(raw)
		if resp.StatusCode != 200 || err != nil || len(e.Payload.ChildElements()) != 1 {
			t.Fatalf("%s: HTTP %d: %s", action, resp.StatusCode, raw)
		}
		return e.Payload
	}
	doc := post("http://docs.oasis-open.org/wsrf/rpw-2/GetResourcePropertyDocument/GetResourcePropertyDocumentRequest", `<rp:GetResourcePropertyDocument/>`)
	if doc.Tag != "GetResourcePropertyDocumentResponse" || doc.NamespaceURI() != d.RP {
		t.Fatalf("answer {%s}%s", doc.NamespaceURI(), doc.Tag)
	}
	whole := post("http://docs.oasis-open.org/wsrf/rpw-2/QueryResourceProperties/QueryResourcePropertiesRequest",
		`<rp:QueryResourceProperties><rp:QueryExpression Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116">/*</rp:QueryExpression></rp:QueryResourceProperties>`)
	got, want := doc.ChildElements()[0], whole.ChildElements()[0]
	names := func(el *etree.Element) []string {
		out := []string{el.NamespaceURI() + " " + el.Tag}
		for _, c := range el.ChildElements() {
			out = append(out, c.NamespaceURI()+" "+c.Tag)
		}
		return out
	}
	if got.Tag != "WorkspaceManagerResourceProperties" || !slices.Equal(names(got), names(want)) {
		t.Errorf("document %v, want the whole document %v", names(got), names(want))
	}
}
