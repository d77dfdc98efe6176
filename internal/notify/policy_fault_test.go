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

// WSN 1.3 (b-2) names the faults of a SubscriptionPolicy the producer cannot honour:
// UnrecognizedPolicyRequestFault for a policy it does not know, naming it in
// UnrecognizedPolicy, and UnsupportedPolicyRequestFault for one it knows but does not
// offer (b-2's UseRaw: vws sends every message wrapped in Notify), naming it in
// UnsupportedPolicy. The WSDL declares both on Subscribe and the README promises the
// fault WSN names for each refusal; the 2004/06 draft has neither, and keeps
// SubscribeCreationFailedFault.
func TestSubscriptionPolicyIsRefusedWithTheFaultWSNNames(t *testing.T) {
	b := newBroker(t, nil, nil)
	svc, err := container.NewService(contract.FS, "wsdl", vwsns.WorkspaceService, vwsns.WorkspaceKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dialect.Dialects {
		for _, op := range svc.Contract(d).Operations {
			if op.Name != "Subscribe" {
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
	to := hs.URL + "/wsrf/services/" + vwsns.WorkspaceService

	subscribeFault := func(t *testing.T, d *dialect.Dialect, policy string) (*etree.Element, string) {
		t.Helper()
		action := "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest"
		key := `<vw:WorkspaceKey xmlns:vw="` + vwsns.Workspace + `" wsa:IsReferenceParameter="true">ws1</vw:WorkspaceKey>`
		if d == dialect.GT4 {
			action = "http://docs.oasis-open.org/wsn/2004/06/wsn-WS-BaseNotification/Subscribe"
			key = `<vw:WorkspaceKey xmlns:vw="` + vwsns.Workspace + `">ws1</vw:WorkspaceKey>`
		}
		env := `<soapenv:Envelope xmlns:soapenv="` + soap.NS11 + `" xmlns:wsa="` + d.WSA.Namespace() + `">` +
			`<soapenv:Header><wsa:To>` + to + `</wsa:To><wsa:Action>` + action + `</wsa:Action><wsa:MessageID>urn:uuid:1</wsa:MessageID>` +
			key + `</soapenv:Header><soapenv:Body><wsnt:Subscribe xmlns:wsnt="` + d.BN + `" xmlns:vw="` + vwsns.Workspace + `">` +
			consumerRef(d, "http://127.0.0.1:9/c") + topicFilter(d, "vw:state") +
			`<wsnt:SubscriptionPolicy>` + policy + `</wsnt:SubscriptionPolicy></wsnt:Subscribe></soapenv:Body></soapenv:Envelope>`
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
		detail := doc.FindElement("//detail/*")
		if detail == nil {
			t.Fatalf("no fault in the answer:\n%s", data)
		}
		return detail, string(data)
	}

	d := dialect.WSRF12
	for _, c := range []struct {
		name, policy, fault, names, space, local string
	}{
		{"unknown policy", `<x:Batch xmlns:x="urn:example:policy">10</x:Batch>`,
			"UnrecognizedPolicyRequestFault", "UnrecognizedPolicy", "urn:example:policy", "Batch"},
		{"UseRaw", `<wsnt:UseRaw/>`, "UnsupportedPolicyRequestFault", "UnsupportedPolicy", d.BN, "UseRaw"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, data := subscribeFault(t, d, c.policy)
			if f.Tag != c.fault || f.NamespaceURI() != d.BN {
				t.Fatalf("got %s, want wsnt:%s:\n%s", f.Tag, c.fault, data)
			}
			n := f.FindElement("./" + c.names)
			if n == nil || n.NamespaceURI() != d.BN {
				t.Fatalf("%s names no policy in wsnt:%s:\n%s", c.fault, c.names, data)
			}
			prefix, local, _ := strings.Cut(n.Text(), ":")
			if local != c.local || n.SelectAttrValue("xmlns:"+prefix, "") != c.space {
				t.Fatalf("wsnt:%s says %q, not {%s}%s:\n%s", c.names, n.Text(), c.space, c.local, data)
			}
		})
	}
	t.Run("GT4", func(t *testing.T) {
		f, data := subscribeFault(t, dialect.GT4, `<x:Batch xmlns:x="urn:example:policy">10</x:Batch>`)
		if f.Tag != "SubscribeCreationFailedFault" {
			t.Fatalf("got %s, want the 2004/06 draft's SubscribeCreationFailedFault:\n%s", f.Tag, data)
		}
	})
	if n := len(b.home.Keys()); n != 0 {
		t.Fatalf("refused Subscribes left %d subscriptions", n)
	}
}
