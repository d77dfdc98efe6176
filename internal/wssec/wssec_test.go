package wssec

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var namespaces = []string{wsa.NS200403, wsa.NS200508}

func nsName(ns string) string {
	return map[string]string{wsa.NS200403: "wsa2004", wsa.NS200508: "wsa2005"}[ns]
}

func TestRoundTrip(t *testing.T) {
	p := getPKI(t)
	for _, ns := range namespaces {
		for _, alg := range []Algorithm{RSASHA256, RSASHA1} {
			env := signed(t, p.signer(alg, t0), request(ns, "urn:uuid:rt-"+ns))
			res, err := p.verifier(t0.Add(time.Minute)).Verify(env)
			if err != nil {
				t.Fatalf("%s alg %d: %v", ns, alg, err)
			}
			if !res.Signed || !res.Identity.Signed || res.Identity.DN != "/O=Grid/OU=Example/CN=Jane Doe" {
				t.Errorf("%s: result %+v", ns, res)
			}
			wantAlg := map[Algorithm]string{RSASHA256: AlgRSASHA256, RSASHA1: AlgRSASHA1}[alg]
			if res.Algorithm != wantAlg {
				t.Errorf("algorithm = %s, want %s", res.Algorithm, wantAlg)
			}
			for _, local := range []string{"To", "Action", "MessageID", "ReplyTo"} {
				if !res.Covers(header(t, env, ns, local)) {
					t.Errorf("%s: wsa:%s not among the signed headers", ns, local)
				}
			}
			if !res.Covers(header(t, env, testKeyNS, "WorkspaceKey")) {
				t.Errorf("the resource key header is not among the signed headers")
			}
			// The Security header comes first and must be understood.
			if first := env.Headers[0]; !IsSecurityHeader(first) || !soap.MustUnderstand(first) {
				t.Errorf("first header is %s, mustUnderstand %v", first.FullTag(), soap.MustUnderstand(first))
			}
		}
	}
}

func TestUnsignedEnvelope(t *testing.T) {
	p := getPKI(t)
	res, err := p.verifier(t0).Verify(wire(t, request(wsa.NS200508, "urn:uuid:u")))
	if err != nil || res.Signed {
		t.Fatalf("res = %+v, err = %v; want unsigned, no error", res, err)
	}
}

func TestProxyChainTravelsAsPKIPath(t *testing.T) {
	p := getPKI(t)
	s := &Signer{Key: p.proxyKey, Chain: []*x509.Certificate{p.proxy, p.user}, Now: func() time.Time { return t0 }}
	env := signed(t, s, request(wsa.NS200508, "urn:uuid:proxy"))
	bst := securityChild(t, env, NSWSSE, "BinarySecurityToken")
	if vt, _ := attrPlain(bst, "ValueType"); vt != ValueTypeX509PKIPathv1 {
		t.Fatalf("ValueType = %s", vt)
	}
	var got []*x509.Certificate
	v := p.verifier(t0)
	v.VerifyChain = func(chain []*x509.Certificate) (identity.Identity, error) {
		got = chain
		return p.verifyChain(chain)
	}
	res, err := v.Verify(env)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(p.proxy) || !got[1].Equal(p.user) {
		t.Fatalf("VerifyChain got %d certificates, want proxy then user", len(got))
	}
	if !res.Identity.Proxy || res.Identity.DN != "/O=Grid/OU=Example/CN=Jane Doe" {
		t.Errorf("identity = %+v", res.Identity)
	}
}

// TestTampering changes one part of a signed request after signing; each change must
// be refused with a reason naming what changed.
func TestTampering(t *testing.T) {
	p := getPKI(t)
	for _, ns := range namespaces {
		cases := []struct {
			name   string
			change func(env *soap.Envelope)
			code   string
			reason []string
		}{
			{"body", func(env *soap.Envelope) { env.Payload.ChildElements()[0].SetText("destroyed") },
				CodeFailedCheck, []string{"does not match: the Body was changed after signing"}},
			{"body attribute", func(env *soap.Envelope) { env.Payload.CreateAttr("force", "true") },
				CodeFailedCheck, []string{"the Body was changed"}},
			{"To", func(env *soap.Envelope) { header(t, env, ns, "To").SetText("https://evil.example.org/") },
				CodeFailedCheck, []string{"the wsa:To header was changed"}},
			{"Action", func(env *soap.Envelope) { header(t, env, ns, "Action").SetText(testKeyNS + "/Destroy") },
				CodeFailedCheck, []string{"the wsa:Action header was changed"}},
			{"MessageID", func(env *soap.Envelope) { header(t, env, ns, "MessageID").SetText("urn:uuid:fresh") },
				CodeFailedCheck, []string{"the wsa:MessageID header was changed"}},
			{"ReplyTo", func(env *soap.Envelope) {
				header(t, env, ns, "ReplyTo").ChildElements()[0].SetText("https://evil.example.org/sink")
			}, CodeFailedCheck, []string{"the wsa:ReplyTo header was changed"}},
			{"FaultTo added", func(env *soap.Envelope) {
				ft := env.Headers[1].Parent().CreateElement("wsa:FaultTo")
				ft.CreateAttr("xmlns:wsa", ns)
				ft.CreateElement("wsa:Address").SetText("https://evil.example.org/sink")
			}, CodeInvalidSecurity, []string{"the signature does not cover wsa:FaultTo"}},
			{"Expires", func(env *soap.Envelope) {
				ts := securityChild(t, env, NSWSU, "Timestamp")
				ts.ChildElements()[1].SetText(t0.Add(10 * time.Minute).Format(timeLayout))
			}, CodeFailedCheck, []string{"the Timestamp was changed"}},
			{"SignatureValue", func(env *soap.Envelope) {
				sv := securityChild(t, env, NSDS, "Signature").ChildElements()[1]
				raw, _ := base64.StdEncoding.DecodeString(sv.Text())
				raw[10] ^= 1
				sv.SetText(base64.StdEncoding.EncodeToString(raw))
			}, CodeFailedCheck, []string{"SignatureValue does not verify"}},
			{"digest swapped with the body", func(env *soap.Envelope) {
				// Change the Body and put its new digest into SignedInfo: the digests
				// agree, the signature over SignedInfo does not.
				env.Payload.ChildElements()[0].SetText("destroyed")
				var buf bytes.Buffer
				if err := canonicalize(&buf, env.Body, ""); err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(buf.Bytes())
				bodyID, _ := attrNS(env.Body, NSWSU, "Id")
				for _, ref := range securityChild(t, env, NSDS, "Signature").FindElements("./ds:SignedInfo/ds:Reference") {
					if u, _ := attrPlain(ref, "URI"); u == "#"+bodyID {
						ref.FindElement("./ds:DigestValue").SetText(base64.StdEncoding.EncodeToString(sum[:]))
					}
				}
			}, CodeFailedCheck, []string{"SignatureValue does not verify"}},
			{"reference dropped", func(env *soap.Envelope) {
				si := securityChild(t, env, NSDS, "Signature").ChildElements()[0]
				for _, ref := range si.SelectElements("ds:Reference") {
					if u, _ := attrPlain(ref, "URI"); strings.HasPrefix(u, "#To-") {
						si.RemoveChild(ref)
					}
				}
			}, CodeInvalidSecurity, []string{"the signature does not cover wsa:To"}},
		}
		for _, c := range cases {
			for key, s := range map[string]*Signer{"rsa": p.signer(RSASHA256, t0), "ecdsa": p.ecSigner(RSASHA256, t0)} {
				t.Run(nsName(ns)+"/"+key+"/"+c.name, func(t *testing.T) {
					doc := request(ns, "urn:uuid:tamper-"+c.name)
					if err := s.Sign(doc); err != nil {
						t.Fatal(err)
					}
					env := wire(t, doc)
					c.change(env)
					env = wire(t, env.Doc)
					_, err := p.verifier(t0).Verify(env)
					e := wantRefused(t, err, c.code, c.reason...)
					if !errors.Is(e, errdefs.ErrSecurity) {
						t.Errorf("%v does not unwrap to ErrSecurity", e)
					}
				})
			}
		}
	}
}

// TestWrappingAttacks moves signed elements out of the way and puts unsigned ones in
// their place, where an implementation that only checks "some element with the
// referenced Id verifies" would accept them.
func TestWrappingAttacks(t *testing.T) {
	p := getPKI(t)
	ns := wsa.NS200508
	fresh := func(t *testing.T) *soap.Envelope {
		return signed(t, p.signer(RSASHA256, t0), request(ns, "urn:uuid:wrap-"+t.Name()))
	}
	// wrapper adds an unknown header and moves el into it.
	wrapper := func(env *soap.Envelope, el *etree.Element) {
		w := env.Headers[0].Parent().CreateElement("x:Wrapper")
		w.CreateAttr("xmlns:x", "urn:attacker")
		el.Parent().RemoveChild(el)
		w.AddChild(el)
	}
	t.Run("body moved into a header", func(t *testing.T) {
		env := fresh(t)
		orig := env.Body
		evil := etree.NewElement(orig.FullTag())
		env.Root.InsertChildAt(orig.Index(), evil)
		wrapper(env, orig)
		evil.CreateElement("vw:Destroy").CreateAttr("xmlns:vw", testKeyNS)
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "a signed element moved elsewhere is refused")
	})
	t.Run("body moved, evil body copies the Id", func(t *testing.T) {
		env := fresh(t)
		orig := env.Body
		evil := orig.Copy()
		evil.ChildElements()[0].ChildElements()[0].SetText("destroyed")
		env.Root.InsertChildAt(orig.Index(), evil)
		wrapper(env, orig)
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "appears more than once")
	})
	t.Run("To moved into a wrapper", func(t *testing.T) {
		env := fresh(t)
		to := header(t, env, ns, "To")
		evil := etree.NewElement("wsa:To")
		evil.CreateAttr("xmlns:wsa", ns)
		evil.SetText("https://evil.example.org/")
		to.Parent().InsertChildAt(to.Index(), evil)
		wrapper(env, to)
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "names a wsa:To that is not the soap:Body, a header block")
	})
	t.Run("timestamp moved, an old one in its place", func(t *testing.T) {
		env := fresh(t)
		ts := securityChild(t, env, NSWSU, "Timestamp")
		evil := etree.NewElement(ts.FullTag())
		evil.CreateElement(ts.Space + ":Created").SetText(t0.Format(timeLayout))
		evil.CreateElement(ts.Space + ":Expires").SetText(t0.Add(time.Minute).Format(timeLayout))
		sec := ts.Parent()
		sec.InsertChildAt(ts.Index(), evil)
		wrapper(env, ts)
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		// Refused as moved, or (its signed prefixes no longer all in scope out of
		// the Security header) as changed.
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.Reason, "a signed element moved elsewhere is refused") && !strings.Contains(e.Reason, "was changed after signing") {
			t.Fatalf("the moved Timestamp: %v", err)
		}
	})
	t.Run("duplicate id elsewhere", func(t *testing.T) {
		env := fresh(t)
		bodyID, _ := attrNS(env.Body, NSWSU, "Id")
		x := env.Headers[0].Parent().CreateElement("x:Other")
		x.CreateAttr("xmlns:x", "urn:attacker")
		x.CreateAttr("xmlns:u", NSWSU)
		x.CreateAttr("u:Id", bodyID)
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, bodyID, "appears more than once")
	})
	t.Run("plain Id attributes are not references", func(t *testing.T) {
		env := fresh(t)
		si := securityChild(t, env, NSDS, "Signature").ChildElements()[0]
		x := env.Headers[0].Parent().CreateElement("x:Other")
		x.CreateAttr("xmlns:x", "urn:attacker")
		x.CreateAttr("Id", "plain")
		si.SelectElements("ds:Reference")[0].SelectAttr("URI").Value = "#plain"
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "#plain names no element")
	})
}

func TestTimestampLimits(t *testing.T) {
	p := getPKI(t)
	cases := []struct {
		name     string
		ttl      time.Duration
		verifyAt time.Time
		code     string
		reason   string
	}{
		{"expired", 0, t0.Add(11 * time.Minute), CodeMessageExpired, "timestamp expired at 2026-03-01T12:05:00Z (now 2026-03-01T12:11:00Z)"},
		{"future", 0, t0.Add(-6 * time.Minute), CodeInvalidSecurity, "created in the future"},
		{"too long-lived", 2 * time.Hour, t0, CodeInvalidSecurity, "longer than the 15m0s accepted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := p.signer(RSASHA256, t0)
			s.TTL = c.ttl
			env := signed(t, s, request(wsa.NS200508, "urn:uuid:ts-"+c.name))
			_, err := p.verifier(c.verifyAt).Verify(env)
			wantRefused(t, err, c.code, c.reason)
		})
	}
	// Within the skew either way is fine.
	for _, at := range []time.Duration{-4 * time.Minute, 9 * time.Minute} {
		env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:skew"))
		if _, err := p.verifier(t0.Add(at)).Verify(env); err != nil {
			t.Errorf("verified at %s: %v", at, err)
		}
	}
}

func TestReplay(t *testing.T) {
	p := getPKI(t)
	v := p.verifier(t0)
	data := func(doc *etree.Document) []byte {
		if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
			t.Fatal(err)
		}
		b, err := doc.WriteToBytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	req := data(request(wsa.NS200403, "urn:uuid:11111111-2222"))
	for i, want := range []bool{true, false} {
		env, _ := soap.Parse(req)
		_, err := v.Verify(env)
		if want && err != nil {
			t.Fatalf("first sighting: %v", err)
		}
		if !want {
			e := wantRefused(t, err, CodeInvalidSecurity, "message urn:uuid:11111111-2222 was seen before: replay refused")
			if !errors.Is(e, ErrReplay) {
				t.Errorf("attempt %d: %v is not ErrReplay", i, e)
			}
		}
	}
	// A response has no MessageID; its signature is what is remembered.
	resp := data(response(wsa.NS200403, "urn:uuid:11111111-2222"))
	if _, _, err := v.VerifyResponse(resp); err != nil {
		t.Fatalf("response: %v", err)
	}
	_, _, err := v.VerifyResponse(resp)
	wantRefused(t, err, CodeInvalidSecurity, "signature was seen before")
	// After the Timestamp expires (+ skew) the entries go; the message is then refused
	// as expired instead.
	later := p.verifier(t0.Add(11 * time.Minute))
	later.Replay = v.Replay
	env, _ := soap.Parse(req)
	_, err = later.Verify(env)
	wantRefused(t, err, CodeMessageExpired)
	if n := v.Replay.Len(); n != 2 { // the request (by message id and by digest), the response
		t.Errorf("replay cache holds %d messages, want 2", n)
	}
	// The next message accepted sweeps the expired entries out.
	s := p.signer(RSASHA256, t0.Add(11*time.Minute))
	if _, err := later.Verify(signed(t, s, request(wsa.NS200403, "urn:uuid:later"))); err != nil {
		t.Fatal(err)
	}
	if n := v.Replay.Len(); n != 1 {
		t.Errorf("replay cache holds %d messages after expiry, want 1", n)
	}
}

func TestReplayCacheBounds(t *testing.T) {
	c := &ReplayCache{Max: 2, PerSigner: 2}
	until := t0.Add(time.Minute)
	for _, k := range []string{"a", "b"} {
		if err := c.Check("s1", until, t0, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Check("s1", until, t0, "a"); !errors.Is(err, ErrReplay) {
		t.Errorf("second a: %v, want ErrReplay", err)
	}
	if err := c.Check("s2", until, t0, "c"); !errors.Is(err, ErrReplayCacheFull) {
		t.Errorf("c with a full cache: %v, want ErrReplayCacheFull", err)
	}
	// At until a and b are still remembered (their timestamps are still accepted
	// then); just after, there is room again, and a is no longer remembered.
	if err := c.Check("s1", until.Add(time.Minute), until, "a"); !errors.Is(err, ErrReplay) {
		t.Errorf("a at the last instant it is remembered: %v, want ErrReplay", err)
	}
	after := until.Add(time.Millisecond)
	if err := c.Check("s1", until.Add(time.Minute), after, "c"); err != nil {
		t.Errorf("c after expiry: %v", err)
	}
	if err := c.Check("s1", until.Add(time.Minute), after, "a"); err != nil {
		t.Errorf("a after expiry: %v", err)
	}
	if c.Len() != 2 {
		t.Errorf("len = %d, want 2", c.Len())
	}
}

// TestReplayCacheShares: one signer filling its share of the cache is refused more,
// and other signers' messages still get in.
func TestReplayCacheShares(t *testing.T) {
	c := &ReplayCache{Max: 100, PerSigner: 3}
	until := t0.Add(time.Minute)
	for i := range 3 {
		if err := c.Check("mallory", until, t0, fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Check("mallory", until, t0, "m3"); !errors.Is(err, ErrReplayCacheFull) || !strings.Contains(err.Error(), "this signer") {
		t.Errorf("a fourth message of one signer with a share of 3: %v", err)
	}
	if err := c.Check("alice", until, t0, "x"); err != nil {
		t.Errorf("another signer's message: %v", err)
	}
	if err := c.Check("mallory", until.Add(time.Minute), until.Add(time.Millisecond), "m3"); err != nil {
		t.Errorf("once the signer's messages expired: %v", err)
	}
	// Without PerSigner, a signer's share is Max/16.
	d := &ReplayCache{Max: 64}
	for i := range 4 {
		if err := d.Check("s", until, t0, fmt.Sprint("d", i)); err != nil {
			t.Fatalf("message %d of a share of 4: %v", i, err)
		}
	}
	if err := d.Check("s", until, t0, "d4"); !errors.Is(err, ErrReplayCacheFull) {
		t.Errorf("a fifth message with Max 64: %v", err)
	}
}

func TestAlgorithms(t *testing.T) {
	p := getPKI(t)
	t.Run("sha1 refused when not allowed", func(t *testing.T) {
		env := signed(t, p.signer(RSASHA1, t0), request(wsa.NS200403, "urn:uuid:sha1"))
		v := p.verifier(t0)
		v.AllowSHA1 = false
		_, err := v.Verify(env)
		wantRefused(t, err, CodeInvalidSecurity, AlgRSASHA1, "not accepted")
	})
	t.Run("unknown signature method", func(t *testing.T) {
		env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:md5"))
		sm := securityChild(t, env, NSDS, "Signature").FindElement("./ds:SignedInfo/ds:SignatureMethod")
		sm.SelectAttr("Algorithm").Value = "http://www.w3.org/2000/09/xmldsig#hmac-sha1"
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "hmac-sha1", "not accepted")
	})
	t.Run("unknown digest method", func(t *testing.T) {
		env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:md5d"))
		dm := securityChild(t, env, NSDS, "Signature").FindElement("./ds:SignedInfo/ds:Reference/ds:DigestMethod")
		dm.SelectAttr("Algorithm").Value = "http://www.w3.org/2001/04/xmldsig-more#md5"
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "md5", "not accepted")
	})
	t.Run("inclusive c14n refused", func(t *testing.T) {
		env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:c14n"))
		cm := securityChild(t, env, NSDS, "Signature").FindElement("./ds:SignedInfo/ds:CanonicalizationMethod")
		cm.SelectAttr("Algorithm").Value = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeInvalidSecurity, "canonicalization", "not accepted")
	})
	t.Run("signer refuses an unknown algorithm", func(t *testing.T) {
		if err := p.signer(Algorithm(7), t0).Sign(request(wsa.NS200508, "urn:uuid:x")); err == nil {
			t.Fatal("signed with algorithm 7")
		}
	})
}

func TestUntrustedSigner(t *testing.T) {
	p := getPKI(t)
	t.Run("VerifyChain error", func(t *testing.T) {
		env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:untrusted"))
		v := p.verifier(t0)
		v.VerifyChain = func([]*x509.Certificate) (identity.Identity, error) { return identity.Identity{}, errUntrusted }
		_, err := v.Verify(env)
		e := wantRefused(t, err, CodeFailedAuthentication, "not trusted", errUntrusted.Error())
		if !errors.Is(e, errUntrusted) || !errors.Is(e, errdefs.ErrSecurity) {
			t.Errorf("%v does not unwrap to both the cause and ErrSecurity", e)
		}
	})
	t.Run("another CA", func(t *testing.T) {
		s := &Signer{Key: p.otherKey, Chain: []*x509.Certificate{p.stranger}, Now: func() time.Time { return t0 }}
		_, err := p.verifier(t0).Verify(signed(t, s, request(wsa.NS200508, "urn:uuid:mallory")))
		wantRefused(t, err, CodeFailedAuthentication, "Mallory")
	})
	t.Run("token swapped for a trusted certificate", func(t *testing.T) {
		// Mallory signs, then puts Jane's certificate into the token: the signature no
		// longer verifies with the token's key.
		s := &Signer{Key: p.otherKey, Chain: []*x509.Certificate{p.stranger}, Now: func() time.Time { return t0 }}
		env := signed(t, s, request(wsa.NS200508, "urn:uuid:swap"))
		securityChild(t, env, NSWSSE, "BinarySecurityToken").SetText(base64.StdEncoding.EncodeToString(p.user.Raw))
		_, err := p.verifier(t0).Verify(wire(t, env.Doc))
		wantRefused(t, err, CodeFailedCheck, "does not verify with the key of")
	})
	t.Run("no trust configured", func(t *testing.T) {
		env := signed(t, p.signer(RSASHA256, t0), request(wsa.NS200508, "urn:uuid:notrust"))
		_, err := (&Verifier{Now: func() time.Time { return t0 }}).Verify(env)
		wantRefused(t, err, CodeFailedAuthentication, "no certificate trust")
	})
}

func TestVerifyResponse(t *testing.T) {
	p := getPKI(t)
	for _, ns := range namespaces {
		doc := response(ns, "urn:uuid:req")
		if err := p.signer(RSASHA256, t0).Sign(doc); err != nil {
			t.Fatal(err)
		}
		data, _ := doc.WriteToBytes()
		env, res, err := p.verifier(t0).VerifyResponse(data)
		if err != nil {
			t.Fatalf("%s: %v", ns, err)
		}
		if !res.Covers(header(t, env, ns, "RelatesTo")) {
			t.Errorf("%s: RelatesTo not signed", ns)
		}
		unsigned, _ := response(ns, "urn:uuid:req").WriteToBytes()
		_, _, err = p.verifier(t0).VerifyResponse(unsigned)
		wantRefused(t, err, CodeInvalidSecurity, "not signed")
	}
}

func TestSignKeepsExistingIDsAndHeader(t *testing.T) {
	p := getPKI(t)
	// An envelope whose prefix "wsu" means something else, whose Body already has a
	// wsu:Id under another prefix, and with no Header yet.
	in := `<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsu="urn:not-wsu" xmlns:u="` + NSWSU + `"><e:Body u:Id="mybody"><p:Op xmlns:p="urn:p"/></e:Body></e:Envelope>`
	doc := etree.NewDocument()
	if err := doc.ReadFromString(in); err != nil {
		t.Fatal(err)
	}
	env := signed(t, p.signer(RSASHA256, t0), doc)
	if id, _ := attrNS(env.Body, NSWSU, "Id"); id != "mybody" {
		t.Errorf("Body Id = %q, want the existing one", id)
	}
	if len(env.Headers) != 1 || !IsSecurityHeader(env.Headers[0]) {
		t.Fatalf("headers = %v", env.Headers)
	}
	if _, err := p.verifier(t0).Verify(env); err != nil {
		t.Fatal(err)
	}
	if err := p.signer(RSASHA256, t0).Sign(env.Doc); err == nil {
		t.Error("signed an envelope that already has a Security header")
	}
}

func TestCanonicalize(t *testing.T) {
	cases := []struct{ name, doc, path, prefixes, want string }{
		{
			name: "inherited prefixes, only the used ones",
			doc:  `<a:r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:c"><b:x c:k="1"><y/></b:x></a:r>`,
			path: "./b:x",
			want: `<b:x xmlns:b="urn:b" xmlns:c="urn:c" c:k="1"><y></y></b:x>`,
		},
		{
			name: "attributes by namespace URI, not prefix",
			doc:  `<r xmlns:z="urn:a" xmlns:a="urn:z"><h z:m="1" a:i="2" b="3"/></r>`,
			path: "./h",
			want: `<h xmlns:a="urn:z" xmlns:z="urn:a" b="3" z:m="1" a:i="2"></h>`,
		},
		{
			name: "no xmlns=\"\" without a default namespace in output",
			doc:  `<p:r xmlns:p="urn:p"><p:op><arg xmlns="">v</arg></p:op></p:r>`,
			path: "./p:op",
			want: `<p:op xmlns:p="urn:p"><arg>v</arg></p:op>`,
		},
		{
			name: "xmlns=\"\" kept under a default namespace",
			doc:  `<r xmlns="urn:d"><op><arg xmlns="">v</arg></op></r>`,
			path: "./op",
			want: `<op xmlns="urn:d"><arg xmlns="">v</arg></op>`,
		},
		{
			name:     "inclusive prefix list",
			doc:      `<a:r xmlns:a="urn:a" xmlns:q="urn:q"><a:x>q:name</a:x></a:r>`,
			path:     "./a:x",
			prefixes: "q",
			want:     `<a:x xmlns:a="urn:a" xmlns:q="urn:q">q:name</a:x>`,
		},
		{
			name: "text, attribute escaping, comments and CDATA",
			doc:  "<r><x a='&quot;&#9;&lt;'><!-- c -->1 &lt; 2 &amp;&gt;\r<![CDATA[<b>]]></x></r>",
			path: "./x",
			want: "<x a=\"&quot;&#x9;&lt;\">1 &lt; 2 &amp;&gt;\n&lt;b&gt;</x>",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := etree.NewDocument()
			doc.ReadSettings.PreserveCData = true
			if err := doc.ReadFromString(c.doc); err != nil {
				t.Fatal(err)
			}
			el := doc.Root().FindElement(c.path)
			var buf bytes.Buffer
			if err := canonicalize(&buf, el, c.prefixes); err != nil {
				t.Fatal(err)
			}
			if buf.String() != c.want {
				t.Errorf("got  %s\nwant %s", buf.String(), c.want)
			}
		})
	}
}

// TestSignedBytesCarryWhatWasSigned: a CR in text and a tab in an attribute survive
// serialization (a parser would normalize them if written raw).
func TestSignedBytesCarryWhatWasSigned(t *testing.T) {
	p := getPKI(t)
	doc := request(wsa.NS200508, "urn:uuid:cr")
	state := doc.FindElement("//vw:State")
	state.SetText("a\r\nb")
	state.CreateAttr("note", "x\ty\nz")
	env := signed(t, p.signer(RSASHA256, t0), doc)
	if _, err := p.verifier(t0).Verify(env); err != nil {
		t.Fatal(err)
	}
}
