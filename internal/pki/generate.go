// Package pki handles the grid's X.509 side: it makes test and demo credentials (a CA,
// host and user certificates, RFC 3820 proxies, CRLs), writes them in the layouts
// Globus tools use, and verifies presented chains, proxies included, against a
// trusted CA directory (Trust).
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/vws-grid/vws/internal/pki/certext"
)

// Credential is a certificate with its private key and the chain that issued it
// (nearest issuer first, without the trust anchor), as a proxy file holds it.
type Credential struct {
	Certificate *x509.Certificate
	Key         crypto.Signer
	Chain       []*x509.Certificate
}

// FullChain returns the certificate followed by its chain.
func (c *Credential) FullChain() []*x509.Certificate {
	return append([]*x509.Certificate{c.Certificate}, c.Chain...)
}

// DefaultKeyBits is the RSA key size of generated keys.
const DefaultKeyBits = 2048

// KeyType is the kind of key a new certificate gets.
type KeyType string

const (
	// KeyTypeRSA is an RSA key of KeyBits (DefaultKeyBits) bits: what Globus tools
	// and GT4-era peers expect, and the default.
	KeyTypeRSA KeyType = "rsa"
	// KeyTypeECDSA is an ECDSA key on NIST P-256. Its signatures cost a few hundredths
	// of the time of RSA-2048's, which matters when every message is signed.
	KeyTypeECDSA KeyType = "ecdsa"
)

// ParseKeyType reads "rsa" or "ecdsa" (case-insensitive; "ec" and "p256" for ECDSA).
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "rsa":
		return KeyTypeRSA, nil
	case "ecdsa", "ec", "p256", "p-256":
		return KeyTypeECDSA, nil
	}
	return "", fmt.Errorf("key type %q: want rsa or ecdsa (P-256)", s)
}

// KeyTypeOf returns the KeyType of a public key: RSA of any size, or ECDSA on P-256.
func KeyTypeOf(pub crypto.PublicKey) (KeyType, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeyTypeRSA, nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return KeyTypeECDSA, nil
		}
		return "", fmt.Errorf("ECDSA key on %s: only P-256 is supported", k.Curve.Params().Name)
	}
	return "", fmt.Errorf("%T keys are not supported: use RSA or ECDSA P-256", pub)
}

// Validity is a certificate's lifetime. Zero NotBefore means now: the certificate
// lasts Lifetime from now, and is valid from five minutes before for clocks a little
// behind. A NotBefore given starts the Lifetime.
type Validity struct {
	NotBefore time.Time
	Lifetime  time.Duration
}

func (v Validity) bounds(def time.Duration) (time.Time, time.Time) {
	lt := v.Lifetime
	if lt <= 0 {
		lt = def
	}
	if !v.NotBefore.IsZero() {
		return v.NotBefore, v.NotBefore.Add(lt)
	}
	// The back-dating is for other clocks only; counting the lifetime from it would
	// make every certificate five minutes shorter than asked.
	now := time.Now()
	return now.Add(-5 * time.Minute), now.Add(lt)
}

// CAOptions describe a test CA.
type CAOptions struct {
	// Subject is the CA's DN in one-line form; default "/O=Grid/OU=vws/CN=vws Test CA".
	Subject string
	Validity
	// KeyType is KeyTypeRSA unless set.
	KeyType KeyType
	// KeyBits is the RSA key size; default DefaultKeyBits. It must be zero for ECDSA.
	KeyBits int
}

// NewCA makes a self-signed CA.
func NewCA(o CAOptions) (*Credential, error) {
	if o.Subject == "" {
		o.Subject = "/O=Grid/OU=vws/CN=vws Test CA"
	}
	name, err := ParseDN(o.Subject)
	if err != nil {
		return nil, err
	}
	key, err := newKey(o.KeyType, o.KeyBits)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	nb, na := o.bounds(10 * 365 * 24 * time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber: serial, RawSubject: name, NotBefore: nb, NotAfter: na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true,
	}
	cert, err := sign(tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA %s: %w", o.Subject, err)
	}
	return &Credential{Certificate: cert, Key: key}, nil
}

// HostOptions describe a host certificate.
type HostOptions struct {
	// Name is the host name; the subject is /O=Grid/OU=vws/CN=host/<Name> under the
	// CA's O and OU, and Name is a DNS SAN (an IP SAN when it is an address).
	Name string
	// DNSNames and IPs are further subject alternative names.
	DNSNames []string
	IPs      []net.IP
	Validity
	// KeyType is KeyTypeRSA unless set (whatever the CA's key is).
	KeyType KeyType
	KeyBits int
}

// IssueHost issues a host certificate usable for TLS servers and clients.
func (ca *Credential) IssueHost(o HostOptions) (*Credential, error) {
	if o.Name == "" {
		return nil, errors.New("host certificate: a host name is needed")
	}
	if strings.ContainsAny(o.Name, "/=") {
		// CN=host/a/CN=b would render as two attributes (see identity.OneLineDN).
		return nil, fmt.Errorf("host certificate: host name %q holds \"/\" or \"=\": give a host name such as node1.example.org", o.Name)
	}
	tmpl := &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    o.DNSNames, IPAddresses: o.IPs,
	}
	if ip := net.ParseIP(o.Name); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else {
		tmpl.DNSNames = append([]string{o.Name}, tmpl.DNSNames...)
	}
	return ca.issue(tmpl, "host/"+o.Name, o.Validity, 365*24*time.Hour, o.KeyType, o.KeyBits)
}

// UserOptions describe a user certificate.
type UserOptions struct {
	// CN is the user's common name; the subject is /O=Grid/OU=vws/CN=<CN>.
	CN string
	// VOAttributes are FQANs (e.g. "/atlas/Role=production") the CA asserts in the
	// vws-vo-attributes extension (certext.OIDVOAttributes).
	VOAttributes []string
	Validity
	// KeyType is KeyTypeRSA unless set (whatever the CA's key is).
	KeyType KeyType
	KeyBits int
}

// IssueUser issues a user certificate (TLS client, and issuer of proxies).
func (ca *Credential) IssueUser(o UserOptions) (*Credential, error) {
	if o.CN == "" {
		return nil, errors.New("user certificate: a common name is needed")
	}
	if strings.ContainsAny(o.CN, "/=") {
		// The one-line DN does not escape: CN "mallory/CN=host/x" would read as a host.
		return nil, fmt.Errorf("user certificate: common name %q holds \"/\" or \"=\", which would make its one-line DN ambiguous: choose a name without them", o.CN)
	}
	tmpl := &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if len(o.VOAttributes) > 0 {
		v, err := certext.MarshalVOAttributes(o.VOAttributes)
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: certext.OIDVOAttributes, Value: v})
	}
	return ca.issue(tmpl, o.CN, o.Validity, 365*24*time.Hour, o.KeyType, o.KeyBits)
}

// issue signs tmpl with the CA: subject is the CA's O and OU (or /O=Grid/OU=vws) plus CN.
func (ca *Credential) issue(tmpl *x509.Certificate, cn string, v Validity, def time.Duration, kt KeyType, bits int) (*Credential, error) {
	if !ca.Certificate.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", DN(ca.Certificate))
	}
	var prefix pkix.RDNSequence
	for _, rdn := range ca.Certificate.Subject.ToRDNSequence() {
		if len(rdn) == 1 && (rdn[0].Type.Equal(oidO) || rdn[0].Type.Equal(oidOU)) {
			prefix = append(prefix, rdn)
		}
	}
	if len(prefix) == 0 {
		prefix = pkix.RDNSequence{{{Type: oidO, Value: "Grid"}}, {{Type: oidOU, Value: "vws"}}}
	}
	raw, err := asn1.Marshal(append(prefix, pkix.RelativeDistinguishedNameSET{{Type: oidCN, Value: cn}}))
	if err != nil {
		return nil, fmt.Errorf("subject CN=%s: %w", cn, err)
	}
	key, err := newKey(kt, bits)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = leafKeyUsage(key.Public())
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, err
	}
	tmpl.RawSubject = raw
	tmpl.NotBefore, tmpl.NotAfter = v.bounds(def)
	tmpl.BasicConstraintsValid = true
	cert, err := sign(tmpl, ca.Certificate, key.Public(), ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue CN=%s: %w", cn, err)
	}
	return &Credential{Certificate: cert, Key: key, Chain: nil}, nil
}

// ProxyOptions describe a proxy certificate.
type ProxyOptions struct {
	// Validity defaults to 12 hours, like grid-proxy-init.
	Validity
	// Limited makes a limited proxy (id-ppl-limited) instead of inheritAll.
	Limited bool
	// PathLength, when set, is pCPathLenConstraint: how many proxies may descend
	// from this one (0: none). Nil leaves the proxy unconstrained.
	PathLength *int
	// Legacy makes a pre-RFC Globus proxy: CN "proxy" or "limited proxy", no
	// ProxyCertInfo.
	Legacy bool
	// KeyType is the issuer's key type unless set.
	KeyType KeyType
	// KeyBits is the RSA key size; default DefaultKeyBits (not the issuer's size).
	KeyBits int

	// For tests of refusal only: Subject replaces the proxy's subject (a one-line DN,
	// e.g. another user's, to impersonate him), and SignWith signs with another key
	// than the issuer's.
	Subject  string
	SignWith crypto.Signer
}

// PathLength returns a ProxyOptions.PathLength of n.
func PathLength(n int) *int { return &n }

// IssueProxy issues an RFC 3820 proxy from issuer (a user certificate or a proxy):
// subject = issuer subject + CN=<decimal serial>, as grid-proxy-init does. The
// returned credential's chain is the issuer followed by its chain.
func IssueProxy(issuer *Credential, o ProxyOptions) (*Credential, error) {
	if issuer.Certificate.IsCA {
		return nil, fmt.Errorf("%s is a CA certificate: proxies are issued by user certificates", DN(issuer.Certificate))
	}
	kt := o.KeyType
	if kt == "" {
		// A proxy follows its issuer: a site that chose ECDSA for its speed keeps it
		// down the delegation chain without every tool having to say so.
		var err error
		if kt, err = KeyTypeOf(issuer.Certificate.PublicKey); err != nil {
			return nil, fmt.Errorf("proxy of %s: %w; choose the proxy's key type", DN(issuer.Certificate), err)
		}
	}
	key, err := newKey(kt, o.KeyBits)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	cn := serial.String()
	tmpl := &x509.Certificate{SerialNumber: serial, KeyUsage: leafKeyUsage(key.Public())}
	tmpl.NotBefore, tmpl.NotAfter = o.Validity.bounds(12 * time.Hour)
	// A proxy must not outlive its issuer: Globus clamps it the same way.
	if tmpl.NotAfter.After(issuer.Certificate.NotAfter) && o.NotBefore.IsZero() {
		tmpl.NotAfter = issuer.Certificate.NotAfter
	}
	if o.Legacy {
		cn = "proxy"
		if o.Limited {
			cn = "limited proxy"
		}
	} else {
		lang := certext.OIDPolicyInheritAll
		if o.Limited {
			lang = certext.OIDPolicyLimited
		}
		pl := -1
		if o.PathLength != nil {
			if *o.PathLength < 0 {
				return nil, fmt.Errorf("proxy path length %d: it must be 0 or more", *o.PathLength)
			}
			pl = *o.PathLength
		}
		v, err := certext.ProxyCertInfo{PathLen: pl, Policy: certext.ProxyPolicy{Language: lang}}.Marshal()
		if err != nil {
			return nil, fmt.Errorf("ProxyCertInfo: %w", err)
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: certext.OIDProxyCertInfo, Critical: true, Value: v}}
	}
	if o.Subject != "" {
		if tmpl.RawSubject, err = ParseDN(o.Subject); err != nil {
			return nil, err
		}
	} else if tmpl.RawSubject, err = appendCN(issuer.Certificate.RawSubject, cn); err != nil {
		return nil, err
	}
	parent, signer := issuer.Certificate, issuer.Key
	if o.SignWith != nil {
		// CreateCertificate insists the key matches the parent: give it a parent with
		// the issuer's name and the other key.
		parent = &x509.Certificate{RawSubject: issuer.Certificate.RawSubject, PublicKey: o.SignWith.Public()}
		signer = o.SignWith
	}
	cert, err := sign(tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("issue proxy of %s: %w", DN(issuer.Certificate), err)
	}
	return &Credential{Certificate: cert, Key: key, Chain: issuer.FullChain()}, nil
}

// RevokedSerial is one entry of a CRL.
type RevokedSerial struct {
	Serial *big.Int
	At     time.Time
}

// CRL makes a DER CRL of ca revoking the given serials, valid from thisUpdate until
// nextUpdate, with CRL number number.
func (ca *Credential) CRL(revoked []RevokedSerial, thisUpdate, nextUpdate time.Time, number int64) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, len(revoked))
	for i, r := range revoked {
		at := r.At
		if at.IsZero() {
			at = thisUpdate
		}
		entries[i] = x509.RevocationListEntry{SerialNumber: r.Serial, RevocationTime: at}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(number), ThisUpdate: thisUpdate, NextUpdate: nextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.Certificate, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("CRL of %s: %w", DN(ca.Certificate), err)
	}
	return der, nil
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func newKey(kt KeyType, bits int) (crypto.Signer, error) {
	switch kt {
	case "", KeyTypeRSA:
		if bits == 0 {
			bits = DefaultKeyBits
		}
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		return k, nil
	case KeyTypeECDSA:
		if bits != 0 {
			// Silently ignoring a size would let someone believe they got it.
			return nil, fmt.Errorf("a key size (%d bits) applies to RSA keys only; ECDSA keys are P-256", bits)
		}
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ECDSA P-256 key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("key type %q: want %q or %q", kt, KeyTypeRSA, KeyTypeECDSA)
}

// leafKeyUsage is the KeyUsage of a host, user or proxy certificate for pub: RSA
// keys may also encipher keys (RSA key transport, as GT4 peers use it); RFC 5480
// §3 forbids keyEncipherment for EC keys, so ECDSA ones only sign.
func leafKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

// randomSerial returns a positive random 63-bit serial: unique in practice, and
// short enough to type into `vws pki revoke`.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// appendCN returns the DER name rawName followed by one RDN CN=cn, keeping the
// issuer's RDNs byte for byte (a re-encoding could change string types and break
// RFC 3820's subject comparison).
func appendCN(rawName []byte, cn string) ([]byte, error) {
	rdns, err := certext.SplitRDNs(rawName)
	if err != nil {
		return nil, err
	}
	last, err := asn1.Marshal(pkix.RelativeDistinguishedNameSET{{Type: oidCN, Value: cn}})
	if err != nil {
		return nil, err
	}
	vals := make([]asn1.RawValue, 0, len(rdns)+1)
	for _, r := range rdns {
		vals = append(vals, asn1.RawValue{FullBytes: r})
	}
	vals = append(vals, asn1.RawValue{FullBytes: last})
	return asn1.Marshal(vals)
}

// ErrAmbiguousSerial is ParseSerial's refusal of a bare even number of digits, which
// may be hex or decimal.
var ErrAmbiguousSerial = errors.New("ambiguous serial number")

// ParseSerial reads a serial number: in hex as openssl prints it ("serial=0A1B2C",
// from openssl x509 -noout -serial, or its value alone when it holds a letter A-F),
// 0x-prefixed or as colon-separated bytes; in decimal, as vws pki prints it, when it
// has an odd number of digits. openssl prints whole bytes, so an even number of
// digits alone may be its hex: read as decimal it would name another certificate,
// and it is refused (ErrAmbiguousSerial) with how to write it.
func ParseSerial(s string) (*big.Int, error) {
	const digits, hexDigits = "0123456789", "0123456789abcdefABCDEF"
	text, base := s, 16
	switch {
	case len(s) >= len("serial=") && strings.EqualFold(s[:len("serial=")], "serial="):
		text = s[len("serial="):]
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		text = s[2:]
	case strings.Contains(s, ":"):
		text = strings.ReplaceAll(s, ":", "")
	case s != "" && strings.Trim(s, digits) == "" && len(s)%2 == 0:
		return nil, fmt.Errorf("%w %q: openssl prints serials in hex (serial=%s), vws pki in decimal; write 0x%s for hex, or the decimal's 0x form (vws pki prints both), or give the certificate file",
			ErrAmbiguousSerial, s, s, s)
	case strings.Trim(s, digits) == "":
		base = 10
	}
	n := new(big.Int)
	_, ok := n.SetString(text, base)
	// big.Int also takes a sign or underscores: "+12" is 12 in decimal, 18 in hex.
	ok = ok && text != "" && strings.Trim(text, hexDigits) == ""
	if !ok || n.Sign() <= 0 {
		return nil, fmt.Errorf("serial number %q: want hex as openssl prints it (serial=0A1B2C, 0x0A1B2C or 0A:1B:2C), or decimal as vws pki prints it", s)
	}
	return n, nil
}
