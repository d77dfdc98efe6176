package pki

// Attacks on chain verification, each refused. Each test fails when the attack
// succeeds (the code accepts what it must refuse).

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mustCert(t *testing.T, tmpl, parent *x509.Certificate, pub any, key any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// reissuedCA re-issues ca's self-signed certificate with the same subject and key and a
// new serial and validity, as IGTF CAs do when their root nears its end: during the
// overlap both files sit in the CA directory as <hash>.0 and <hash>.1.
func reissuedCA(t *testing.T, ca *Credential) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(777), RawSubject: ca.Certificate.RawSubject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(20 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
		SubjectKeyId: ca.Certificate.SubjectKeyId,
	}
	return mustCert(t, tmpl, tmpl, ca.Key.Public(), ca.Key)
}

// ATTACK 1: the CA's certificate re-issued with the same key (<hash>.0 and <hash>.1)
// and one CRL (<hash>.r0) revoking bob. Go finds a path through each CA certificate;
// the CRL must count on both (it once went to one only, and the other path let the
// revoked certificate through).
func TestAttackRevokedUserViaReissuedCA(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	dir := caDir(t, f.ca, now.Add(time.Hour), f.bob.Certificate.SerialNumber)
	hash, err := SubjectHash(f.ca.Certificate.RawSubject)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, hash+".1"), CertificatesPEM(reissuedCA(t, f.ca)), 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := trust.Verify(f.bob.FullChain(), now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: revoked certificate accepted as %s (the CA cert exists as %s.0 and %s.1, the CRL %s.r0 revokes serial %s)",
			id.DN, hash, hash, hash, f.bob.Certificate.SerialNumber)
	}
	if id, err := trust.Verify(proxy(t, f.bob, ProxyOptions{}).FullChain(), now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: proxy of a revoked certificate accepted as %s", id.DN)
	}
}

// Same set-up, CRL past its nextUpdate: must be refused as stale.
func TestAttackStaleCRLViaReissuedCA(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	dir := caDir(t, f.ca, now.Add(-time.Minute))
	hash, _ := SubjectHash(f.ca.Certificate.RawSubject)
	if err := os.WriteFile(filepath.Join(dir, hash+".1"), CertificatesPEM(reissuedCA(t, f.ca)), 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := trust.Verify(f.alice.FullChain(), now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: certificate accepted as %s although the CA's only CRL is stale", id.DN)
	}
}

type interFixture struct {
	inter *Credential
	user  *Credential
}

func intermediate(t *testing.T, root *Credential) interFixture {
	t.Helper()
	name, err := ParseDN("/O=Grid/OU=vws/CN=vws Sub CA")
	if err != nil {
		t.Fatal(err)
	}
	key, err := newKey(KeyTypeECDSA, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(4242), RawSubject: name,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	inter := &Credential{Certificate: mustCert(t, tmpl, root.Certificate, key.Public(), root.Key), Key: key}
	user, err := inter.IssueUser(UserOptions{CN: "carol", KeyType: KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	user.Chain = []*x509.Certificate{inter.Certificate}
	return interFixture{inter: inter, user: user}
}

// ATTACK 2: the root CA revokes an intermediate CA by its CRL; the intermediate's
// certificate is in the CA directory (as IGTF bundles install every CA of a
// hierarchy). Every CA of the directory is a root of the pool, so Go returns the path
// [user, intermediate] ending at the intermediate: the path must be extended to the
// root and its CRL read, so that a user of the revoked intermediate is refused.
func TestAttackRevokedIntermediateInCADir(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	ix := intermediate(t, f.ca)
	dir := caDir(t, f.ca, now.Add(time.Hour), ix.inter.Certificate.SerialNumber)
	icrl, err := ix.inter.CRL(nil, now.Add(-time.Hour), now.Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteCADir(dir, ix.inter.Certificate, icrl); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := trust.Verify(ix.user.FullChain(), now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: %s accepted although its issuer %s (serial %s) is revoked by the root's CRL",
			id.DN, DN(ix.inter.Certificate), ix.inter.Certificate.SerialNumber)
	}
}

// Variant: the root's CRL is stale; a user under the intermediate is still accepted.
func TestAttackStaleRootCRLWithIntermediateInCADir(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	ix := intermediate(t, f.ca)
	dir := caDir(t, f.ca, now.Add(-time.Minute))
	if _, err := WriteCADir(dir, ix.inter.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Verify(f.alice.FullChain(), now); err == nil {
		t.Fatal("control: alice directly under the root must be refused (stale CRL)")
	}
	if id, err := trust.Verify(ix.user.FullChain(), now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: %s accepted although the CRL of the root above its issuer is stale", id.DN)
	}
}

// Control: intermediate NOT in the directory, revoked by the root: refused.
func TestAttackRevokedIntermediatePresentedByClient(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	ix := intermediate(t, f.ca)
	trust, err := LoadTrust(caDir(t, f.ca, now.Add(time.Hour), ix.inter.Certificate.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := trust.Verify(ix.user.FullChain(), now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: %s accepted through a revoked intermediate it presented", id.DN)
	}
}

// ATTACK 3: the intermediate's CRL (revoking its user) is in the directory, the
// intermediate certificate itself comes from the client: the CRL must still count
// (it was once dropped as one "no trusted CA signed").
func TestAttackIntermediateCRLIgnored(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	ix := intermediate(t, f.ca)
	dir := caDir(t, f.ca, now.Add(time.Hour))
	icrl, err := ix.inter.CRL([]RevokedSerial{{Serial: ix.user.Certificate.SerialNumber}}, now.Add(-time.Hour), now.Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteCRL(dir, ix.inter.Certificate, icrl); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := trust.Verify(ix.user.FullChain(), now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: revoked %s accepted (its CA's CRL is in the directory, its CA's certificate came from the client)", id.DN)
	}
}

// ATTACK 4: an end-entity certificate whose extendedKeyUsage does not allow TLS client
// authentication (S/MIME only; a TLS-server-only certificate) must not authenticate
// as a user.
func TestAttackNoClientAuthEKU(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	trust, err := LoadTrust(caDir(t, f.ca, now.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	for _, eku := range [][]x509.ExtKeyUsage{
		{x509.ExtKeyUsageEmailProtection},
		{x509.ExtKeyUsageCodeSigning},
		{x509.ExtKeyUsageServerAuth},
	} {
		c, err := f.ca.issue(&x509.Certificate{ExtKeyUsage: eku}, "dave", Validity{}, time.Hour, KeyTypeECDSA, 0)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := trust.Verify(c.FullChain(), now); err == nil {
			t.Errorf("ATTACK SUCCEEDED: certificate with extendedKeyUsage %v (no clientAuth) accepted as TLS client %s", eku, id.DN)
		}
		if id, err := trust.Verify(proxy(t, c, ProxyOptions{}).FullChain(), now); err == nil {
			t.Errorf("ATTACK SUCCEEDED: proxy of a certificate with extendedKeyUsage %v accepted as %s", eku, id.DN)
		}
	}
}

// ATTACK 5: a second trusted CA (any one of an IGTF bundle) mints a certificate with
// alice's DN. The directory's <hash>.signing_policy confines it to /O=Other/*, as
// Globus (and IGTF's distribution) rely on: the certificate must not authenticate as
// alice.
func TestAttackSigningPolicyIgnored(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	dir := caDir(t, f.ca, now.Add(time.Hour))
	ohash, err := WriteCADir(dir, f.other.Certificate, nil)
	if err != nil {
		t.Fatal(err)
	}
	vhash, _ := SubjectHash(f.ca.Certificate.RawSubject)
	pol := func(ca, ns string) string {
		return "access_id_CA X509 '" + ca + "'\npos_rights globus CA:sign\ncond_subjects globus '\"" + ns + "\"'\n"
	}
	os.WriteFile(filepath.Join(dir, vhash+".signing_policy"), []byte(pol(DN(f.ca.Certificate), "/O=Grid/OU=vws/*")), 0o644)
	os.WriteFile(filepath.Join(dir, ohash+".signing_policy"), []byte(pol(DN(f.other.Certificate), "/O=Other/*")), 0o644)
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	name, _ := ParseDN("/O=Grid/OU=vws/CN=alice")
	key, _ := newKey(KeyTypeECDSA, 0)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(99), RawSubject: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true}
	fake := mustCert(t, tmpl, f.other.Certificate, key.Public(), f.other.Key)
	if id, err := trust.Verify([]*x509.Certificate{fake}, now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: a certificate issued by %s outside its signing_policy namespace authenticates as %s", DN(f.other.Certificate), id.DN)
	}
}
