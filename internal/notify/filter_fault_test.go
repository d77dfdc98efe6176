package notify

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/contract"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
)

// WSN 1.3 (b-2.xsd) InvalidFilterFaultType extends BaseFaultType with
// <UnknownFilter type="xsd:QName" maxOccurs="unbounded"/> (minOccurs 1): the fault must
// name the filter element(s) the producer did not recognize. vws knows which one it
// was (filterError.unknown) but the fault on the wire carries no UnknownFilter, so a
// WSN 1.3 client validating or binding the fault (JAXB/CXF, Muse) cannot read it.
func TestInvalidFilterFaultNamesTheUnknownFilter(t *testing.T) {
	b := newBroker(t, nil, nil)
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.WorkspaceService, vwsns.WorkspaceKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, op := range svc.Contract(d).Operations {
			if !(op.Name == "Subscribe") {
				svc.Handle(op.Name, container.NotImplemented(op.Name))
			}
		}
	}
	svc.Handle("Subscribe", b.Subscribe(exists("ws1")))
	c, err := container.New(container.Config{ContractFS: contract.FS, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, svc)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(c)
	defer hs.Close()

	d := dialect.WSRF12
	to := hs.URL + "/wsrf/services/" + vwsns.WorkspaceService
	const action = "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest"
	env := `<soapenv:Envelope xmlns:soapenv="` + soap.NS11 + `" xmlns:wsa="` + d.WSA.Namespace() + `">` +
		`<soapenv:Header><wsa:To>` + to + `</wsa:To><wsa:Action>` + action + `</wsa:Action><wsa:MessageID>urn:uuid:1</wsa:MessageID>` +
		`<vw:WorkspaceKey xmlns:vw="` + vwsns.Workspace + `" wsa:IsReferenceParameter="true">ws1</vw:WorkspaceKey></soapenv:Header>` +
		`<soapenv:Body><wsnt:Subscribe xmlns:wsnt="` + d.BN + `">` + consumerRef(d, "http://127.0.0.1:9/c") +
		`<wsnt:Filter><wsnt:MessageContent Dialect="http://www.w3.org/TR/1999/REC-xpath-19991116">/a</wsnt:MessageContent></wsnt:Filter>` +
		`</wsnt:Subscribe></soapenv:Body></soapenv:Envelope>`
	req, _ := http.NewRequest(http.MethodPost, to, bytes.NewBufferString(env))
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", `"`+action+`"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	fault := doc.FindElement("//InvalidFilterFault")
	if fault == nil || fault.NamespaceURI() != d.BN {
		t.Fatalf("no wsnt:InvalidFilterFault in the answer:\n%s", data)
	}
	u := fault.FindElement("./UnknownFilter")
	if u == nil || u.NamespaceURI() != d.BN {
		t.Fatalf("InvalidFilterFault has no wsnt:UnknownFilter (b-2.xsd requires one or more):\n%s", data)
	}
	// An xs:QName: its prefix is bound where it is used, to the filter's namespace.
	prefix, local, _ := strings.Cut(u.Text(), ":")
	if local != "MessageContent" || u.SelectAttrValue("xmlns:"+prefix, "") != d.BN {
		t.Fatalf("wsnt:UnknownFilter says %q, not the refused wsnt:MessageContent:\n%s", u.Text(), data)
	}
}
