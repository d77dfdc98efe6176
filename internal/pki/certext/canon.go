package certext

import (
	"encoding/asn1"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// CanonicalRDNs returns the RDNs of a DER Name in OpenSSL's canonical form (what
// X509_NAME_cmp and the subject hash use): every string value re-encoded as a
// lower-cased UTF8String with leading and trailing white space removed and inner
// runs collapsed to one space. Two names are the same to OpenSSL (and to Globus)
// when their canonical RDNs are equal, even when one is a PrintableString and the
// other a UTF8String.
func CanonicalRDNs(rawName []byte) ([][]byte, error) {
	var seq []asn1.RawValue
	if rest, err := asn1.Unmarshal(rawName, &seq); err != nil || len(rest) > 0 {
		return nil, fmt.Errorf("malformed name: %v", err)
	}
	out := make([][]byte, 0, len(seq))
	for _, rdn := range seq {
		var atvs []struct {
			Type  asn1.ObjectIdentifier
			Value asn1.RawValue
		}
		if _, err := asn1.UnmarshalWithParams(rdn.FullBytes, &atvs, "set"); err != nil {
			return nil, fmt.Errorf("malformed RDN: %w", err)
		}
		encs := make([][]byte, 0, len(atvs))
		for _, a := range atvs {
			v := a.Value
			if s, ok := canonString(v); ok {
				b, err := asn1.MarshalWithParams(s, "utf8")
				if err != nil {
					return nil, err
				}
				v = asn1.RawValue{FullBytes: b}
			}
			enc, err := asn1.Marshal(struct {
				Type  asn1.ObjectIdentifier
				Value asn1.RawValue
			}{a.Type, v})
			if err != nil {
				return nil, err
			}
			encs = append(encs, enc)
		}
		// DER orders a SET OF by its elements' encodings.
		sort.Slice(encs, func(i, j int) bool { return string(encs[i]) < string(encs[j]) })
		var body []byte
		for _, e := range encs {
			body = append(body, e...)
		}
		set, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: body})
		if err != nil {
			return nil, err
		}
		out = append(out, set)
	}
	return out, nil
}

// canonString applies OpenSSL's asn1_string_canon to the string types it covers.
func canonString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal {
		return "", false
	}
	var s string
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, 26 /* VisibleString */ :
		s = string(v.Bytes)
	case asn1.TagT61String: // OpenSSL treats it as Latin-1
		r := make([]rune, len(v.Bytes))
		for i, b := range v.Bytes {
			r[i] = rune(b)
		}
		s = string(r)
	case 30: // BMPString
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(v.Bytes[2*i:])
		}
		s = string(utf16.Decode(u))
	case 28: // UniversalString
		if len(v.Bytes)%4 != 0 {
			return "", false
		}
		r := make([]rune, len(v.Bytes)/4)
		for i := range r {
			r[i] = rune(binary.BigEndian.Uint32(v.Bytes[4*i:]))
		}
		s = string(r)
	default:
		return "", false
	}
	if !utf8.ValidString(s) {
		return "", false
	}
	isSpace := func(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
	var b strings.Builder
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	for k := i; k < j; k++ {
		c := s[k]
		if isSpace(c) {
			for k+1 < j && isSpace(s[k+1]) {
				k++
			}
			b.WriteByte(' ')
			continue
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b.WriteByte(c)
	}
	return b.String(), true
}
