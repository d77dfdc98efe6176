package describe

import (
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/schema"
)

const xsdNS = "http://www.w3.org/2001/XMLSchema"

// descriptionSchemas are the files of the description (workspace.xsd and its imports).
var descriptionSchemas = []string{"vws/workspace.xsd", "vws/hardware.xsd", "vws/network.xsd", "vws/software.xsd", "vws/capability.xsd"}

// model is what the checks after libxml2 need to know of the schema, read from the
// schema itself so that it cannot drift from it: the element structure (which child of
// which type has which type), the counts the schema can only document in prose
// (maxOccurs="unbounded" with "At most N; the service refuses more."), and the
// documentation of simple types, which says what a valid value looks like.
type model struct {
	globals map[qname]string // global element -> type key
	types   map[string]*ctype
	docs    map[string]string // simple type key -> documentation
	file    map[string]string // namespace -> schema file, for advice
	// maxLen is the maxLength facet of simple types, in characters. guard enforces it
	// before libxml2 runs a type's patterns (see guard).
	maxLen map[string]int
}

type qname struct{ ns, local string }

// ctype is a complex type's content: its child elements (a flat sequence: the vws
// schemas use no nested model groups).
type ctype struct {
	kids  map[qname]*particle
	order []qname
	// lax is xs:anyType content (vw:EPR, vw:managerReference): any element may appear,
	// and libxml2 validates those with a global declaration against it.
	lax bool
}

type particle struct {
	typ string // type key; "" for a reference, resolved through globals
	ref bool
	// max is the documented limit of a maxOccurs="unbounded" particle; 0 when there is
	// none (finite maxOccurs are libxml2's business).
	max       int
	unbounded bool
}

var atMostRE = regexp.MustCompile(`(?i)\bat most (\d+)\b`)

func typeKey(q qname) string { return "{" + q.ns + "}" + q.local }

func loadModel() (*model, error) {
	m := &model{globals: map[qname]string{}, types: map[string]*ctype{}, docs: map[string]string{}, file: map[string]string{}, maxLen: map[string]int{}}
	anon := 0
	for _, f := range descriptionSchemas {
		b, err := fs.ReadFile(schema.FS, f)
		if err != nil {
			return nil, err
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(b); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		root := doc.Root()
		tns := root.SelectAttrValue("targetNamespace", "")
		m.file[tns] = f
		resolve := func(e *etree.Element, v string) qname {
			prefix, local, ok := strings.Cut(v, ":")
			if !ok {
				prefix, local = "", v
			}
			key := "xmlns"
			if prefix != "" {
				key = "xmlns:" + prefix
			}
			return qname{root.SelectAttrValue(key, ""), local}
		}
		var complexType func(el *etree.Element, key string)
		complexType = func(el *etree.Element, key string) {
			ct := &ctype{kids: map[qname]*particle{}}
			m.types[key] = ct
			seq := el.SelectElement("xs:sequence")
			if seq == nil {
				if cc := el.SelectElement("xs:complexContent"); cc != nil {
					if ext := cc.SelectElement("xs:extension"); ext != nil {
						seq = ext.SelectElement("xs:sequence")
						ct.lax = resolve(ext, ext.SelectAttrValue("base", "")) == qname{xsdNS, "anyType"}
					}
				}
			}
			if seq == nil {
				return // simple content or xs:anyType: no element children to model
			}
			for _, e := range seq.SelectElements("xs:element") {
				p := &particle{}
				var name qname
				if ref := e.SelectAttrValue("ref", ""); ref != "" {
					name, p.ref = resolve(e, ref), true
				} else {
					name = qname{tns, e.SelectAttrValue("name", "")} // elementFormDefault="qualified"
					if t := e.SelectAttrValue("type", ""); t != "" {
						p.typ = typeKey(resolve(e, t))
					} else if inner := e.SelectElement("xs:complexType"); inner != nil {
						anon++
						p.typ = fmt.Sprintf("anonymous#%d", anon)
						complexType(inner, p.typ)
					}
				}
				if e.SelectAttrValue("maxOccurs", "1") == "unbounded" {
					p.unbounded = true
					if mm := atMostRE.FindStringSubmatch(documentation(e)); mm != nil {
						p.max, _ = strconv.Atoi(mm[1])
					}
				}
				ct.kids[name] = p
				ct.order = append(ct.order, name)
			}
		}
		for _, el := range root.ChildElements() {
			name := el.SelectAttrValue("name", "")
			key := typeKey(qname{tns, name})
			switch el.Tag {
			case "element":
				if t := el.SelectAttrValue("type", ""); t != "" {
					m.globals[qname{tns, name}] = typeKey(resolve(el, t))
				} else if inner := el.SelectElement("xs:complexType"); inner != nil {
					m.globals[qname{tns, name}] = key + "#element"
					complexType(inner, key+"#element")
				}
			case "complexType":
				complexType(el, key)
			case "simpleType":
				if ml := el.FindElement("xs:restriction/xs:maxLength"); ml != nil {
					if n, err := strconv.Atoi(ml.SelectAttrValue("value", "")); err == nil {
						m.maxLen[key] = n
					}
				}
				if d := documentation(el); d != "" {
					m.docs[key] = d
				} else if d := rangeOf(el); d != "" {
					m.docs[key] = d
				}
			}
		}
	}
	return m, nil
}

// documentation is an annotation's text with whitespace collapsed.
func documentation(el *etree.Element) string {
	var parts []string
	for _, d := range el.FindElements("xs:annotation/xs:documentation") {
		parts = append(parts, strings.Fields(d.Text())...)
	}
	return strings.Join(parts, " ")
}

// rangeOf describes an undocumented numeric type by its bounds ("from 1 to 512").
func rangeOf(el *etree.Element) string {
	r := el.SelectElement("xs:restriction")
	if r == nil {
		return ""
	}
	lo, hi := r.SelectElement("xs:minInclusive"), r.SelectElement("xs:maxInclusive")
	switch {
	case lo != nil && hi != nil:
		return "from " + lo.SelectAttrValue("value", "") + " to " + hi.SelectAttrValue("value", "")
	case lo != nil:
		return "at least " + lo.SelectAttrValue("value", "")
	case hi != nil:
		return "at most " + hi.SelectAttrValue("value", "")
	}
	return ""
}

// particle returns the declaration of child under an element of type parentType.
func (m *model) particle(parentType string, child qname) (*particle, string) {
	ct := m.types[parentType]
	if ct == nil {
		return nil, ""
	}
	p := ct.kids[child]
	if p == nil {
		return nil, ""
	}
	if p.ref {
		return p, m.globals[child]
	}
	return p, p.typ
}

// assignTypes sets the type of every node (document order: parents first) as libxml2
// will assess it: the declaration of the element in its parent's content model; in lax
// content (and for elements the content model does not declare) the global
// declaration of that name, if any; and an xsi:type naming a type of the schema wins.
func (m *model) assignTypes(nodes []*node) {
	for _, n := range nodes {
		q := qname{n.ns, n.local}
		var t string
		if n.parent == nil {
			t = m.globals[q]
		} else {
			p, pt := m.particle(n.parent.typ, q)
			if p != nil {
				t, n.part = pt, p
			} else {
				t = m.globals[q]
			}
		}
		if n.xsiType != "" {
			if _, ok := m.types[n.xsiType]; ok {
				t = n.xsiType
			} else if _, ok := m.maxLen[n.xsiType]; ok {
				t = n.xsiType
			}
		}
		n.typ = t
	}
}

// typeName renders a type key as hw:MiB.
func typeName(key string) string {
	if !strings.HasPrefix(key, "{") {
		return ""
	}
	ns, local, _ := strings.Cut(key[1:], "}")
	return displayName(ns, local, "")
}

// limits returns the documented limits of the schema: "type/child" -> N, for tests and
// the report.
func (m *model) limits() map[string]int {
	out := map[string]int{}
	for key, ct := range m.types {
		for name, p := range ct.kids {
			if p.unbounded {
				out[typeName(key)+"/"+displayName(name.ns, name.local, "")] = p.max
			}
		}
	}
	return out
}
