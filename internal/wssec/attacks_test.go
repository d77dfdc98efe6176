package wssec

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestSignatureAttacksRefused: signature wrapping and substitution attacks, each refused
// (or, with the Security header meant for another actor, treated as unsigned).
func TestSignatureAttacksRefused(t *testing.T) {
	p := getPKI(t)
	ns := wsa.NS200508
	fresh := func(t *testing.T) *soap.Envelope {
		return signed(t, p.signer(RSASHA256, t0), request(ns, "urn:uuid:cov-"+t.Name()))
	}
	sig := func(t *testing.T, env *soap.Envelope) *etree.Element { return securityChild(t, env, NSDS, "Signature") }
	refused := func(t *testing.T, env *soap.Envelope) {
		t.Helper()
		res, err := p.verifier(t0).Verify(wire(t, env.Doc))
		if err == nil && res.Signed {
			t.Fatalf("ACCEPTED as signed by %s", res.Identity.DN)
		}
		if err == nil {
			t.Logf("treated as unsigned")
			return
		}
		t.Logf("refused: %v", err)
	}
	t.Run("PI splits the key text (Text() would truncate)", func(t *testing.T) {
		env := fresh(t)
		k := header(t, env, testKeyNS, "WorkspaceKey")
		k.SetText("6f")
		k.AddChild(etree.NewProcInst("x", ""))
		k.AddChild(etree.NewText("1c"))
		// soap.Parse refuses a processing instruction anywhere in the envelope, so
		// none reaches Verify off the wire; Verify refuses one all the same.
		data, err := env.Doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := soap.Parse(data); err == nil {
			t.Error("soap.Parse accepted a processing instruction inside the key header")
		}
		if res, err := p.verifier(t0).Verify(env); err == nil && res.Signed {
			t.Fatalf("ACCEPTED as signed by %s", res.Identity.DN)
		}
	})
	t.Run("two Security headers", func(t *testing.T) {
		env := fresh(t)
		sec := header(t, env, NSWSSE, "Security")
		sec.Parent().AddChild(sec.Copy())
		refused(t, env)
	})
	t.Run("extra XPath transform", func(t *testing.T) {
		env := fresh(t)
		tr := sig(t, env).FindElement("./ds:SignedInfo/ds:Reference/ds:Transforms")
		x := tr.CreateElement("ds:Transform")
		x.CreateAttr("Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116")
		refused(t, env)
	})
	t.Run("enveloped-signature transform", func(t *testing.T) {
		env := fresh(t)
		x := sig(t, env).FindElement("./ds:SignedInfo/ds:Reference/ds:Transforms/ds:Transform")
		x.SelectAttr("Algorithm").Value = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
		refused(t, env)
	})
	t.Run("xpointer reference", func(t *testing.T) {
		env := fresh(t)
		ref := sig(t, env).FindElement("./ds:SignedInfo/ds:Reference")
		ref.SelectAttr("URI").Value = "#xpointer(/)"
		refused(t, env)
	})
	t.Run("empty-URI reference", func(t *testing.T) {
		env := fresh(t)
		ref := sig(t, env).FindElement("./ds:SignedInfo/ds:Reference")
		ref.SelectAttr("URI").Value = ""
		refused(t, env)
	})
	t.Run("Id in another namespace", func(t *testing.T) {
		env := fresh(t)
		bodyID, _ := attrNS(env.Body, NSWSU, "Id")
		x := env.Headers[0].Parent().CreateElement("x:Other")
		x.CreateAttr("xmlns:x", "urn:attacker")
		x.CreateAttr("x:Id", bodyID)
		x.CreateAttr("ID", bodyID)
		// evil body elsewhere with the Id in another ns; real body keeps its wsu:Id
		env.Payload.ChildElements()[0].SetText("destroyed")
		refused(t, env)
	})
	t.Run("BST outside the Security header", func(t *testing.T) {
		env := fresh(t)
		bst := securityChild(t, env, NSWSSE, "BinarySecurityToken")
		w := env.Headers[0].Parent().CreateElement("x:W")
		w.CreateAttr("xmlns:x", "urn:attacker")
		w.CreateAttr("xmlns:wsse", NSWSSE) // the token's prefix was declared by the Security header
		bst.Parent().RemoveChild(bst)
		w.AddChild(bst)
		refused(t, env)
	})
	t.Run("KeyInfo X509Data with a stranger", func(t *testing.T) {
		env := fresh(t)
		ki := sig(t, env).FindElement("./ds:KeyInfo")
		for _, c := range ki.ChildElements() {
			ki.RemoveChild(c)
		}
		xd := ki.CreateElement("ds:X509Data")
		xd.CreateElement("ds:X509Certificate").SetText(base64.StdEncoding.EncodeToString(p.stranger.Raw))
		refused(t, env)
	})
	t.Run("Security header for another actor", func(t *testing.T) {
		env := fresh(t)
		sec := header(t, env, NSWSSE, "Security")
		sec.CreateAttr(env.Root.Space+":actor", "urn:some-other-node")
		env.Payload.ChildElements()[0].SetText("destroyed")
		refused(t, env) // must be unsigned, not signed
	})
	t.Run("second unsigned key header", func(t *testing.T) {
		env := fresh(t)
		k := header(t, env, testKeyNS, "WorkspaceKey").Copy()
		k.SetText("other")
		for _, a := range append([]etree.Attr(nil), k.Attr...) {
			if a.Key == "Id" { // else the copy is refused for repeating the signed one's wsu:Id
				k.RemoveAttr(a.FullKey())
			}
		}
		env.Headers[0].Parent().AddChild(k)
		res, err := p.verifier(t0).Verify(wire(t, env.Doc))
		if err != nil {
			t.Logf("refused: %v", err)
			return
		}
		// It may verify (the container refuses two key headers and requires the one it
		// uses to be covered), but the added header must not count as signed.
		keys := 0
		for _, h := range res.SignedHeaders {
			if h.Tag == "WorkspaceKey" && h.NamespaceURI() == testKeyNS {
				keys++
				if strings.TrimSpace(h.Text()) == "other" {
					t.Fatalf("the unsigned second key header is among the signed headers (%d)", len(res.SignedHeaders))
				}
			}
		}
		if keys != 1 {
			t.Fatalf("%d key headers counted as signed, want the one the signature covers", keys)
		}
	})
	t.Run("second Signature in the Security header", func(t *testing.T) {
		env := fresh(t)
		s := sig(t, env)
		s.Parent().AddChild(s.Copy())
		refused(t, env)
	})
}
