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

// A CA name without spaces may be written unquoted (the Globus sample file says names
// with whitespace must be quoted; ARC reads either). Such a file must load and confine
// its CA — also when it follows another CA's entry, whose namespace it must not widen.
func TestSigningPolicyUnquotedCAName(t *testing.T) {
	f := testPKI(t)
	now := time.Now()
	dir := caDir(t, f.ca, now.Add(time.Hour))
	ohash, err := WriteCADir(dir, f.other.Certificate, nil)
	if err != nil {
		t.Fatal(err)
	}
	vhash, _ := SubjectHash(f.ca.Certificate.RawSubject)
	own := "access_id_CA X509 '" + DN(f.ca.Certificate) + "'\npos_rights globus CA:sign\ncond_subjects globus '\"/O=Grid/OU=vws/*\"'\n"
	unquoted := "access_id_CA X509 " + DN(f.other.Certificate) + "\npos_rights globus CA:sign\ncond_subjects globus '\"/O=Other/*\"'\n"
	for _, tc := range []struct {
		name, file, pol string
		vwsConfined     bool // the file also confines f.ca
	}{
		{"alone", ohash, unquoted, false},
		{"after another CA's entry", vhash, own + unquoted, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(dir, tc.file+".signing_policy"), []byte(tc.pol), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(filepath.Join(dir, tc.file+".signing_policy"))
			trust, err := LoadTrust(dir)
			if err != nil {
				t.Fatalf("a signing_policy with an unquoted access_id_CA is refused: %v", err)
			}
			if id, err := trust.Verify([]*x509.Certificate{forgeUser(t, f.other, "/O=Grid/OU=vws/CN=alice", now)}, now); err == nil {
				t.Errorf("ATTACK SUCCEEDED: %s, confined to /O=Other/*, issued a certificate that authenticates as %s", DN(f.other.Certificate), id.DN)
			}
			if id, err := trust.Verify([]*x509.Certificate{forgeUser(t, f.ca, "/O=Other/CN=mallory", now)}, now); tc.vwsConfined && err == nil {
				t.Errorf("ATTACK SUCCEEDED: %s, confined to /O=Grid/OU=vws/*, issued a certificate that authenticates as %s", DN(f.ca.Certificate), id.DN)
			}
			if _, err := trust.Verify([]*x509.Certificate{forgeUser(t, f.other, "/O=Other/CN=carol", now)}, now); err != nil {
				t.Errorf("a certificate inside its CA's namespace is refused: %v", err)
			}
		})
	}
}
