package pki

import (
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki/certext"
)

var (
	oidCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO     = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU    = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

var attrOIDs = map[string]asn1.ObjectIdentifier{
	"CN": oidCN, "C": {2, 5, 4, 6}, "L": {2, 5, 4, 7}, "ST": {2, 5, 4, 8}, "O": oidO, "OU": oidOU,
	"serialNumber": {2, 5, 4, 5}, "DC": {0, 9, 2342, 19200300, 100, 1, 25},
	"UID": {0, 9, 2342, 19200300, 100, 1, 1}, "emailAddress": oidEmail, "Email": oidEmail,
}

// DN returns c's subject in the one-line form Globus uses ("/O=Grid/CN=Jane").
func DN(c *x509.Certificate) string { return identity.OneLineDN(c.Subject) }

// ParseDN encodes a one-line DN such as "/O=Grid/OU=vws/CN=host/node1.example.org"
// as a DER Name, RDNs in the order written. A '/' that is not followed by
// "attribute=" belongs to the value (so CN=host/<name> needs no escaping).
func ParseDN(s string) ([]byte, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, fmt.Errorf("DN %q: write it in the one-line form /O=Grid/OU=vws/CN=Name", s)
	}
	var seq pkix.RDNSequence
	rest := s[1:]
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("DN %q: %q is not attribute=value", s, rest)
		}
		attr := rest[:eq]
		oid, ok := attrOIDs[attr]
		if !ok {
			return nil, fmt.Errorf("DN %q: unknown attribute %q (known: CN, O, OU, C, L, ST, DC, UID, serialNumber, emailAddress)", s, attr)
		}
		rest = rest[eq+1:]
		end := nextAttr(rest)
		val := rest[:end]
		rest = strings.TrimPrefix(rest[end:], "/")
		if val == "" {
			return nil, fmt.Errorf("DN %q: %s has an empty value", s, attr)
		}
		var v any = val
		if oid.Equal(oidEmail) {
			b, err := asn1.MarshalWithParams(val, "ia5")
			if err != nil {
				return nil, fmt.Errorf("DN %q: %w", s, err)
			}
			v = asn1.RawValue{FullBytes: b}
		}
		seq = append(seq, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}})
	}
	der, err := asn1.Marshal(seq)
	if err != nil {
		return nil, fmt.Errorf("DN %q: %w", s, err)
	}
	return der, nil
}

// nextAttr returns the index of the '/' that starts the next "attr=" in s, or len(s).
// identity.OneLineDN renders by the same rule: a '/' it leaves in a value starts none.
func nextAttr(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' && identity.StartsAttribute(s[i:]) {
			return i
		}
	}
	return len(s)
}

// SubjectHash returns OpenSSL's X509_NAME_hash (the "new" hash since 1.0.0) of a
// DER Name, as 8 hex digits: the name of a CA's <hash>.0 file in a CApath directory.
// OpenSSL hashes the canonical form (certext.CanonicalRDNs) of the RDNs concatenated
// without the outer SEQUENCE; SHA-1, first 4 bytes little-endian.
func SubjectHash(rawName []byte) (string, error) {
	rdns, err := certext.CanonicalRDNs(rawName)
	if err != nil {
		return "", fmt.Errorf("subject hash: %w", err)
	}
	var canon []byte
	for _, r := range rdns {
		canon = append(canon, r...)
	}
	sum := sha1.Sum(canon)
	return fmt.Sprintf("%08x", binary.LittleEndian.Uint32(sum[:4])), nil
}
