// Package certext recognizes the grid certificate extensions vws uses: RFC 3820 proxy
// certificates (and legacy Globus proxies) and vws's VO attribute extension. It only
// classifies and decodes; whether a chain is trustworthy is internal/pki's business.
// It is separate from internal/pki so that internal/identity can use it without an
// import cycle.
package certext

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
)

var (
	// OIDProxyCertInfo is RFC 3820's id-pe-proxyCertInfo; the extension is critical.
	OIDProxyCertInfo = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 14}
	// OIDPolicyInheritAll is id-ppl-inheritAll: the proxy carries all its issuer's rights.
	OIDPolicyInheritAll = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 21, 1}
	// OIDPolicyIndependent is id-ppl-independent: the proxy carries none of them.
	OIDPolicyIndependent = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 21, 2}
	// OIDPolicyLimited is Globus's id-ppl-limited: a limited proxy, refused for job
	// submission by Globus services.
	OIDPolicyLimited = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3536, 1, 1, 1, 9}
	// OIDVOAttributes is vws's "vws-vo-attributes" extension (private arc
	// 1.3.6.1.4.1.59999): a non-critical SEQUENCE OF UTF8String holding VOMS-style FQANs
	// such as "/atlas/Role=production". VOMS itself carries FQANs in signed attribute
	// certificates (its FQAN attribute is 1.3.6.1.4.1.8005.100.100.4); vws keeps the
	// format simple and has the CA assert them in the user certificate instead.
	OIDVOAttributes = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 59999, 1, 1}

	oidCommonName     = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidIssuerAltName  = asn1.ObjectIdentifier{2, 5, 29, 18}
)

// ProxyPolicy is RFC 3820's ProxyPolicy.
type ProxyPolicy struct {
	Language asn1.ObjectIdentifier
	Policy   []byte `asn1:"optional"`
}

// ProxyCertInfo is RFC 3820's ProxyCertInfo extension value.
type ProxyCertInfo struct {
	// PathLen is pCPathLenConstraint: how many further proxies may descend from this
	// one; -1 when unconstrained.
	PathLen int
	Policy  ProxyPolicy
}

type proxyCertInfoASN1 struct {
	PathLen int `asn1:"optional,default:-1"`
	Policy  ProxyPolicy
}

// Marshal encodes p as the extension value.
func (p ProxyCertInfo) Marshal() ([]byte, error) {
	if p.PathLen < 0 {
		return asn1.Marshal(struct{ Policy ProxyPolicy }{p.Policy})
	}
	return asn1.Marshal(struct {
		PathLen int
		Policy  ProxyPolicy
	}{p.PathLen, p.Policy})
}

// ParseProxyCertInfo decodes a ProxyCertInfo extension value.
func ParseProxyCertInfo(der []byte) (ProxyCertInfo, error) {
	v := proxyCertInfoASN1{PathLen: -1}
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil {
		return ProxyCertInfo{}, fmt.Errorf("ProxyCertInfo: %w", err)
	}
	if len(rest) > 0 {
		return ProxyCertInfo{}, errors.New("ProxyCertInfo: trailing data")
	}
	if v.PathLen < -1 {
		return ProxyCertInfo{}, fmt.Errorf("ProxyCertInfo: negative path length %d", v.PathLen)
	}
	return ProxyCertInfo(v), nil
}

// Kind says what sort of proxy a certificate is.
type Kind int

const (
	// NotProxy is an ordinary (end-entity or CA) certificate.
	NotProxy Kind = iota
	// RFC3820 is a proxy with a ProxyCertInfo extension.
	RFC3820
	// Legacy is a pre-RFC Globus proxy: no ProxyCertInfo, last CN "proxy" or
	// "limited proxy", subject = issuer subject + that CN.
	Legacy
)

// Proxy is how a certificate presents itself as a proxy.
type Proxy struct {
	Kind Kind
	// Info is the decoded ProxyCertInfo (RFC3820 only).
	Info ProxyCertInfo
	// Limited is true for id-ppl-limited and legacy "limited proxy" certificates.
	Limited bool
	// Err is set when the ProxyCertInfo extension is present but malformed; such a
	// certificate is still a proxy (and never valid).
	Err error
}

// Classify says whether c is a proxy. It does not verify anything; it is cheap
// enough to run per request (one pass over the extensions, no allocation for an
// ordinary certificate).
func Classify(c *x509.Certificate) Proxy {
	for i := range c.Extensions {
		e := &c.Extensions[i]
		if e.Id.Equal(OIDProxyCertInfo) {
			info, err := ParseProxyCertInfo(e.Value)
			if err != nil {
				return Proxy{Kind: RFC3820, Err: err}
			}
			return Proxy{Kind: RFC3820, Info: info, Limited: info.Policy.Language.Equal(OIDPolicyLimited)}
		}
	}
	// A legacy proxy's name ends with the bytes of "proxy" (its last value): look
	// no further for the ordinary certificate.
	if !bytes.HasSuffix(c.RawSubject, []byte("proxy")) {
		return Proxy{Kind: NotProxy}
	}
	switch lastCN(c.RawSubject) {
	case "proxy":
		if extendsByOneRDN(c.RawSubject, c.RawIssuer) {
			return Proxy{Kind: Legacy, Info: ProxyCertInfo{PathLen: -1, Policy: ProxyPolicy{Language: OIDPolicyInheritAll}}}
		}
	case "limited proxy":
		if extendsByOneRDN(c.RawSubject, c.RawIssuer) {
			return Proxy{Kind: Legacy, Limited: true, Info: ProxyCertInfo{PathLen: -1, Policy: ProxyPolicy{Language: OIDPolicyLimited}}}
		}
	}
	return Proxy{Kind: NotProxy}
}

// IsProxy reports whether c is an RFC 3820 or legacy Globus proxy.
func IsProxy(c *x509.Certificate) bool { return Classify(c).Kind != NotProxy }

// EndEntity returns the index of the first certificate of chain (leaf first) that
// is not a proxy, or -1 when all are proxies.
func EndEntity(chain []*x509.Certificate) int {
	for i, c := range chain {
		if !IsProxy(c) {
			return i
		}
	}
	return -1
}

// HasAltNames reports whether c has a SubjectAltName or IssuerAltName extension,
// which RFC 3820 §3.5 and §3.6 forbid in proxies.
func HasAltNames(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oidSubjectAltName) || e.Id.Equal(oidIssuerAltName) {
			return true
		}
	}
	return false
}

// SplitRDNs splits a DER Name into its RDNs' DER encodings.
func SplitRDNs(rawName []byte) ([][]byte, error) {
	var seq asn1.RawValue
	rest, err := asn1.Unmarshal(rawName, &seq)
	if err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	if len(rest) > 0 || seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence {
		return nil, errors.New("name: not a SEQUENCE")
	}
	var rdns [][]byte
	b := seq.Bytes
	for len(b) > 0 {
		var rdn asn1.RawValue
		b, err = asn1.Unmarshal(b, &rdn)
		if err != nil {
			return nil, fmt.Errorf("name: %w", err)
		}
		rdns = append(rdns, rdn.FullBytes)
	}
	return rdns, nil
}

// ExtendsByOneCN reports whether subject is issuer followed by exactly one RDN
// holding a single commonName, and returns that CN's value.
func ExtendsByOneCN(subject, issuer []byte) (string, bool) {
	if !extendsByOneRDN(subject, issuer) {
		return "", false
	}
	rdns, err := SplitRDNs(subject)
	if err != nil || len(rdns) == 0 {
		return "", false
	}
	return singleCN(rdns[len(rdns)-1])
}

// extendsByOneRDN compares names as OpenSSL's X509_NAME_cmp does (canonical form):
// openssl writes UTF8Strings where Go writes PrintableStrings, and a proxy made by
// one for a certificate made by the other must still match.
func extendsByOneRDN(subject, issuer []byte) bool {
	s, err1 := CanonicalRDNs(subject)
	i, err2 := CanonicalRDNs(issuer)
	if err1 != nil || err2 != nil || len(s) != len(i)+1 {
		return false
	}
	for k := range i {
		if !bytes.Equal(s[k], i[k]) {
			return false
		}
	}
	return true
}

func contents(der []byte) ([]byte, error) {
	var v asn1.RawValue
	if _, err := asn1.Unmarshal(der, &v); err != nil {
		return nil, err
	}
	return v.Bytes, nil
}

// lastCN returns the value of the name's last RDN when it is a single CN.
func lastCN(rawName []byte) string {
	s, err := contents(rawName)
	if err != nil {
		return ""
	}
	var last []byte
	for len(s) > 0 {
		var rdn asn1.RawValue
		rest, err := asn1.Unmarshal(s, &rdn)
		if err != nil {
			return ""
		}
		last, s = rdn.FullBytes, rest
	}
	cn, _ := singleCN(last)
	return cn
}

func singleCN(rdn []byte) (string, bool) {
	var set []struct {
		Type  asn1.ObjectIdentifier
		Value any
	}
	if _, err := asn1.UnmarshalWithParams(rdn, &set, "set"); err != nil || len(set) != 1 || !set[0].Type.Equal(oidCommonName) {
		return "", false
	}
	s, ok := set[0].Value.(string)
	return s, ok
}

// MarshalVOAttributes encodes FQANs as the vws-vo-attributes extension value.
func MarshalVOAttributes(fqans []string) ([]byte, error) {
	vals := make([]asn1.RawValue, len(fqans))
	for i, f := range fqans {
		if f == "" || f[0] != '/' {
			return nil, fmt.Errorf("VO attribute %q: an FQAN starts with '/', like /atlas/Role=production", f)
		}
		b, err := asn1.MarshalWithParams(f, "utf8")
		if err != nil {
			return nil, fmt.Errorf("VO attribute %q: %w", f, err)
		}
		vals[i] = asn1.RawValue{FullBytes: b}
	}
	return asn1.Marshal(vals)
}

// VOAttributes returns the FQANs of c's vws-vo-attributes extension (nil when absent
// or malformed). Callers decide whether c's issuer may assert them: only a trusted
// CA may, never a proxy, which its own user signs.
func VOAttributes(c *x509.Certificate) []string {
	for _, e := range c.Extensions {
		if !e.Id.Equal(OIDVOAttributes) {
			continue
		}
		var fqans []string
		if rest, err := asn1.Unmarshal(e.Value, &fqans); err != nil || len(rest) > 0 {
			return nil
		}
		return fqans
	}
	return nil
}
