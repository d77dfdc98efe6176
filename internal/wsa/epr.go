package wsa

import (
	"errors"
	"fmt"
	"strings"

	"github.com/beevik/etree"
)

// EPR is an endpoint reference. Its reference properties (2004/03) or parameters (W3C)
// are kept as detached element copies that carry every namespace declaration in scope
// where they were read, so they go back on the wire unchanged in namespace and content.
type EPR struct {
	Version    Version
	Address    string
	References []*etree.Element
}

// ErrMissingAddress is an endpoint reference without an address, which WS-Addressing
// faults as MissingAddressInEPR rather than as another invalid EPR.
var ErrMissingAddress = errors.New("endpoint reference without an address")

// nsWSSE is WS-Security 1.0's namespace, of the wsse:Security header.
const nsWSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

// MaxReferences bounds the reference parameters (or properties) of one EPR.
const MaxReferences = 64

// ParseEPR reads an EPR-typed element (EndpointReference, From, ReplyTo, Originator, …).
func ParseEPR(el *etree.Element) (*EPR, error) {
	epr := &EPR{}
	for _, c := range el.ChildElements() {
		v, ok := VersionOf(c.NamespaceURI())
		if !ok {
			continue
		}
		switch c.Tag {
		case "Address":
			if epr.Version != 0 {
				// Which endpoint was meant would be a guess.
				return nil, errors.New("endpoint reference has more than one wsa:Address")
			}
			epr.Version = v
			epr.Address = trimText(c)
		case "ReferenceProperties", "ReferenceParameters":
			for _, r := range c.ChildElements() {
				if len(epr.References) == MaxReferences {
					// Each is echoed as a header of every reply: no real EPR has so many.
					return nil, fmt.Errorf("endpoint reference has more than %d reference parameters", MaxReferences)
				}
				if IsAddressingHeader(r) {
					// Echoed as a header block, it would be a second wsa:Action or
					// wsa:RelatesTo… of each message sent to the endpoint (a vws answer,
					// signed by the host), saying that it is, or answers, another.
					return nil, fmt.Errorf("endpoint reference has a reference parameter {%s}%s, a WS-Addressing header of its own: no message may carry two",
						r.NamespaceURI(), r.Tag)
				}
				if r.Tag == "Security" && r.NamespaceURI() == nsWSSE {
					// Echoed, it would be a wsse:Security header of its own in each message
					// the host signs for the endpoint, which signing refuses: none could
					// be sent.
					return nil, fmt.Errorf("endpoint reference has a wsse:Security reference parameter: messages to it carry the sender's own; remove it from the reference parameters")
				}
				for _, a := range r.Attr {
					if a.Key == "IsReferenceParameter" && a.NamespaceURI() == NS200508 {
						// Echoed in WS-Addressing 1.0, it is marked so once more: an element
						// with the attribute twice is not well-formed XML.
						return nil, fmt.Errorf("endpoint reference has a reference parameter {%s}%s carrying wsa:IsReferenceParameter: that attribute marks the header a sender makes of it; remove it from the parameter",
							r.NamespaceURI(), r.Tag)
					}
				}
				epr.References = append(epr.References, Detach(r))
			}
		}
	}
	if epr.Version == 0 {
		return nil, fmt.Errorf("%w: it has no wsa:Address", ErrMissingAddress)
	}
	if epr.Address == "" {
		return nil, fmt.Errorf("%w: its wsa:Address is empty", ErrMissingAddress)
	}
	return epr, nil
}

// ReadEPRFile parses an EPR document: a wsa:EndpointReference element, or any element
// whose children are an EPR's (as GT tools write them).
func ReadEPRDocument(data []byte) (*EPR, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, fmt.Errorf("EPR file is not well-formed XML: %w", err)
	}
	for _, t := range doc.Child {
		if _, ok := t.(*etree.Directive); ok {
			return nil, errors.New("EPR file has a DTD; refusing it")
		}
	}
	root := doc.Root()
	if root == nil {
		return nil, errors.New("EPR file has no root element")
	}
	return ParseEPR(root)
}

// Reference returns the reference property/parameter with the given name, or nil.
func (e *EPR) Reference(ns, local string) *etree.Element {
	for _, r := range e.References {
		if r.Tag == local && r.NamespaceURI() == ns {
			return r
		}
	}
	return nil
}

// Element renders the EPR as an element named {wsa}local with prefix pfx.
func (e *EPR) Element(pfx, local string) *etree.Element {
	el := etree.NewElement(pfx + ":" + local)
	el.CreateAttr("xmlns:"+pfx, e.Version.Namespace())
	e.fill(el, pfx)
	return el
}

// ElementIn renders the EPR as a child named {wsa}local whose namespace is declared by
// an ancestor under prefix pfx.
func (e *EPR) fill(el *etree.Element, pfx string) {
	el.CreateElement(pfx + ":Address").SetText(e.Address)
	if len(e.References) > 0 {
		refs := el.CreateElement(pfx + ":" + e.Version.ReferenceContainer())
		for _, r := range e.References {
			refs.AddChild(r.Copy())
		}
	}
}

// ChildElement renders the EPR as a child element of parent named qualified (e.g.
// "bf:Originator"), with the WS-Addressing children under prefix pfx declared on it.
func (e *EPR) ChildElement(parent *etree.Element, qualified, pfx string) *etree.Element {
	el := parent.CreateElement(qualified)
	el.CreateAttr("xmlns:"+pfx, e.Version.Namespace())
	e.fill(el, pfx)
	return el
}

// Document renders the EPR as a standalone EndpointReference document (an EPR file).
func (e *EPR) Document() *etree.Document {
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	doc.SetRoot(e.Element("wsa", "EndpointReference"))
	doc.Indent(2)
	return doc
}

// Headers renders the reference properties/parameters as SOAP header blocks: copied
// verbatim, and in the W3C version marked wsa:IsReferenceParameter="true".
func (e *EPR) Headers() []*etree.Element {
	out := make([]*etree.Element, 0, len(e.References))
	for _, r := range e.References {
		h := r.Copy()
		if e.Version == V200508 {
			// Under a prefix the parameter does not use itself: rebinding one of its
			// own would rename it (into WS-Addressing's namespace, say).
			p := freePrefix(h, "wsa-rp")
			h.CreateAttr("xmlns:"+p, NS200508)
			h.CreateAttr(p+":IsReferenceParameter", "true")
		}
		out = append(out, h)
	}
	return out
}

// freePrefix is want, or want followed by a number, neither used in el's subtree nor
// declared on el.
func freePrefix(el *etree.Element, want string) string {
	taken := usedPrefixes(el)
	for _, a := range el.Attr {
		if a.Space == "xmlns" {
			taken[a.Key] = true
		}
	}
	p := want
	for i := 1; taken[p]; i++ {
		p = fmt.Sprintf("%s%d", want, i)
	}
	return p
}

// Detach copies el out of its document, declaring on the copy the namespaces in scope
// at el that it uses and does not declare itself: those of its names and attributes,
// and those whose prefix begins a QName in its text or attribute values. Not every
// one in scope: a message declaring thousands of prefixes on its envelope would
// otherwise have each detached element (a reference parameter echoed in a reply) carry
// all of them, a request of kilobytes costing gigabytes.
func Detach(el *etree.Element) *etree.Element {
	c := el.Copy()
	declared := map[string]bool{}
	for _, a := range c.Attr {
		if a.Space == "xmlns" {
			declared[a.Key] = true
		} else if a.Space == "" && a.Key == "xmlns" {
			declared[""] = true
		}
	}
	used := usedPrefixes(c)
	for p := el.Parent(); p != nil && len(used) > 0; p = p.Parent() {
		for _, a := range p.Attr {
			var prefix string
			switch {
			case a.Space == "xmlns":
				prefix = a.Key
			case a.Space == "" && a.Key == "xmlns":
				prefix = ""
			default:
				continue
			}
			if declared[prefix] || !used[prefix] {
				continue
			}
			declared[prefix] = true
			delete(used, prefix)
			if prefix == "" {
				c.CreateAttr("xmlns", a.Value)
			} else {
				c.CreateAttr("xmlns:"+prefix, a.Value)
			}
		}
	}
	return c
}

// usedPrefixes is the prefixes el's subtree may need declared: those of its element
// and attribute names ("" for unprefixed elements: the default namespace), and any
// that begins a QName-like token of its text or attribute values.
func usedPrefixes(el *etree.Element) map[string]bool {
	used := map[string]bool{}
	text := func(s string) {
		for _, f := range strings.Fields(s) {
			if p, _, ok := strings.Cut(f, ":"); ok && p != "" && !strings.ContainsAny(p, "/?#") {
				used[p] = true
			}
		}
	}
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		used[e.Space] = true
		for _, a := range e.Attr {
			if a.Space != "" && a.Space != "xmlns" {
				used[a.Space] = true
			}
			if a.Space != "xmlns" && !(a.Space == "" && a.Key == "xmlns") {
				text(a.Value)
			}
		}
		for _, t := range e.Child {
			switch t := t.(type) {
			case *etree.Element:
				walk(t)
			case *etree.CharData:
				text(t.Data)
			}
		}
	}
	walk(el)
	return used
}

// QName is a namespace-qualified name.
type QName struct {
	Space string
	Local string
}

func (q QName) String() string {
	if q.Space == "" {
		return q.Local
	}
	return "{" + q.Space + "}" + q.Local
}

// ParseClark parses "{ns}local" (Clark notation) or a bare local name.
func ParseClark(s string) (QName, error) {
	if strings.HasPrefix(s, "{") {
		end := strings.IndexByte(s, '}')
		if end < 0 || end == len(s)-1 {
			return QName{}, fmt.Errorf("%q is not {namespace}local", s)
		}
		return QName{Space: s[1:end], Local: s[end+1:]}, nil
	}
	if s == "" || strings.ContainsAny(s, "{}: ") {
		return QName{}, fmt.Errorf("%q is not {namespace}local", s)
	}
	return QName{Local: s}, nil
}

// ResolveQName resolves a prefixed QName value ("p:local") against the namespaces in
// scope at el, as QName-valued content (GetResourceProperty) requires.
func ResolveQName(el *etree.Element, value string) (QName, error) {
	value = trimSpace(value)
	if value == "" {
		return QName{}, errors.New("empty QName")
	}
	prefix, local := "", value
	if i := strings.IndexByte(value, ':'); i >= 0 {
		prefix, local = value[:i], value[i+1:]
	}
	if local == "" || strings.ContainsAny(local, ": \t\n<>&") || strings.ContainsAny(prefix, " \t\n<>&") {
		return QName{}, fmt.Errorf("%q is not a QName", value)
	}
	ns, ok := LookupNamespace(el, prefix)
	if !ok && prefix != "" {
		return QName{}, fmt.Errorf("prefix %q of %q is not declared", prefix, value)
	}
	return QName{Space: ns, Local: local}, nil
}

// LookupNamespace finds the namespace bound to prefix at el ("" = default namespace).
func LookupNamespace(el *etree.Element, prefix string) (string, bool) {
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			if prefix == "" && a.Space == "" && a.Key == "xmlns" {
				return a.Value, true
			}
			if prefix != "" && a.Space == "xmlns" && a.Key == prefix {
				return a.Value, true
			}
		}
	}
	if prefix == "xml" {
		return "http://www.w3.org/XML/1998/namespace", true
	}
	return "", false
}

// InScopeNamespaces returns every prefix → namespace binding in scope at el.
func InScopeNamespaces(el *etree.Element) map[string]string {
	out := map[string]string{}
	for e := el; e != nil; e = e.Parent() {
		for _, a := range e.Attr {
			var prefix string
			switch {
			case a.Space == "xmlns":
				prefix = a.Key
			case a.Space == "" && a.Key == "xmlns":
				prefix = ""
			default:
				continue
			}
			if _, seen := out[prefix]; !seen {
				out[prefix] = a.Value
			}
		}
	}
	return out
}

// PruneNamespaces removes namespace declarations from el's subtree that no element
// or attribute name and no text (a QName value) there uses, for display.
func PruneNamespaces(el *etree.Element) {
	used := map[string]bool{}
	var collect func(e *etree.Element)
	collect = func(e *etree.Element) {
		used[e.Space] = true
		for _, a := range e.Attr {
			if a.Space != "" && a.Space != "xmlns" {
				used[a.Space] = true
			}
			if p, _, ok := strings.Cut(a.Value, ":"); ok && a.Space != "xmlns" && !(a.Space == "" && a.Key == "xmlns") {
				used[p] = true
			}
		}
		if p, _, ok := strings.Cut(strings.TrimSpace(e.Text()), ":"); ok {
			used[p] = true
		}
		for _, c := range e.ChildElements() {
			collect(c)
		}
	}
	collect(el)
	var prune func(e *etree.Element)
	prune = func(e *etree.Element) {
		kept := e.Attr[:0]
		for _, a := range e.Attr {
			switch {
			case a.Space == "xmlns" && !used[a.Key]:
				continue
			case a.Space == "" && a.Key == "xmlns" && !used[""]:
				continue
			}
			kept = append(kept, a)
		}
		e.Attr = kept
		for _, c := range e.ChildElements() {
			prune(c)
		}
	}
	prune(el)
}
