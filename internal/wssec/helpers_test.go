package wssec

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// testPKI is a throwaway CA, a user certificate it issued, a proxy the user issued,
// and a stranger from another CA.
type testPKI struct {
	ca, user, proxy, stranger          *x509.Certificate
	caKey, userKey, proxyKey, otherKey *rsa.PrivateKey
	// ecUser is an ECDSA P-256 user the (RSA) CA issued, ecProxy an ECDSA proxy of it.
	ecUser, ecProxy       *x509.Certificate
	ecUserKey, ecProxyKey *ecdsa.PrivateKey
}

var (
	pkiOnce sync.Once
	pki     testPKI
	pkiErr  error
)

// getPKI builds the certificates once per test binary: RSA-2048 keys take a while.
func getPKI(t testing.TB) *testPKI {
	t.Helper()
	pkiOnce.Do(func() { pkiErr = pki.build() })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return &pki
}

func (p *testPKI) build() error {
	keys := make([]*rsa.PrivateKey, 5)
	for i := range keys {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	p.caKey, p.userKey, p.proxyKey, p.otherKey = keys[0], keys[1], keys[2], keys[3]
	now := time.Now()
	mk := func(serial int64, subject pkix.Name, isCA bool, key crypto.Signer, parent *x509.Certificate, parentKey crypto.Signer) (*x509.Certificate, error) {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               subject,
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(24 * time.Hour),
			BasicConstraintsValid: true,
			IsCA:                  isCA,
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
		if err != nil {
			return nil, err
		}
		return x509.ParseCertificate(der)
	}
	var err error
	if p.ca, err = mk(1, pkix.Name{Organization: []string{"Grid"}, CommonName: "Test CA"}, true, p.caKey, nil, nil); err != nil {
		return err
	}
	userName := pkix.Name{Organization: []string{"Grid"}, OrganizationalUnit: []string{"Example"}, CommonName: "Jane Doe"}
	if p.user, err = mk(2, userName, false, p.userKey, p.ca, p.caKey); err != nil {
		return err
	}
	proxyName := userName
	proxyName.ExtraNames = []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 3}, Value: "proxy"}}
	if p.proxy, err = mk(3, proxyName, false, p.proxyKey, p.user, p.userKey); err != nil {
		return err
	}
	other, err := mk(4, pkix.Name{CommonName: "Other CA"}, true, keys[4], nil, nil)
	if err != nil {
		return err
	}
	if p.stranger, err = mk(5, pkix.Name{CommonName: "Mallory"}, false, p.otherKey, other, keys[4]); err != nil {
		return err
	}
	if p.ecUserKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	if p.ecProxyKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return err
	}
	ecName := pkix.Name{Organization: []string{"Grid"}, OrganizationalUnit: []string{"Example"}, CommonName: "Erin EC"}
	if p.ecUser, err = mk(6, ecName, false, p.ecUserKey, p.ca, p.caKey); err != nil {
		return err
	}
	ecProxyName := ecName
	ecProxyName.ExtraNames = []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 3}, Value: "proxy"}}
	p.ecProxy, err = mk(7, ecProxyName, false, p.ecProxyKey, p.ecUser, p.ecUserKey)
	return err
}

// verifyChain is a small stand-in for the site's proxy-aware trust: every certificate
// must be signed by the next, the last by the CA; the identity is the first
// certificate that is not a proxy (here: whose issuer is the CA).
func (p *testPKI) verifyChain(chain []*x509.Certificate) (identity.Identity, error) {
	for i, c := range chain {
		issuer := p.ca
		if i+1 < len(chain) {
			issuer = chain[i+1]
		}
		if err := issuer.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
			return identity.Identity{}, fmt.Errorf("certificate %q is not issued by %q: %w", c.Subject, issuer.Subject, err)
		}
	}
	eec := chain[len(chain)-1]
	return identity.Identity{DN: identity.OneLineDN(eec.Subject), Certificate: eec, Proxy: len(chain) > 1}, nil
}

var errUntrusted = errors.New("not in the site's trust store")

func (p *testPKI) signer(alg Algorithm, now time.Time) *Signer {
	return &Signer{Key: p.userKey, Chain: []*x509.Certificate{p.user}, Algorithm: alg, Now: func() time.Time { return now }}
}

// ecSigner signs as the ECDSA user.
func (p *testPKI) ecSigner(alg Algorithm, now time.Time) *Signer {
	return &Signer{Key: p.ecUserKey, Chain: []*x509.Certificate{p.ecUser}, Algorithm: alg, Now: func() time.Time { return now }}
}

func (p *testPKI) verifier(now time.Time) *Verifier {
	v := NewVerifier(p.verifyChain)
	v.Now = func() time.Time { return now }
	return v
}

const testKeyNS = "http://vws.dev/ns/2026/workspace"

// request builds a request envelope in WS-Addressing namespace ns: To, Action,
// MessageID, ReplyTo and a resource key header, and a payload.
func request(ns, messageID string) *etree.Document {
	h := func(local, text string) *etree.Element {
		el := etree.NewElement("wsa:" + local)
		el.CreateAttr("xmlns:wsa", ns)
		el.SetText(text)
		return el
	}
	replyTo := etree.NewElement("wsa:ReplyTo")
	replyTo.CreateAttr("xmlns:wsa", ns)
	anon := ns + "/anonymous"
	if ns == wsa.NS200403 {
		anon = ns + "/role/anonymous"
	}
	replyTo.CreateElement("wsa:Address").SetText(anon)
	key := etree.NewElement("vw:WorkspaceKey")
	key.CreateAttr("xmlns:vw", testKeyNS)
	key.SetText("6f1c")
	body := etree.NewElement("vw:Deploy")
	body.CreateAttr("xmlns:vw", testKeyNS)
	body.CreateElement("vw:State").SetText("running")
	m := soap.Message{
		Headers: []*etree.Element{
			h("To", "https://repo.example.org:8443/wsrf/services/WorkspaceService"),
			h("Action", testKeyNS+"/Deploy"),
			h("MessageID", messageID),
			replyTo,
			key,
		},
		Body: body,
	}
	return m.Document()
}

// response builds a response envelope: Action and RelatesTo, no MessageID.
func response(ns, relatesTo string) *etree.Document {
	action := etree.NewElement("wsa:Action")
	action.CreateAttr("xmlns:wsa", ns)
	action.SetText(testKeyNS + "/DeployResponse")
	rel := etree.NewElement("wsa:RelatesTo")
	rel.CreateAttr("xmlns:wsa", ns)
	rel.SetText(relatesTo)
	body := etree.NewElement("vw:DeployResponse")
	body.CreateAttr("xmlns:vw", testKeyNS)
	return (&soap.Message{Headers: []*etree.Element{action, rel}, Body: body}).Document()
}

// wire serializes doc and parses it back, as the receiver sees it.
func wire(t testing.TB, doc *etree.Document) *soap.Envelope {
	t.Helper()
	data, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	env, err := soap.Parse(data)
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return env
}

func signed(t testing.TB, s *Signer, doc *etree.Document) *soap.Envelope {
	t.Helper()
	if err := s.Sign(doc); err != nil {
		t.Fatal(err)
	}
	return wire(t, doc)
}

// header returns the header block {ns}local of env.
func header(t testing.TB, env *soap.Envelope, ns, local string) *etree.Element {
	t.Helper()
	for _, h := range env.Headers {
		if h.Tag == local && h.NamespaceURI() == ns {
			return h
		}
	}
	t.Fatalf("no header {%s}%s", ns, local)
	return nil
}

// securityChild returns the child {ns}local of env's Security header.
func securityChild(t testing.TB, env *soap.Envelope, ns, local string) *etree.Element {
	t.Helper()
	for _, c := range header(t, env, NSWSSE, "Security").ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			return c
		}
	}
	t.Fatalf("no {%s}%s in the Security header", ns, local)
	return nil
}

// wantRefused asserts err is a *Error with code whose reason contains each of parts,
// and that it unwraps to errdefs.ErrSecurity.
func wantRefused(t *testing.T, err error, code string, parts ...string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want a *wssec.Error %s", err, err, code)
	}
	if e.Code != code {
		t.Errorf("code = %s, want %s (reason: %s)", e.Code, code, e.Reason)
	}
	for _, p := range parts {
		if !strings.Contains(e.Reason, p) {
			t.Errorf("reason %q does not say %q", e.Reason, p)
		}
	}
	return e
}
