package wssec

import (
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/wsa"
)

// TestUnsignedDefaultNamespaceRefused: an unprefixed QName in content
// (ResourceProperty="Harmless") resolves through the default namespace, which
// exclusive c14n does not render on a prefixed element: rebound after signing, it
// must not pass for what was signed.
func TestUnsignedDefaultNamespaceRefused(t *testing.T) {
	p := getPKI(t)
	const victimNS = "urn:vws:props:a"
	const otherNS = "urn:vws:props:b"
	doc, del := deleteRequest("urn:uuid:secreview-default-qname")
	del.CreateAttr("xmlns", victimNS)
	del.CreateAttr("ResourceProperty", "Harmless")
	if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
		t.Fatal(err)
	}
	env := wire(t, doc)
	env.Payload.ChildElements()[0].SelectAttr("xmlns").Value = otherNS
	env = wire(t, env.Doc)
	d := env.Payload.ChildElements()[0]
	q, err := wsa.ResolveQName(d, d.SelectAttrValue("ResourceProperty", ""))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.verifier(t0).Verify(env)
	if err == nil {
		t.Fatalf("ALTERED MESSAGE ACCEPTED: signed by %s for {%s}Harmless, the service now resolves {%s}%s", res.Identity.DN, victimNS, q.Space, q.Local)
	}
}

// TestDefaultNamespaceSignedWithDefaultToken: content that resolves through a default
// namespace on a prefixed element is signed with "#default" listed, and verifies; the
// binding is then part of what was signed.
func TestDefaultNamespaceSignedWithDefaultToken(t *testing.T) {
	p := getPKI(t)
	doc, del := deleteRequest("urn:uuid:default-token-signed")
	del.CreateAttr("xmlns", "urn:vws:props:a")
	del.CreateAttr("ResourceProperty", "Harmless")
	if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
		t.Fatal(err)
	}
	env := wire(t, doc)
	if _, err := p.verifier(t0).Verify(env); err != nil {
		t.Fatalf("a message signed with #default is refused: %v", err)
	}
	env.Payload.ChildElements()[0].SelectAttr("xmlns").Value = "urn:vws:props:b"
	_, err := p.verifier(t0).Verify(wire(t, env.Doc))
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("the signed default namespace was rebound: got %v, want a digest mismatch", err)
	}
}

// TestDefaultNamespaceAddedAfterSigning: a default namespace declared on a prefixed
// element after signing, where the signer had none to list, leaves the digest as it
// was; it is still refused.
func TestDefaultNamespaceAddedAfterSigning(t *testing.T) {
	p := getPKI(t)
	doc, del := deleteRequest("urn:uuid:default-added-later")
	del.CreateAttr("ResourceProperty", "Harmless")
	if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
		t.Fatal(err)
	}
	env := wire(t, doc)
	env.Payload.ChildElements()[0].CreateAttr("xmlns", "urn:vws:props:b")
	_, err := p.verifier(t0).Verify(wire(t, env.Doc))
	if err == nil || !strings.Contains(err.Error(), "default namespace") {
		t.Fatalf("got %v, want the unsigned default namespace refused", err)
	}
}
