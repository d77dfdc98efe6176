package wssec

import (
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestHeaderMovedIntoASecurityHeaderRefused: a signed header block moved out of the
// header list into a wsse:Security header — the one verified, or one for another
// actor that the receiver ignores — still digests the same, but the receiver no
// longer reads it: an intermediary could strip the signed MessageID, ReplyTo or
// resource key of a request it passes on. Only tokens belong in a Security header.
func TestHeaderMovedIntoASecurityHeaderRefused(t *testing.T) {
	p := getPKI(t)
	ns := wsa.NS200508
	cases := []struct {
		name  string
		space string
		local string
		into  func(t *testing.T, env *soap.Envelope) *etree.Element
	}{
		{"MessageID into the verified Security header", ns, "MessageID", func(t *testing.T, env *soap.Envelope) *etree.Element {
			return header(t, env, NSWSSE, "Security")
		}},
		{"resource key into a Security header for another actor", testKeyNS, "WorkspaceKey", func(t *testing.T, env *soap.Envelope) *etree.Element {
			other := env.Headers[0].Parent().CreateElement("o:Security")
			other.CreateAttr("xmlns:o", NSWSSE)
			other.CreateAttr(env.Root.Space+":actor", "urn:some-other-node")
			return other
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := signed(t, p.signer(RSASHA256, t0), request(ns, "urn:uuid:moved-into-security-"+c.local))
			h := header(t, env, c.space, c.local)
			into := c.into(t, env)
			h.Parent().RemoveChild(h)
			into.AddChild(h)
			env = wire(t, env.Doc)
			for _, h := range env.Headers {
				if h.Tag == c.local && h.NamespaceURI() == c.space {
					t.Fatalf("the moved %s is still a header block", c.local)
				}
			}
			res, err := p.verifier(t0).Verify(env)
			if err == nil {
				t.Fatalf("ACCEPTED as signed by %s with its signed %s moved out of the header list (signed headers: %d)", res.Identity.DN, c.local, len(res.SignedHeaders))
			}
			wantRefused(t, err, CodeInvalidSecurity, "a signed element moved elsewhere is refused")
		})
	}
}
