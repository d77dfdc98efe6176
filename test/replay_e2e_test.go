package test

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wssec"
)

// TestSignedCreateIsCarriedOutOnce: alice signs one Factory Create (with a
// MessageID); bob, who delivers it (a portal, a relay), delivers it again as it was,
// and then with the signed wsa:MessageID moved into an unknown wrapper header (where
// the server would see no MessageID, and once keyed the replay by what was signed
// instead). Both are refused: one signed message, one workspace.
func TestSignedCreateIsCarriedOutOnce(t *testing.T) {
	s := newSecSite(t)
	s.importImage("sec")
	alice, bob := s.users["alice"], s.users["bob"]
	facURL := s.epr(vwsns.FactoryService).Address

	doc := etree.NewDocument()
	if err := doc.ReadFromString(vmDescription(`<sw:image><sw:name>sec</sw:name></sw:image>`)); err != nil {
		t.Fatal(err)
	}
	body := etree.NewElement("fac:Create")
	body.CreateAttr("xmlns:fac", vwsns.Factory)
	body.AddChild(doc.Root())
	msg := (&soap.Message{Headers: []*etree.Element{addrHeader("To", facURL), addrHeader("MessageID", "urn:uuid:secreview-once")}, Body: body}).Document()
	if err := (&wssec.Signer{Key: alice.Key, Chain: alice.FullChain()}).Sign(msg); err != nil {
		t.Fatal(err)
	}
	raw, err := msg.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	post := func(raw []byte) (int, string) {
		t.Helper()
		resp, err := s.httpAs(bob).Post(facURL, "text/xml; charset=utf-8", bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := post(raw); code != 200 {
		t.Fatalf("first delivery: HTTP %d: %.600s", code, b)
	}
	// Plain replay is refused, as documented.
	if code, b := post(raw); code == 200 || !strings.Contains(b, "was seen before: replay refused") {
		t.Fatalf("plain replay: HTTP %d: %.600s", code, b)
	}
	// Replay with the signed MessageID moved into a wrapper header block.
	env, err := soap.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	var mid *etree.Element
	for _, h := range env.Headers {
		if h.Tag == "MessageID" {
			mid = h
		}
	}
	hdr := mid.Parent()
	w := hdr.CreateElement("x:Wrapper")
	w.CreateAttr("xmlns:x", "urn:attacker")
	hdr.RemoveChild(mid)
	w.AddChild(mid)
	raw2, _ := env.Doc.WriteToBytes()
	code, b := post(raw2)
	if code == 200 {
		i := strings.Index(b, "<vw:WorkspaceKey")
		t.Fatalf("REPLAY ACCEPTED: alice's one signed Create, delivered again by bob with its MessageID moved into a wrapper header, was carried out a second time: HTTP %d, new workspace %.110s", code, b[max(i, 0):])
	}
	if !strings.Contains(b, "a signed element moved elsewhere is refused") {
		t.Fatalf("the rearranged replay was refused, but not for what it is: HTTP %d: %.800s", code, b)
	}
}
