// Package identity carries the authenticated caller through a request's context.
package identity

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"strings"

	"github.com/vws-grid/vws/internal/pki/certext"
)

// Identity is who called. On plain HTTP every caller is anonymous.
type Identity struct {
	// DN is the subject distinguished name in the OpenSSL one-line form Globus uses,
	// e.g. "/O=Grid/OU=Example/CN=Jane Doe"; empty when anonymous.
	DN string
	// Certificate is the caller's end-entity certificate, when there is one (for a
	// proxy chain: the certificate the proxies descend from, whose subject is DN).
	Certificate *x509.Certificate
	// Proxy is true when the caller authenticated with an RFC 3820 proxy chain.
	Proxy bool
	// Limited is true when a proxy of the chain is a limited proxy (id-ppl-limited or
	// a legacy "limited proxy"), which Globus services refuse for job submission.
	Limited bool
	// Attributes are VO attributes (VOMS-style FQANs such as "/atlas/Role=production")
	// asserted by a trusted issuer; policy may also map them from the DN.
	Attributes []string
	// Signed is true when the identity comes from a verified WS-Security signature
	// rather than (or in addition to) the TLS peer.
	Signed bool
	// DeliveredBy is the TLS peer that delivered a signed message, when it is not
	// the signer (a portal passing a user's request on): the audit names both.
	DeliveredBy string
}

// Anonymous is the identity of an unauthenticated caller.
var Anonymous = Identity{}

// IsAnonymous reports whether the caller presented no certificate.
func (i Identity) IsAnonymous() bool { return i.DN == "" }

func (i Identity) String() string {
	if i.IsAnonymous() {
		return "<anonymous>"
	}
	return i.DN
}

type ctxKey struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the caller in ctx, Anonymous if none was recorded.
func From(ctx context.Context) Identity {
	if id, ok := ctx.Value(ctxKey{}).(Identity); ok {
		return id
	}
	return Anonymous
}

// FromRequest derives the caller from the TLS peer chain of r, if any. The chain was
// verified during the handshake (tlsutil.Server) and again for this request, should
// the connection have outlived it (tlsutil.Revalidator), so this only reads it.
func FromRequest(r *http.Request) Identity {
	if r.TLS == nil {
		return Anonymous
	}
	return FromChain(r.TLS.PeerCertificates)
}

// FromChain describes the caller of an already verified chain (leaf first, possibly
// proxies before the end-entity certificate). It verifies nothing: for a chain that
// has not been verified, use pki.Trust.Verify, which returns the same Identity.
func FromChain(chain []*x509.Certificate) Identity {
	for i, c := range chain {
		p := certext.Classify(c)
		if p.Kind != certext.NotProxy {
			continue
		}
		id := Identity{DN: OneLineDN(c.Subject), Certificate: c, Proxy: i > 0,
			// Only the end-entity certificate's attributes count: its CA asserted them.
			// A proxy's extensions are written by the user himself.
			Attributes: certext.VOAttributes(c)}
		for _, p := range chain[:i] {
			if certext.Classify(p).Limited {
				id.Limited = true
				break
			}
		}
		return id
	}
	return Anonymous
}

var shortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.5":                    "serialNumber",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
	"1.2.840.113549.1.9.1":       "emailAddress",
	// The rest of OpenSSL's short names a personal or host certificate may carry: a
	// DN written otherwise (an OID) would not match the rule or grid-mapfile line an
	// administrator copied from openssl or grid-proxy-info.
	"2.5.4.4":  "SN",
	"2.5.4.42": "GN",
	"2.5.4.12": "title",
	"2.5.4.9":  "street",
	"2.5.4.17": "postalCode",
	"2.5.4.65": "pseudonym",
	"2.5.4.43": "initials",
	"2.5.4.44": "generationQualifier",
	"2.5.4.46": "dnQualifier",
}

// OneLineDN renders a name as OpenSSL's "/A=v/B=w" one-line form, in certificate order.
// A parsed certificate's name has every attribute, in order, in Names (its fields
// and ToRDNSequence lose repeated CNs, as in proxies, and DC, UID or emailAddress);
// a name built by hand uses its fields. Values are written as they are but for the
// escapes writeValue makes, which no ordinary grid DN needs.
func OneLineDN(name pkix.Name) string {
	var b strings.Builder
	for _, atv := range attributes(name) {
		writeATV(&b, atv)
	}
	return b.String()
}

// attributes lists name's attributes in certificate order (see OneLineDN).
func attributes(name pkix.Name) []pkix.AttributeTypeAndValue {
	if len(name.Names) > 0 {
		return name.Names
	}
	var out []pkix.AttributeTypeAndValue
	for _, rdn := range name.ToRDNSequence() {
		out = append(out, rdn...)
	}
	return out
}

// AmbiguousValue finds the first attribute of name whose value holds a '/' that the
// one-line form would read as the start of another attribute ("mallory/CN=host/x"):
// OneLineDN escapes it, but such a name is made to pass for another, so
// authentication refuses it.
func AmbiguousValue(name pkix.Name) (attr, value string, found bool) {
	for _, atv := range attributes(name) {
		s, ok := atv.Value.(string)
		if !ok {
			continue
		}
		for i := 0; i < len(s); i++ {
			if s[i] == '/' && StartsAttribute(s[i:]) {
				return attrName(atv.Type), s, true
			}
		}
	}
	return "", "", false
}

// StartsAttribute reports whether s starts as an attribute of the one-line form
// does: '/', an attribute name or dotted OID, '='. Any other '/' belongs to a value,
// as in CN=host/node1.example.org.
func StartsAttribute(s string) bool {
	if len(s) < 3 || s[0] != '/' {
		return false
	}
	j := 1
	for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
		j++
	}
	return j > 1 && j < len(s) && s[j] == '='
}

// CanonicalDN writes the email attribute of a one-line DN as OneLineDN does,
// emailAddress, however it is spelled: older OpenSSL wrote Email, some tools E, and
// Globus takes the three for one attribute, so a grid-mapfile line or rule copied
// from such a tool names the same certificates. The rest of dn is unchanged.
func CanonicalDN(dn string) string {
	var b strings.Builder
	for i := 0; i < len(dn); i++ {
		if dn[i] == '/' && StartsAttribute(dn[i:]) {
			name, _, _ := strings.Cut(dn[i+1:], "=")
			if strings.EqualFold(name, "Email") || strings.EqualFold(name, "E") || strings.EqualFold(name, "emailAddress") {
				b.WriteString("/emailAddress")
				i += len(name)
				continue
			}
		}
		b.WriteByte(dn[i])
	}
	return b.String()
}

func writeATV(b *strings.Builder, atv pkix.AttributeTypeAndValue) {
	b.WriteByte('/')
	b.WriteString(attrName(atv.Type))
	b.WriteByte('=')
	if s, ok := atv.Value.(string); ok {
		writeValue(b, s)
	}
}

// writeValue writes an attribute value. The one-line form has no escaping, so a value
// "mallory/CN=host/evil" would render as a name with a CN=host/evil attribute, which
// DN globs such as policy's "*/CN=host/*" match: a '/' that would read as the start of
// an attribute is written \2F instead, and a '\' that would read as such an escape
// \5C, so that distinct names render distinctly. Every ordinary value, "host/node1"
// and a proxy's number included, is written unchanged.
func writeValue(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '/' && StartsAttribute(s[i:]):
			b.WriteString(`\2F`)
		case s[i] == '\\' && (hasPrefixFold(s[i+1:], "2F") || hasPrefixFold(s[i+1:], "5C")):
			b.WriteString(`\5C`)
		default:
			b.WriteByte(s[i])
		}
	}
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func attrName(oid asn1.ObjectIdentifier) string {
	if n, ok := shortNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}

// NamesHost says whether cert names host as a service host's certificate does: by a
// subject alternative name, or by a Globus-style "host/NAME" (or bare NAME) common
// name. Host names are compared ignoring case, as VerifyHostname does.
func NamesHost(cert *x509.Certificate, host string) bool {
	if cert == nil {
		return false
	}
	cn := cert.Subject.CommonName
	return cert.VerifyHostname(host) == nil || equalFoldASCII(cn, host) || strings.HasPrefix(cn, "host/") && equalFoldASCII(cn[len("host/"):], host)
}

// equalFoldASCII compares ignoring the case of ASCII letters only: DNS names fold
// so, and a Unicode look-alike (the Kelvin sign for K) must not name another host.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// HostNames lists the names cert gives a host (its subject alternative names, or else
// its common name), for a message saying which names it does give.
func HostNames(cert *x509.Certificate) []string {
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{cert.Subject.CommonName}
	}
	return names
}
