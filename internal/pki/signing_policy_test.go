package pki

import (
	"crypto/x509"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// forgeUser has ca issue a client certificate for dn, as any CA of a bundle can.
func forgeUser(t *testing.T, ca *Credential, dn string, now time.Time) *x509.Certificate {
	t.Helper()
	name, err := ParseDN(dn)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := newKey(KeyTypeECDSA, 0)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(4242), RawSubject: name, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true}
	return mustCert(t, tmpl, ca.Certificate, key.Public(), ca.Key)
}

// A CA's <hash>.signing_policy that spells its name otherwise than vws renders it
// (OpenSSL before 0.9.7 wrote Email= for emailAddress=, and IGTF files kept it) still
// confines that CA: Globus and ARC look the file up by the issuer's hash, and a file
// naming no policy for the CA lets it sign nothing, never anything.
func TestSigningPolicyOtherSpellingStillConfines(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	other, err := NewCA(CAOptions{Subject: "/O=Other/CN=Other CA/emailAddress=ca@other.org", KeyType: KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	dir := caDir(t, f.ca, now.Add(time.Hour))
	ohash, err := WriteCADir(dir, other.Certificate, nil)
	if err != nil {
		t.Fatal(err)
	}
	pol := "access_id_CA X509 '/O=Other/CN=Other CA/Email=ca@other.org'\npos_rights globus CA:sign\ncond_subjects globus '\"/O=Other/*\"'\n"
	if err := os.WriteFile(filepath.Join(dir, ohash+".signing_policy"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	trust, err := LoadTrust(dir)
	if err != nil {
		t.Fatal(err)
	}
	fake := forgeUser(t, other, "/O=Grid/OU=vws/CN=alice", now)
	if id, err := trust.Verify([]*x509.Certificate{fake}, now); err == nil {
		t.Fatalf("ATTACK SUCCEEDED: %s's %s.signing_policy confines it to /O=Other/*, yet its certificate authenticates as %s", DN(other.Certificate), ohash, id.DN)
	} else {
		t.Log(err)
	}
}
