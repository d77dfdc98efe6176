package pki

import (
	"crypto/x509"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki/certext"
)

type fixture struct {
	ca, other, alice, bob, host *Credential
}

var (
	fixOnce sync.Once
	fix     fixture
	fixErr  error
)

// testPKI makes the CAs and certificates the tests share (RSA key generation is the
// slow part).
func testPKI(t *testing.T) fixture {
	t.Helper()
	fixOnce.Do(func() {
		must := func(c *Credential, err error) *Credential {
			if err != nil && fixErr == nil {
				fixErr = err
			}
			return c
		}
		fix.ca = must(NewCA(CAOptions{}))
		fix.other = must(NewCA(CAOptions{Subject: "/O=Other/CN=CA"}))
		if fixErr != nil {
			return
		}
		fix.alice = must(fix.ca.IssueUser(UserOptions{CN: "alice", VOAttributes: []string{"/atlas/Role=production", "/atlas"}}))
		fix.bob = must(fix.ca.IssueUser(UserOptions{CN: "bob"}))
		fix.host = must(fix.ca.IssueHost(HostOptions{Name: "localhost", IPs: nil}))
	})
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

// caDir writes ca (and a CRL of it revoking revoked, valid until nextUpdate) as a
// trusted directory.
func caDir(t *testing.T, ca *Credential, nextUpdate time.Time, revoked ...*big.Int) string {
	t.Helper()
	dir := t.TempDir()
	var rs []RevokedSerial
	for _, s := range revoked {
		rs = append(rs, RevokedSerial{Serial: s})
	}
	crl, err := ca.CRL(rs, time.Now().Add(-time.Hour), nextUpdate, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCADir(dir, ca.Certificate, crl); err != nil {
		t.Fatal(err)
	}
	return dir
}

func proxy(t *testing.T, issuer *Credential, o ProxyOptions) *Credential {
	t.Helper()
	p, err := IssueProxy(issuer, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerify(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	trust, err := LoadTrust(caDir(t, f.ca, now.Add(24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	p1 := proxy(t, f.alice, ProxyOptions{})
	p2 := proxy(t, p1, ProxyOptions{})
	limited := proxy(t, f.alice, ProxyOptions{Limited: true})
	legacy := proxy(t, f.alice, ProxyOptions{Legacy: true})
	legacyLimited := proxy(t, f.alice, ProxyOptions{Legacy: true, Limited: true})
	fullUnderLimited := proxy(t, limited, ProxyOptions{})
	expired, err := f.ca.IssueUser(UserOptions{CN: "old", Validity: Validity{NotBefore: now.Add(-48 * time.Hour), Lifetime: 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := f.other.IssueUser(UserOptions{CN: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	expiredProxy := proxy(t, f.alice, ProxyOptions{Validity: Validity{NotBefore: now.Add(-3 * time.Hour), Lifetime: time.Hour}})
	impersonator := proxy(t, f.alice, ProxyOptions{Subject: "/O=Grid/OU=vws/CN=bob/CN=123"})
	forged := proxy(t, f.alice, ProxyOptions{SignWith: f.bob.Key})
	noMore := proxy(t, f.alice, ProxyOptions{PathLength: PathLength(0)})
	tooDeep := proxy(t, noMore, ProxyOptions{})
	one := proxy(t, f.alice, ProxyOptions{PathLength: PathLength(1)})
	oneDeep := proxy(t, one, ProxyOptions{})
	twoDeep := proxy(t, oneDeep, ProxyOptions{})
	// IssueUser refuses such a name; a careless CA might not.
	mallory, err := f.ca.issue(&x509.Certificate{ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		"mallory/CN=host/evil", Validity{}, time.Hour, KeyTypeECDSA, 0)
	if err != nil {
		t.Fatal(err)
	}

	alice := "/O=Grid/OU=vws/CN=alice"
	for _, tc := range []struct {
		name    string
		chain   []*Credential // the leaf's FullChain is used
		dn      string
		proxy   bool
		limited bool
		kind    error
		msg     string
	}{
		{name: "user", chain: []*Credential{f.alice}, dn: alice},
		{name: "host", chain: []*Credential{f.host}, dn: "/O=Grid/OU=vws/CN=host/localhost"},
		{name: "proxy", chain: []*Credential{p1}, dn: alice, proxy: true},
		{name: "proxy of proxy", chain: []*Credential{p2}, dn: alice, proxy: true},
		{name: "limited proxy", chain: []*Credential{limited}, dn: alice, proxy: true, limited: true},
		{name: "legacy proxy", chain: []*Credential{legacy}, dn: alice, proxy: true},
		{name: "legacy limited proxy", chain: []*Credential{legacyLimited}, dn: alice, proxy: true, limited: true},
		{name: "path length 1 honoured", chain: []*Credential{oneDeep}, dn: alice, proxy: true},
		{name: "untrusted CA", chain: []*Credential{stranger}, kind: ErrUntrusted, msg: "issued by /O=Other/CN=CA, which this site does not trust; add its CA to"},
		{name: "expired user", chain: []*Credential{expired}, kind: ErrExpired, msg: "certificate /O=Grid/OU=vws/CN=old expired at"},
		{name: "expired proxy", chain: []*Credential{expiredProxy}, kind: ErrExpired, msg: "; make a new one"},
		{name: "impersonation", chain: []*Credential{impersonator}, kind: ErrProxy, msg: "does not extend its issuer's subject /O=Grid/OU=vws/CN=alice by one CN: impersonation refused"},
		{name: "signed by another user", chain: []*Credential{forged}, kind: ErrProxy, msg: "is not signed by the key of /O=Grid/OU=vws/CN=alice"},
		{name: "path length 0 exceeded", chain: []*Credential{tooDeep}, kind: ErrProxy, msg: "exceeds the proxy path length"},
		{name: "path length 1 exceeded", chain: []*Credential{twoDeep}, kind: ErrProxy, msg: "exceeds the proxy path length"},
		{name: "full proxy under limited", chain: []*Credential{fullUnderLimited}, kind: ErrProxy, msg: "issued by a limited one"},
		{name: "CN reading as another name", chain: []*Credential{mallory}, kind: ErrUntrusted,
			msg: `certificate /O=Grid/OU=vws/CN=mallory\2FCN=host/evil refused: its CN "mallory/CN=host/evil" holds "/" followed by "attribute="`},
		{name: "CN reading as another name, by proxy", chain: []*Credential{proxy(t, mallory, ProxyOptions{})}, kind: ErrUntrusted, msg: "refused: its CN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := trust.Verify(tc.chain[0].FullChain(), now)
			if tc.kind != nil {
				if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want %v containing %q", err, tc.kind, tc.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.DN != tc.dn || id.Proxy != tc.proxy || id.Limited != tc.limited {
				t.Fatalf("got %+v, want DN %s proxy %v limited %v", id, tc.dn, tc.proxy, tc.limited)
			}
			// The handshake-time shortcut must agree with the verifier.
			if got := identity.FromChain(tc.chain[0].FullChain()); got.DN != id.DN || got.Proxy != id.Proxy || got.Limited != id.Limited || !slices.Equal(got.Attributes, id.Attributes) {
				t.Fatalf("FromChain %+v, Verify %+v", got, id)
			}
		})
	}

	t.Run("VO attributes from the user certificate", func(t *testing.T) {
		id, err := trust.Verify(p2.FullChain(), now)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"/atlas/Role=production", "/atlas"}; !slices.Equal(id.Attributes, want) {
			t.Fatalf("attributes %q, want %q", id.Attributes, want)
		}
	})
	t.Run("proxies without their user certificate", func(t *testing.T) {
		if _, err := trust.Verify(p2.FullChain()[:2], now); !errors.Is(err, ErrProxy) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("chain out of order", func(t *testing.T) {
		c := p2.FullChain()
		if _, err := trust.Verify([]*x509.Certificate{c[0], c[2], c[1]}, now); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestRevocation(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	t.Run("revoked user", func(t *testing.T) {
		trust, err := LoadTrust(caDir(t, f.ca, now.Add(time.Hour), f.bob.Certificate.SerialNumber))
		if err != nil {
			t.Fatal(err)
		}
		_, err = trust.Verify(f.bob.FullChain(), now)
		if !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "revoked by the CRL of /O=Grid/OU=vws/CN=vws Test CA") {
			t.Fatalf("got %v", err)
		}
		// Revoking the user revokes his proxies too.
		if _, err := trust.Verify(proxy(t, f.bob, ProxyOptions{}).FullChain(), now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("proxy of a revoked user: %v", err)
		}
		if _, err := trust.Verify(f.alice.FullChain(), now); err != nil {
			t.Fatalf("alice is not revoked: %v", err)
		}
	})
	t.Run("stale CRL", func(t *testing.T) {
		trust, err := LoadTrust(caDir(t, f.ca, now.Add(-time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		_, err = trust.Verify(f.alice.FullChain(), now)
		if !errors.Is(err, ErrStaleCRL) || !strings.Contains(err.Error(), "is stale") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("CRL signed by another CA is ignored", func(t *testing.T) {
		dir := caDir(t, f.ca, now.Add(time.Hour))
		// A CRL claiming to be the test CA's, signed by the other CA's key.
		fake := &Credential{Certificate: f.ca.Certificate, Key: f.other.Key}
		forged, err := fake.CRL([]RevokedSerial{{Serial: f.alice.Certificate.SerialNumber}}, now, now.Add(time.Hour), 2)
		if err != nil {
			t.Skipf("Go refused to sign a CRL with a mismatched key; nothing to test: %v", err)
		}
		// Beside the CA's own CRL, newer than it: taken, it would revoke alice.
		if err := WriteFileAtomic(filepath.Join(dir, "forged.crl"), CRLPEM(forged), 0o644); err != nil {
			t.Fatal(err)
		}
		trust, err := LoadTrust(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := trust.Verify(f.alice.FullChain(), now); err != nil {
			t.Fatalf("alice refused by a CRL the CA did not sign: %v", err)
		}
	})
	t.Run("MaybeReload picks up a new CRL", func(t *testing.T) {
		dir := caDir(t, f.ca, now.Add(time.Hour))
		trust, err := LoadTrust(dir)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := trust.Verify(f.bob.FullChain(), now); err != nil {
			t.Fatal(err)
		}
		crl, err := f.ca.CRL([]RevokedSerial{{Serial: f.bob.Certificate.SerialNumber}}, now, now.Add(time.Hour), 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteCRL(dir, f.ca.Certificate, crl); err != nil {
			t.Fatal(err)
		}
		trust.MaybeReload() // within a second of loading: no look
		if _, err := trust.Verify(f.bob.FullChain(), now); err != nil {
			t.Fatalf("reloaded within a second: %v", err)
		}
		trust.lastCheck.Store(time.Now().Add(-2 * time.Second).UnixNano())
		trust.MaybeReload()
		if _, err := trust.Verify(f.bob.FullChain(), now); !errors.Is(err, ErrRevoked) {
			t.Fatalf("after reload: %v", err)
		}
	})
}

// A verdict lapses at the earliest expiry on the chain or its CRLs' next update, and
// a reload that read something new changes the generation.
func TestCheckVerdict(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	dir := caDir(t, f.ca, now.Add(24*time.Hour))
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := proxy(t, f.alice, ProxyOptions{Validity: Validity{Lifetime: time.Hour}})
	v, err := trust.Check(p.FullChain(), now)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Until.Equal(p.Certificate.NotAfter) || v.Generation != trust.Generation() || v.Identity.DN != "/O=Grid/OU=vws/CN=alice" {
		t.Fatalf("proxy: %+v; want until %s, generation %d", v, p.Certificate.NotAfter, trust.Generation())
	}
	if v, err = trust.Check(f.alice.FullChain(), now); err != nil || !v.Until.Equal(now.Add(24*time.Hour).Truncate(time.Second)) {
		t.Fatalf("user: %+v %v; want until the CRL's next update %s", v, err, now.Add(24*time.Hour))
	}
	gen := trust.Generation()
	trust.lastCheck.Store(time.Now().Add(-2 * time.Second).UnixNano())
	trust.MaybeReload()
	if trust.Generation() != gen {
		t.Fatal("a look that found nothing new changed the generation")
	}
	crl, err := f.ca.CRL(nil, now, now.Add(48*time.Hour), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCRL(dir, f.ca.Certificate, crl); err != nil {
		t.Fatal(err)
	}
	trust.lastCheck.Store(time.Now().Add(-2 * time.Second).UnixNano())
	trust.MaybeReload()
	if trust.Generation() == gen {
		t.Fatal("reloading a new CRL left the generation")
	}
}

func TestLoadTrustFile(t *testing.T) {
	f := testPKI(t)
	file := filepath.Join(t.TempDir(), "cas.pem")
	if err := os.WriteFile(file, CertificatesPEM(f.other.Certificate, f.ca.Certificate), 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(f.alice.FullChain(), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadTrust(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no CA certificates found") {
		t.Fatalf("empty directory: %v", err)
	}
}

func TestCredentialFiles(t *testing.T) {
	f := testPKI(t)
	dir := t.TempDir()
	p := proxy(t, proxy(t, f.alice, ProxyOptions{}), ProxyOptions{})
	file := filepath.Join(dir, "x509up_u1")
	if err := WriteProxyFile(file, p); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("proxy file mode: %v %v", fi.Mode(), err)
	}
	got, err := LoadCredential(file, "")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Certificate.Equal(p.Certificate) || len(got.Chain) != 2 || !got.Chain[1].Equal(f.alice.Certificate) {
		t.Fatalf("proxy file read back as %s + %d", DN(got.Certificate), len(got.Chain))
	}
	if err := WriteCredential(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), f.bob); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredential(filepath.Join(dir, "c.pem"), file); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("mismatched key: %v", err)
	}
}

func TestParseDN(t *testing.T) {
	for _, s := range []string{"/O=Grid/OU=vws/CN=host/node1.example.org", "/DC=org/DC=example/CN=Jane Doe/emailAddress=jane@example.org"} {
		der, err := ParseDN(s)
		if err != nil {
			t.Fatal(err)
		}
		ca, err := NewCA(CAOptions{Subject: s, KeyBits: 1024})
		if err != nil {
			t.Fatal(err)
		}
		if got := DN(ca.Certificate); got != s || string(ca.Certificate.RawSubject) != string(der) {
			t.Fatalf("%s came back as %s", s, got)
		}
	}
	for _, s := range []string{"O=Grid", "/O=Grid/Foo=bar", "/O="} {
		if _, err := ParseDN(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// A name whose one-line DN would read as another's is not issued.
func TestIssueRefusesAmbiguousNames(t *testing.T) {
	f := testPKI(t)
	for _, cn := range []string{"mallory/CN=host/evil", "host/evil", "a=b"} {
		if _, err := f.ca.IssueUser(UserOptions{CN: cn, KeyType: KeyTypeECDSA}); err == nil || !strings.Contains(err.Error(), `holds "/" or "="`) {
			t.Errorf("user CN %q: %v", cn, err)
		}
	}
	for _, name := range []string{"node1/CN=admin", "a=b"} {
		if _, err := f.ca.IssueHost(HostOptions{Name: name, KeyType: KeyTypeECDSA}); err == nil || !strings.Contains(err.Error(), `holds "/" or "="`) {
			t.Errorf("host name %q: %v", name, err)
		}
	}
}

func openssl(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	cmd := exec.Command("openssl", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestOpenSSLInterop(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	dir := caDir(t, f.ca, now.Add(time.Hour), f.bob.Certificate.SerialNumber)
	files := t.TempDir()
	write := func(name string, c *Credential) string {
		path := filepath.Join(files, name)
		if err := WriteCredential(path, path+".key", c); err != nil {
			t.Fatal(err)
		}
		return path
	}
	alice, bob := write("alice.pem", f.alice), write("bob.pem", f.bob)

	t.Run("subject hash", func(t *testing.T) {
		mixed, err := NewCA(CAOptions{Subject: "/O=Grid/OU=  Mixed   Case /CN=Ünïcode CA", KeyBits: 1024})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*Credential{f.ca, f.other, f.alice, mixed} {
			path := write("hash.pem", c)
			want, err := openssl(t, nil, "x509", "-subject_hash", "-noout", "-in", path)
			if err != nil {
				t.Fatal(want)
			}
			got, err := SubjectHash(c.Certificate.RawSubject)
			if err != nil || got != want {
				t.Fatalf("%s: hash %s, openssl says %s (%v)", DN(c.Certificate), got, want, err)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, must(SubjectHash(f.ca.Certificate.RawSubject))+".r0")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("openssl verify -crl_check", func(t *testing.T) {
		if out, err := openssl(t, nil, "verify", "-CApath", dir, "-crl_check", alice); err != nil {
			t.Fatalf("alice refused: %s", out)
		}
		if out, err := openssl(t, nil, "verify", "-CApath", dir, "-crl_check", bob); err == nil || !strings.Contains(out, "revoked") {
			t.Fatalf("revoked bob accepted: %s", out)
		}
	})
	t.Run("openssl accepts our proxy", func(t *testing.T) {
		p := proxy(t, f.alice, ProxyOptions{PathLength: PathLength(2)})
		pf := filepath.Join(files, "proxy.pem")
		if err := os.WriteFile(pf, CertificatesPEM(p.Certificate), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := openssl(t, nil, "verify", "-allow_proxy_certs", "-CApath", dir, "-crl_check", "-untrusted", alice, pf); err != nil {
			t.Fatalf("openssl refused our proxy: %s", out)
		}
	})
	t.Run("we accept openssl's proxy", func(t *testing.T) {
		key := filepath.Join(files, "oproxy.key")
		csr := filepath.Join(files, "oproxy.csr")
		ext := filepath.Join(files, "proxy.ext")
		out := filepath.Join(files, "oproxy.pem")
		if err := os.WriteFile(ext, []byte("proxyCertInfo=critical,language:id-ppl-inheritAll,pathlen:1\nkeyUsage=digitalSignature,keyEncipherment\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		steps := [][]string{
			{"req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/O=Grid/OU=vws/CN=alice/CN=4242"},
			{"x509", "-req", "-in", csr, "-CA", alice, "-CAkey", alice + ".key", "-set_serial", "4242", "-days", "1", "-extfile", ext, "-out", out},
		}
		for _, s := range steps {
			if o, err := openssl(t, nil, s...); err != nil {
				t.Fatalf("openssl %s: %s", s[0], o)
			}
		}
		certs, err := ReadCertificates(out)
		if err != nil {
			t.Fatal(err)
		}
		trust, err := LoadTrust(dir)
		if err != nil {
			t.Fatal(err)
		}
		id, err := trust.Verify(append(certs, f.alice.Certificate), time.Now().Add(time.Second))
		if err != nil || id.DN != "/O=Grid/OU=vws/CN=alice" || !id.Proxy {
			t.Fatalf("openssl's proxy: %+v %v", id, err)
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FromChain runs on every request: an ordinary certificate must cost no allocation
// to classify.
func TestClassifyAllocations(t *testing.T) {
	f := testPKI(t)
	c := f.alice.Certificate
	if n := testing.AllocsPerRun(100, func() { _ = certext.IsProxy(c) }); n != 0 {
		t.Fatalf("%v allocations to classify a user certificate", n)
	}
}

// TestLifetimeCountsFromNow: a certificate or proxy asked for a lifetime lasts that
// long from when it is made; only its start is back-dated, for clocks behind.
func TestLifetimeCountsFromNow(t *testing.T) {
	f := testPKI(t)
	before := time.Now()
	user, err := f.ca.IssueUser(UserOptions{CN: "carol", Validity: Validity{Lifetime: 24 * time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	p12 := proxy(t, f.alice, ProxyOptions{Validity: Validity{Lifetime: 12 * time.Hour}})
	short := proxy(t, f.alice, ProxyOptions{Validity: Validity{Lifetime: time.Minute}})
	after := time.Now()
	for _, c := range []struct {
		name string
		cert *x509.Certificate
		lt   time.Duration
	}{{"user certificate", user.Certificate, 24 * time.Hour}, {"12 h proxy", p12.Certificate, 12 * time.Hour}, {"1 min proxy", short.Certificate, time.Minute}} {
		// X.509 times are whole seconds.
		if c.cert.NotAfter.Before(before.Add(c.lt).Truncate(time.Second)) || c.cert.NotAfter.After(after.Add(c.lt)) {
			t.Errorf("%s of %s made at %s lasts until %s", c.name, c.lt, before.Format(time.RFC3339), c.cert.NotAfter.Format(time.RFC3339))
		}
		if !c.cert.NotBefore.Before(before.Add(-4 * time.Minute)) {
			t.Errorf("%s is valid from %s: not back-dated for clock skew", c.name, c.cert.NotBefore.Format(time.RFC3339))
		}
	}
}
