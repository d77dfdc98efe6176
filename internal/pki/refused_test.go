package pki

// Attacks on chain verification that are refused.

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki/certext"
)

// rawProxy signs a hand-made proxy of issuer.
func rawProxy(t *testing.T, issuer *Credential, subject []byte, exts []pkix.Extension, mod func(*x509.Certificate)) *Credential {
	t.Helper()
	key, _ := newKey(KeyTypeECDSA, 0)
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), RawSubject: subject, NotBefore: now.Add(-time.Minute),
		NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtraExtensions: exts}
	if mod != nil {
		mod(tmpl)
	}
	return &Credential{Certificate: mustCert(t, tmpl, issuer.Certificate, key.Public(), issuer.Key), Key: key, Chain: issuer.FullChain()}
}

func pci(t *testing.T, pl int, lang asn1.ObjectIdentifier) []pkix.Extension {
	v, err := certext.ProxyCertInfo{PathLen: pl, Policy: certext.ProxyPolicy{Language: lang}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return []pkix.Extension{{Id: certext.OIDProxyCertInfo, Critical: true, Value: v}}
}

func TestRefusedReview(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	trust, err := LoadTrust(caDir(t, f.ca, now.Add(time.Hour), f.bob.Certificate.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	sub := func(c *Credential, cn string) []byte { b, _ := appendCN(c.Certificate.RawSubject, cn); return b }
	ecdsaAlice, _ := f.ca.IssueUser(UserOptions{CN: "alice2", KeyType: KeyTypeECDSA})
	pl0 := rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "1"), pci(t, 0, certext.OIDPolicyInheritAll), nil)
	legacyUnderPl0 := rawProxy(t, pl0, sub(pl0, "proxy"), nil, nil)
	limited := rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "2"), pci(t, -1, certext.OIDPolicyLimited), nil)
	legacyFullUnderLimited := rawProxy(t, limited, sub(limited, "proxy"), nil, nil)
	otherUserName, _ := ParseDN("/O=Grid/OU=vws/CN=bob/CN=3")
	crit := []pkix.Extension{pci(t, -1, certext.OIDPolicyInheritAll)[0], {Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}}
	voExt, _ := certext.MarshalVOAttributes([]string{"/admin/Role=god"})
	withVO := rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "9"), append(pci(t, -1, certext.OIDPolicyInheritAll), pkix.Extension{Id: certext.OIDVOAttributes, Value: voExt}), nil)
	// bob (revoked) signs a proxy; a second, unrelated cert (alice) is appended.
	bobProxy := proxy(t, f.bob, ProxyOptions{})
	for _, tc := range []struct {
		name  string
		chain []*x509.Certificate
	}{
		{"legacy proxy below pathlen-0 proxy", legacyUnderPl0.FullChain()},
		{"legacy full proxy below a limited one", legacyFullUnderLimited.FullChain()},
		{"independent proxy", rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "4"), pci(t, -1, certext.OIDPolicyIndependent), nil).FullChain()},
		{"unknown policy language", rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "5"), pci(t, -1, asn1.ObjectIdentifier{1, 2, 3}), nil).FullChain()},
		{"proxy named as bob", rawProxy(t, ecdsaAlice, otherUserName, pci(t, -1, certext.OIDPolicyInheritAll), nil).FullChain()},
		{"proxy extends by two CNs", rawProxy(t, ecdsaAlice, sub(&Credential{Certificate: &x509.Certificate{RawSubject: sub(ecdsaAlice, "6")}}, "7"), pci(t, -1, certext.OIDPolicyInheritAll), nil).FullChain()},
		{"proxy extends by an O", rawProxy(t, ecdsaAlice, func() []byte { b, _ := ParseDN("/O=Grid/OU=vws/CN=alice2/O=x"); return b }(), pci(t, -1, certext.OIDPolicyInheritAll), nil).FullChain()},
		{"proxy is a CA", rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "8"), pci(t, -1, certext.OIDPolicyInheritAll), func(c *x509.Certificate) { c.IsCA, c.BasicConstraintsValid = true, true }).FullChain()},
		{"proxy with unknown critical extension", rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "10"), crit, nil).FullChain()},
		{"proxy with SAN", rawProxy(t, ecdsaAlice, sub(ecdsaAlice, "11"), pci(t, -1, certext.OIDPolicyInheritAll), func(c *x509.Certificate) { c.DNSNames = []string{"x"} }).FullChain()},
		{"proxy of revoked user", bobProxy.FullChain()},
		{"revoked user, alice appended", append(f.bob.FullChain(), f.alice.Certificate)},
		{"alice's cert presented after mallory-signed proxy", []*x509.Certificate{rawProxy(t, f.bob, sub(ecdsaAlice, "12"), pci(t, -1, certext.OIDPolicyInheritAll), nil).Certificate, ecdsaAlice.Certificate}},
		{"CA certificate as user", []*x509.Certificate{f.ca.Certificate}},
		{"user cert signed by alice (not a CA)", []*x509.Certificate{rawProxy(t, ecdsaAlice, func() []byte { b, _ := ParseDN("/O=Grid/OU=vws/CN=admin"); return b }(), nil, nil).Certificate, ecdsaAlice.Certificate}},
	} {
		if id, err := trust.Verify(tc.chain, now); err == nil {
			t.Errorf("%s: accepted as %+v", tc.name, id.DN)
		} else {
			t.Logf("%s: refused: %v", tc.name, err)
		}
	}
	// VO attributes in a proxy do not count.
	id, err := trust.Verify(withVO.FullChain(), now)
	if err != nil || len(id.Attributes) != 0 {
		t.Errorf("proxy VO attributes: %v %v", id.Attributes, err)
	}
	if got := identity.FromChain(withVO.FullChain()); len(got.Attributes) != 0 {
		t.Errorf("FromChain took proxy VO attributes %v", got.Attributes)
	}
	// Upper-case proxy name: accepted (canonical compare, as OpenSSL), identity is the EE's.
	up, _ := ParseDN("/O=GRID/OU=VWS/CN=ALICE2/CN=13")
	if id, err := trust.Verify(rawProxy(t, ecdsaAlice, up, pci(t, -1, certext.OIDPolicyInheritAll), nil).FullChain(), now); err != nil {
		t.Errorf("upper-case proxy subject refused: %v", err)
	} else if want := DN(ecdsaAlice.Certificate); id.DN != want {
		t.Errorf("upper-case proxy subject authenticates as %s, want the EE's %s", id.DN, want)
	}
}
