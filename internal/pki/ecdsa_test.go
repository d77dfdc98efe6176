package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestECDSAChains builds a whole ECDSA P-256 grid PKI (CA, host, user, proxies) and
// has Trust verify it, and checks what the key type options do: defaults, a proxy
// following its issuer, an explicit override, and mixed chains.
func TestECDSAChains(t *testing.T) {
	now := time.Now()
	ca, err := NewCA(CAOptions{Subject: "/O=Grid/OU=ec/CN=EC CA", KeyType: KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	wantP256(t, "CA", ca)
	if ca.Certificate.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("CA self-signature %v, want ECDSA-SHA256", ca.Certificate.SignatureAlgorithm)
	}
	host, err := ca.IssueHost(HostOptions{Name: "localhost", KeyType: KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	wantP256(t, "host", host)
	user, err := ca.IssueUser(UserOptions{CN: "erin", KeyType: KeyTypeECDSA, VOAttributes: []string{"/ec"}})
	if err != nil {
		t.Fatal(err)
	}
	wantP256(t, "user", user)
	for _, c := range []*Credential{host, user} {
		if c.Certificate.KeyUsage&x509.KeyUsageKeyEncipherment != 0 {
			t.Errorf("%s: an EC key with keyEncipherment (RFC 5480 forbids it)", DN(c.Certificate))
		}
	}
	p1 := proxy(t, user, ProxyOptions{})
	wantP256(t, "proxy (inherited)", p1)
	p2 := proxy(t, p1, ProxyOptions{Limited: true})
	wantP256(t, "proxy of proxy", p2)
	rsaProxy := proxy(t, p1, ProxyOptions{KeyType: KeyTypeRSA, KeyBits: 1024})
	if _, ok := rsaProxy.Key.(*rsa.PrivateKey); !ok {
		t.Errorf("proxy with KeyType rsa has a %T key", rsaProxy.Key)
	}
	// An RSA user under the ECDSA CA (the default key type), and its ECDSA proxy.
	rsaUser, err := ca.IssueUser(UserOptions{CN: "ralph", KeyBits: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rsaUser.Key.(*rsa.PrivateKey); !ok {
		t.Errorf("user without KeyType has a %T key, want RSA", rsaUser.Key)
	}
	if rsaUser.Certificate.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
		t.Errorf("RSA user certificate lost keyEncipherment")
	}
	ecUnderRSA := proxy(t, rsaUser, ProxyOptions{KeyType: KeyTypeECDSA})
	wantP256(t, "ECDSA proxy of an RSA user", ecUnderRSA)

	trust, err := LoadTrust(caDir(t, ca, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		cred  *Credential
		dn    string
		proxy bool
	}{
		{"host", host, "/O=Grid/OU=ec/CN=host/localhost", false},
		{"user", user, "/O=Grid/OU=ec/CN=erin", false},
		{"proxy", p1, "/O=Grid/OU=ec/CN=erin", true},
		{"limited proxy of proxy", p2, "/O=Grid/OU=ec/CN=erin", true},
		{"RSA proxy of an ECDSA proxy", rsaProxy, "/O=Grid/OU=ec/CN=erin", true},
		{"ECDSA proxy of an RSA user", ecUnderRSA, "/O=Grid/OU=ec/CN=ralph", true},
	} {
		id, err := trust.Verify(c.cred.FullChain(), now)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if id.DN != c.dn || id.Proxy != c.proxy {
			t.Errorf("%s: identity %+v, want %s proxy %v", c.name, id, c.dn, c.proxy)
		}
	}
	// A proxy signed by another ECDSA key than its issuer's is refused as with RSA.
	other, err := ca.IssueUser(UserOptions{CN: "mallory", KeyType: KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	forged := proxy(t, user, ProxyOptions{SignWith: other.Key})
	if _, err := trust.Verify(forged.FullChain(), now); err == nil || !strings.Contains(err.Error(), "is not signed by the key of /O=Grid/OU=ec/CN=erin") {
		t.Fatalf("forged ECDSA proxy: %v", err)
	}

	// EC keys survive the proxy file and the cert/key pair files.
	dir := t.TempDir()
	file := filepath.Join(dir, "x509up_ec")
	if err := WriteProxyFile(file, p2); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCredential(file, "")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Certificate.Equal(p2.Certificate) || len(got.Chain) != 2 {
		t.Fatalf("proxy file read back as %s + %d", DN(got.Certificate), len(got.Chain))
	}
	wantP256(t, "proxy read back", got)
	if err := WriteCredential(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), user); err != nil {
		t.Fatal(err)
	}
	if got, err = LoadCredential(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")); err != nil {
		t.Fatal(err)
	}
	wantP256(t, "user read back", got)
	// What openssl ecparam -genkey writes (SEC 1, "EC PRIVATE KEY") reads too.
	sec1, err := x509.MarshalECPrivateKey(user.Key.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sec1.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredential(filepath.Join(dir, "c.pem"), filepath.Join(dir, "sec1.pem")); err != nil {
		t.Fatalf("SEC 1 key: %v", err)
	}
}

func TestKeyTypeOptions(t *testing.T) {
	if _, err := NewCA(CAOptions{KeyType: KeyTypeECDSA, KeyBits: 384}); err == nil || !strings.Contains(err.Error(), "RSA keys only") {
		t.Errorf("ECDSA with a key size: %v", err)
	}
	if _, err := NewCA(CAOptions{KeyType: "dsa"}); err == nil || !strings.Contains(err.Error(), `key type "dsa"`) {
		t.Errorf("unknown key type: %v", err)
	}
	for in, want := range map[string]KeyType{"rsa": KeyTypeRSA, "ECDSA": KeyTypeECDSA, "p256": KeyTypeECDSA} {
		if got, err := ParseKeyType(in); err != nil || got != want {
			t.Errorf("ParseKeyType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseKeyType("ed25519"); err == nil {
		t.Error("ParseKeyType accepted ed25519")
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := KeyTypeOf(p384.Public()); err == nil || !strings.Contains(err.Error(), "P-384") {
		t.Errorf("KeyTypeOf(P-384): %v", err)
	}
}

func wantP256(t *testing.T, what string, c *Credential) {
	t.Helper()
	k, ok := c.Key.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		t.Fatalf("%s: key %T, want ECDSA P-256", what, c.Key)
	}
	if kt, err := KeyTypeOf(c.Certificate.PublicKey); err != nil || kt != KeyTypeECDSA {
		t.Fatalf("%s: certificate key type %q, %v", what, kt, err)
	}
}
