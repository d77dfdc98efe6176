package identity

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

var (
	oidCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO     = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU    = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidDC    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
)

func name(atvs ...pkix.AttributeTypeAndValue) pkix.Name { return pkix.Name{Names: atvs} }

func atv(oid asn1.ObjectIdentifier, v string) pkix.AttributeTypeAndValue {
	return pkix.AttributeTypeAndValue{Type: oid, Value: v}
}

// Ordinary grid DNs render as OpenSSL's one-line form does, unchanged; a value that
// would read as further attributes is escaped, so that it matches no other name's
// structure, and AmbiguousValue finds it.
func TestOneLineDN(t *testing.T) {
	grid := []pkix.AttributeTypeAndValue{atv(oidO, "Grid"), atv(oidOU, "vws")}
	for _, tc := range []struct {
		name      pkix.Name
		want      string
		ambiguous bool
	}{
		{name: name(append(grid, atv(oidCN, "Jane Doe"))...), want: "/O=Grid/OU=vws/CN=Jane Doe"},
		{name: name(append(grid, atv(oidCN, "host/node1.example.org"))...), want: "/O=Grid/OU=vws/CN=host/node1.example.org"},
		{name: name(append(grid, atv(oidCN, "alice"), atv(oidCN, "1234567"), atv(oidCN, "limited proxy"))...), want: "/O=Grid/OU=vws/CN=alice/CN=1234567/CN=limited proxy"},
		{name: name(atv(oidDC, "org"), atv(oidDC, "example"), atv(oidCN, "J. Doe (a/b) x=y"), atv(oidEmail, "jane@example.org")),
			want: "/DC=org/DC=example/CN=J. Doe (a/b) x=y/emailAddress=jane@example.org"},
		{name: name(atv(oidCN, `a\b`), atv(oidCN, "a/"), atv(oidCN, "/"), atv(oidCN, "x/=y")), want: `/CN=a\b/CN=a//CN=//CN=x/=y`},
		{name: pkix.Name{Organization: []string{"Grid"}, CommonName: "host/node1"}, want: "/O=Grid/CN=host/node1"},

		{name: name(append(grid, atv(oidCN, "mallory/CN=host/evil"))...), want: `/O=Grid/OU=vws/CN=mallory\2FCN=host/evil`, ambiguous: true},
		{name: name(atv(oidO, "Grid/OU=vws"), atv(oidCN, "x")), want: `/O=Grid\2FOU=vws/CN=x`, ambiguous: true},
		{name: name(atv(oidCN, "a/2.5.4.3=b")), want: `/CN=a\2F2.5.4.3=b`, ambiguous: true},
		// A literal escape is escaped in turn: the two names below stay distinct.
		{name: name(atv(oidCN, `a\2FCN=b`)), want: `/CN=a\5C2FCN=b`},
		{name: name(atv(oidCN, "a/CN=b")), want: `/CN=a\2FCN=b`, ambiguous: true},
		{name: name(atv(oidCN, `a\5c`)), want: `/CN=a\5C5c`},
	} {
		if got := OneLineDN(tc.name); got != tc.want {
			t.Errorf("OneLineDN = %s, want %s", got, tc.want)
		}
		if _, _, found := AmbiguousValue(tc.name); found != tc.ambiguous {
			t.Errorf("%s: AmbiguousValue %v, want %v", tc.want, found, tc.ambiguous)
		}
	}
	attr, val, _ := AmbiguousValue(name(atv(oidO, "Grid"), atv(oidCN, "mallory/CN=host/evil")))
	if attr != "CN" || val != "mallory/CN=host/evil" {
		t.Errorf("AmbiguousValue = %s %q", attr, val)
	}
}

// TestOneLineDNNamesAsOpenSSLDoes: every attribute a personal certificate may carry
// is written by its OpenSSL short name, as `openssl x509 -subject -nameopt compat`
// printed it for a certificate with this subject (OpenSSL 3.0), so that rules and
// grid-mapfile lines copied from it match.
func TestOneLineDNNamesAsOpenSSLDoes(t *testing.T) {
	const openssl = "/DC=org/O=Grid/SN=Doe/GN=John/title=Dr/street=Main St 1/postalCode=12345/pseudonym=jd/initials=J/generationQualifier=Jr/dnQualifier=q1/CN=John Doe"
	oid := func(arcs ...int) asn1.ObjectIdentifier { return append(asn1.ObjectIdentifier{2, 5, 4}, arcs...) }
	n := name(atv(oidDC, "org"), atv(oidO, "Grid"), atv(oid(4), "Doe"), atv(oid(42), "John"), atv(oid(12), "Dr"), atv(oid(9), "Main St 1"),
		atv(oid(17), "12345"), atv(oid(65), "jd"), atv(oid(43), "J"), atv(oid(44), "Jr"), atv(oid(46), "q1"), atv(oidCN, "John Doe"))
	if got := OneLineDN(n); got != openssl {
		t.Errorf("OneLineDN = %s\nopenssl     %s", got, openssl)
	}
}
