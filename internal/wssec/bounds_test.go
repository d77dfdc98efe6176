package wssec

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestReplayRefusedAtTheLastInstantItsTimestampIsValid: at now == Expires+MaxSkew the
// Timestamp check still accepts a message, so the replay cache must still hold it.
func TestReplayRefusedAtTheLastInstantItsTimestampIsValid(t *testing.T) {
	p := getPKI(t)
	env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:secreview-boundary"))
	data, err := env.Doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	v := p.verifier(t0)
	if _, err := v.Verify(env); err != nil {
		t.Fatal(err)
	}
	later := p.verifier(t0.Add(DefaultTTL + DefaultMaxSkew))
	later.Replay = v.Replay
	env2, err := soap.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := later.Verify(env2); err == nil {
		t.Fatalf("REPLAY ACCEPTED at Expires+skew as signed by %s", res.Identity.DN)
	}
}

// TestReferencesToOneElementTwiceRefusedBeforeAnyDigest: references are digested
// before the SignatureValue is checked, and anyone can compute a digest: a SignedInfo
// naming a large Body 1500 times (under the 1 MiB limit) must be refused before the
// Body is canonicalized 1500 times.
func TestReferencesToOneElementTwiceRefusedBeforeAnyDigest(t *testing.T) {
	p := getPKI(t)
	doc := request(wsa.NS200508, "urn:uuid:secreview-amplify")
	var body *etree.Element
	for _, c := range doc.Root().ChildElements() {
		if c.Tag == "Body" {
			body = c
		}
	}
	// a Body of ~4000 small elements (~120 KB): canonicalization cost grows with elements
	pl := body.ChildElements()[0]
	for i := 0; i < 4000; i++ {
		pl.CreateElement("vw:X").SetText("abcdefghij")
	}
	if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
		t.Fatal(err)
	}
	env := wire(t, doc)
	si := securityChild(t, env, NSDS, "Signature").ChildElements()[0]
	var bodyRef *etree.Element
	bodyID, _ := attrNS(env.Body, NSWSU, "Id")
	for _, r := range si.SelectElements("Reference") {
		if r.SelectAttrValue("URI", "") == "#"+bodyID {
			bodyRef = r
		}
	}
	const n = 1500
	for i := 0; i < n; i++ {
		si.AddChild(bodyRef.Copy())
	}
	data, err := env.Doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("envelope: %d bytes, %d references to the Body", len(data), n+1)
	if len(data) > 1<<20 {
		t.Fatalf("envelope %d bytes is over the 1 MiB limit", len(data))
	}
	env2, err := soap.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = p.verifier(t0).Verify(env2)
	el := time.Since(start)
	t.Logf("Verify took %s: %v", el, err)
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Reason, "more than once") && !strings.Contains(e.Reason, "too many") {
		t.Fatalf("duplicate references to #%s not refused up front (Verify spent %s canonicalizing the Body %d times; err: %v)", bodyID, el, n+1, err)
	}
}
