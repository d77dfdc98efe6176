package wssec

import (
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/wsa"
)

// TestQNamePrefixesAreSigned: exclusive C14N leaves out namespace declarations used
// only inside text or attribute values (QNames in content), so a prefix such a QName
// uses could be rebound by whoever passes the message on, and the service would
// resolve another QName (which property a SetResourceProperties Delete removes, which
// one GetResourceProperty reads, which topic Subscribe subscribes to). The Signer
// lists every prefix in scope in the references' InclusiveNamespaces PrefixList, so
// rebinding one — declared on soap:Envelope, or on the element itself — breaks the
// signature.
func TestQNamePrefixesAreSigned(t *testing.T) {
	for _, onEnvelope := range []bool{true, false} {
		qnameRebinding(t, onEnvelope)
	}
}

// deleteRequest is a request whose Body is a WSRF SetResourceProperties with one
// Delete, returned for the caller to name the property.
func deleteRequest(messageID string) (*etree.Document, *etree.Element) {
	doc := request(wsa.NS200508, messageID)
	var body *etree.Element
	for _, c := range doc.Root().ChildElements() {
		if c.Tag == "Body" {
			body = c
		}
	}
	for _, c := range body.ChildElements() {
		body.RemoveChild(c)
	}
	set := body.CreateElement("rp:SetResourceProperties")
	set.CreateAttr("xmlns:rp", "http://docs.oasis-open.org/wsrf/rp-2")
	return doc, set.CreateElement("rp:Delete")
}

func qnameRebinding(t *testing.T, onEnvelope bool) {
	p := getPKI(t)
	const victimNS = "urn:vws:props:a"
	const otherNS = "urn:vws:props:b"
	build := func() *etree.Document {
		doc, del := deleteRequest("urn:uuid:secreview-qname")
		if onEnvelope {
			doc.Root().CreateAttr("xmlns:p", victimNS)
		}
		del.CreateAttr("ResourceProperty", "p:Harmless")
		if !onEnvelope {
			del.CreateAttr("xmlns:p", victimNS)
		}
		return doc
	}
	doc := build()
	if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
		t.Fatal(err)
	}
	env := wire(t, doc)
	// An intermediary rebinds p.
	if onEnvelope {
		env.Root.SelectAttr("xmlns:p").Value = otherNS
	} else {
		env.Payload.ChildElements()[0].SelectAttr("xmlns:p").Value = otherNS
	}
	env = wire(t, env.Doc)
	del := env.Payload.ChildElements()[0]
	q, err := wsa.ResolveQName(del, del.SelectAttrValue("ResourceProperty", ""))
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.verifier(t0).Verify(env)
	if err == nil {
		t.Fatalf("ALTERED MESSAGE ACCEPTED (p declared on the Envelope: %v): signed by %s for {%s}Harmless, the service now resolves %s", onEnvelope, res.Identity.DN, victimNS, q)
	}
	wantRefused(t, err, CodeFailedCheck, "was changed after signing")
}
