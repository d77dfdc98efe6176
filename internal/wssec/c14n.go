package wssec

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/beevik/etree"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

const nsXML = "http://www.w3.org/XML/1998/namespace"

// canonicalize writes the exclusive XML canonicalization (without comments) of el, as
// it stands in its document, to w. prefixList is the InclusiveNamespaces PrefixList.
//
// The namespace pruning is goxmldsig's (etreeutils.TransformExcC14n). Three things
// around it are ours, each because goxmldsig's own canonicalizer gets it wrong for
// SOAP messages:
//   - it canonicalizes the element as if it had no ancestors, so a prefix declared on
//     soap:Envelope and used in the Body is "undeclared"; we canonicalize a copy that
//     carries the in-scope declarations (goxmldsig's NSDetatch would do that, but it
//     refuses subtrees of more than 1,000 elements, which a large response exceeds);
//   - its attribute order compares prefixes, not namespace URIs, so e.g.
//     soapenv:mustUnderstand and wsa:IsReferenceParameter come out in the wrong order;
//   - it emits xmlns="" where no default namespace is in output scope (Axis writes
//     such declarations), and writes CDATA sections as CDATA rather than text.
func canonicalize(w io.Writer, el *etree.Element, prefixList string) error {
	cp := el.Copy()
	declared := map[string]bool{}
	for _, a := range cp.Attr {
		if isNSDecl(a) {
			declared[nsDeclPrefix(a)] = true
		}
	}
	for p := el.Parent(); p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			if !isNSDecl(a) {
				continue
			}
			prefix := nsDeclPrefix(a)
			if declared[prefix] {
				continue // a nearer declaration shadows this one
			}
			declared[prefix] = true
			if prefix == "" && a.Value == "" {
				continue // an undeclared default namespace needs no declaration
			}
			cp.Attr = append(cp.Attr, etree.Attr{Space: a.Space, Key: a.Key, Value: a.Value})
		}
	}
	// goxmldsig takes prefixes only; the default namespace's token is ours to render.
	var inScopeDefault map[*etree.Element]string
	if prefixList, inScopeDefault = withoutDefaultToken(prefixList); inScopeDefault != nil {
		recordDefaults(cp, "", inScopeDefault)
	}
	if err := etreeutils.TransformExcC14n(cp, prefixList, false); err != nil {
		return fmt.Errorf("exclusive c14n of %s: %w", el.FullTag(), err)
	}
	fixCanonical(cp, map[string]string{"xml": nsXML}, "", inScopeDefault)
	doc := etree.NewDocument()
	doc.SetRoot(cp)
	doc.WriteSettings = etree.WriteSettings{CanonicalEndTags: true, CanonicalText: true, CanonicalAttrVal: true}
	if _, err := doc.WriteTo(w); err != nil {
		return fmt.Errorf("writing the canonical form of %s: %w", el.FullTag(), err)
	}
	return nil
}

// defaultToken names the default namespace in an InclusiveNamespaces PrefixList
// (exclusive c14n §3). WSS4J lists it whenever a default namespace is in scope.
const defaultToken = "#default"

// withoutDefaultToken returns prefixList without "#default", and a map to record the
// in-scope default namespace of every element in when the list had it (else nil).
func withoutDefaultToken(prefixList string) (string, map[*etree.Element]string) {
	fields := strings.Fields(prefixList)
	rest := slices.DeleteFunc(slices.Clone(fields), func(p string) bool { return p == defaultToken })
	if len(rest) == len(fields) {
		return prefixList, nil
	}
	return strings.Join(rest, " "), map[*etree.Element]string{}
}

// recordDefaults notes in m the default namespace in scope at el and below, inherited
// being the one in scope at el's parent ("" for none).
func recordDefaults(el *etree.Element, inherited string, m map[*etree.Element]string) {
	if v, ok := defaultDeclaration(el); ok {
		inherited = v
	}
	m[el] = inherited
	for _, c := range el.ChildElements() {
		recordDefaults(c, inherited, m)
	}
}

func isNSDecl(a etree.Attr) bool {
	return a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns")
}

func nsDeclPrefix(a etree.Attr) string {
	if a.Space == "xmlns" {
		return a.Key
	}
	return ""
}

// fixCanonical corrects the output of TransformExcC14n in place: attributes sorted by
// namespace URI then local name (C14N §2.2), no xmlns="" unless a non-empty default
// namespace is in output scope, CDATA as text. scope maps the prefixes declared on
// output ancestors; outDefault is the default namespace in output scope.
//
// inScopeDefault, when not nil ("#default" was in the PrefixList), holds each
// element's default namespace in the input: it is rendered as inclusive c14n renders
// it, wherever it differs from the one in output scope, whether or not the element
// uses it (goxmldsig renders it only on unprefixed elements).
func fixCanonical(el *etree.Element, scope map[string]string, outDefault string, inScopeDefault map[*etree.Element]string) {
	if inScopeDefault != nil {
		if _, ok := defaultDeclaration(el); !ok {
			// An unprefixed element has its declaration already; an empty one is
			// dropped below unless a non-empty default is in output scope.
			el.Attr = append(el.Attr, etree.Attr{Key: "xmlns", Value: inScopeDefault[el]})
		}
	}
	own := false
	kept := el.Attr[:0]
	for _, a := range el.Attr {
		if a.Space == "" && a.Key == "xmlns" {
			if a.Value == outDefault {
				continue // redundant: the same default is already in output scope
			}
			outDefault = a.Value
		}
		if a.Space == "xmlns" {
			if !own {
				scope = copyScope(scope)
				own = true
			}
			scope[a.Key] = a.Value
		}
		kept = append(kept, a)
	}
	el.Attr = kept
	sort.SliceStable(el.Attr, func(i, j int) bool { return attrLess(el.Attr[i], el.Attr[j], scope) })
	for i, t := range el.Child {
		switch t := t.(type) {
		case *etree.Element:
			fixCanonical(t, scope, outDefault, inScopeDefault)
		case *etree.CharData:
			if t.IsCData() {
				text := etree.NewText(t.Data)
				el.RemoveChildAt(i)
				el.InsertChildAt(i, text)
			}
		}
	}
}

func copyScope(m map[string]string) map[string]string {
	c := make(map[string]string, len(m)+2)
	for k, v := range m {
		c[k] = v
	}
	return c
}

// attrLess orders attributes as C14N does: the default namespace declaration, then
// prefix declarations by prefix, then attributes by (namespace URI, local name), where
// unqualified attributes have the empty namespace URI and so come first.
func attrLess(a, b etree.Attr, scope map[string]string) bool {
	ra, rb := attrRank(a), attrRank(b)
	if ra != rb {
		return ra < rb
	}
	switch ra {
	case 0:
		return false
	case 1:
		return a.Key < b.Key
	}
	ua, ub := "", ""
	if a.Space != "" {
		ua = scope[a.Space]
	}
	if b.Space != "" {
		ub = scope[b.Space]
	}
	if ua != ub {
		return ua < ub
	}
	return a.Key < b.Key
}

func attrRank(a etree.Attr) int {
	switch {
	case a.Space == "" && a.Key == "xmlns":
		return 0
	case a.Space == "xmlns":
		return 1
	}
	return 2
}

// trimBase64 drops the white space signers put into base64 text (xmlsec wraps it at
// 64 columns).
func trimBase64(s string) string {
	if !strings.ContainsAny(s, " \t\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
}
