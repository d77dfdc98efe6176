package wssec

import (
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
