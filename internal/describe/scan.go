package describe

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
)

// xmlNS is the namespace the xml prefix is bound to by definition.
const xmlNS = "http://www.w3.org/XML/1998/namespace"

const xsiNS = "http://www.w3.org/2001/XMLSchema-instance"

// Bounds of the scan. libxml2 2.9 and etree find duplicate attributes and namespace
// bindings by linear search, so one element with thousands of attributes costs seconds
// (6,400 attributes: 7 s). A description has a handful.
const (
	maxAttrs   = 64  // attributes (namespace declarations included) of one element
	maxNSDecls = 128 // namespace declarations in the whole document
)

// prefixes are the conventional prefixes of paths and messages. xs only appears in
// libxml2's messages (type names such as xs:int).
var prefixes = map[string]string{
	vwsns.Workspace:                    "vw",
	vwsns.Hardware:                     "hw",
	vwsns.Network:                      "net",
	vwsns.Software:                     "sw",
	vwsns.Capability:                   "cap",
	"http://www.w3.org/2001/XMLSchema": "xs",
}

// node is one element of a scanned description: its expanded name, where libxml2 will
// say it is, and its text. The tree is what paths, the semantic checks and Description
// are computed from.
type node struct {
	el        *etree.Element // the same element in the Raw tree
	ns, local string
	prefix    string // as written in the document; only for paths of foreign elements
	attrs     []attr
	parent    *node
	kids      []*node
	text      []byte // all character data directly inside the element
	// line is the line of the '>' that ends the start tag in the bytes given to libxml2:
	// the line libxml2 records for the element and reports in its errors.
	line int
	// xsiType is the type an xsi:type attribute names ("{ns}local"), typ the type the
	// element is validated against (set by model.assignTypes).
	xsiType, typ string
	// part is the element's particle in its parent's content model (nil in lax content).
	part *particle
}

type attr struct{ ns, local, value string }

// scanned is a document that passed the pre-checks and Go's well-formedness check.
type scanned struct {
	data  []byte  // the document (BOM removed, line ends normalised)
	lib   []byte  // what libxml2 validates: data with newlines inserted (see scan)
	root  *node   //
	nodes []*node // document order
	// doc is the document as etree reads it, built in the same pass (etree's own reader
	// would parse the document a second time, and parsing is the larger part of the cost).
	doc *etree.Document
}

// metaErr returns an error wrapping a MetadataError; every refusal of a description is
// one, so the SOAP adapter maps it to a WorkspaceMetadataFault that names the path.
func metaErr(path, format string, args ...any) error {
	return fmt.Errorf("workspace description: %w", newMeta(path, fmt.Sprintf(format, args...)))
}

// precheck refuses, before any parser sees the document, what no description needs
// and what could make a parser do more than parse: oversized input, DTDs (entity
// expansion, external entities), encodings other than UTF-8 (a second decoder, and
// byte-level checks such as the DTD scan that would not see markup in UTF-16). It
// returns the document with a UTF-8 byte order mark removed and line ends normalised,
// which XML defines as equivalent.
func precheck(data []byte, lim Limits) ([]byte, error) {
	return precheckSized(data, len(data), lim)
}

// precheckSized is precheck of data its sender sent as size bytes (a description
// taken from a parsed message is written again, escapes and all).
func precheckSized(data []byte, size int, lim Limits) ([]byte, error) {
	if size > lim.MaxBytes {
		return nil, metaErr("/", "the description is %d bytes; at most %d are accepted. Send a smaller description (large file contents belong in an image)", size, lim.MaxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, metaErr("/", "the description is empty. Send a vw:virtualWorkspace element")
	}
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return nil, metaErr("/", "the description is UTF-16; only UTF-8 is accepted. Send it encoded as UTF-8")
	}
	data = bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
	if !utf8.Valid(data) {
		return nil, metaErr("/", "the description is not valid UTF-8; only UTF-8 is accepted. Send it encoded as UTF-8")
	}
	// XML 1.0 allows no control characters but tab, LF and CR. NUL in particular would
	// let libxml2 guess UCS-4 or UTF-16 from the first bytes.
	for i, b := range data {
		if b < 0x20 && b != '\t' && b != '\n' && b != '\r' {
			return nil, metaErr("/", "control character 0x%02X at byte %d; XML does not allow it. Remove it (binary file content must be base64-encoded)", b, i)
		}
	}
	if enc, ok := declaredEncoding(data); ok && !strings.EqualFold(enc, "UTF-8") {
		return nil, metaErr("/", "the XML declaration says encoding %q; only UTF-8 is accepted. Send the description as UTF-8 and declare encoding=\"UTF-8\" or nothing", enc)
	}
	if hasDTD(data) {
		return nil, errDTD()
	}
	if bytes.IndexByte(data, '\r') >= 0 {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
		data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	}
	return data, nil
}

func errDTD() error {
	return metaErr("/", "the description contains a DTD (<!DOCTYPE or <!ENTITY); DTDs and entity declarations are not accepted. Remove the declaration")
}

var encodingRE = regexp.MustCompile(`^<\?xml[ \t\n\r]+[^>]*?encoding[ \t\n\r]*=[ \t\n\r]*["']([^"']*)["']`)

// declaredEncoding returns the encoding of the XML declaration, if any.
func declaredEncoding(data []byte) (string, bool) {
	if !bytes.HasPrefix(data, []byte("<?xml")) {
		return "", false
	}
	end := bytes.Index(data, []byte("?>"))
	if end < 0 {
		return "", false // not a declaration the parsers accept either
	}
	m := encodingRE.FindSubmatch(data[:end])
	if m == nil {
		return "", false
	}
	return string(m[1]), true
}

// hasDTD finds "<!" markup that is neither a comment nor a CDATA section, skipping
// comments, CDATA sections and processing instructions in document order so that a
// "<!DOCTYPE" inside file content in CDATA is not mistaken for one (and one after a
// processing instruction is not missed). Only a DOCTYPE declaration can be such markup
// in a well-formed document.
func hasDTD(data []byte) bool {
	for i := 0; i < len(data); {
		j := bytes.IndexByte(data[i:], '<')
		if j < 0 {
			return false
		}
		i += j
		rest := data[i:]
		var end []byte
		var skip int
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			end, skip = []byte("-->"), 4
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end, skip = []byte("]]>"), 9
		case bytes.HasPrefix(rest, []byte("<?")):
			end, skip = []byte("?>"), 2
		case bytes.HasPrefix(rest, []byte("<!")):
			return true
		default:
			i++
			continue
		}
		k := bytes.Index(rest[skip:], end)
		if k < 0 {
			return false // unterminated: not well-formed, and nothing after it is markup
		}
		i += skip + k + len(end)
	}
	return false
}

// scan parses data with encoding/xml before libxml2 sees it: it enforces the depth
// limit, resolves namespaces, builds the element tree, and records for each element the
// line libxml2 will report for it.
//
// libxml2 (through go-xsd-validate) reports an error's line and element name, not its
// column, and records for an element the line of the '>' ending its start tag. When two
// start tags end on one line (a one-line document), the line does not say which element
// is meant. scan therefore gives libxml2 a copy of the document with a newline inserted
// before every start tag that begins on the line where the previous start tag ended, so
// that every element ends its start tag on a line of its own. That whitespace lands
// between elements: in element-only content it is ignorable, in mixed content (the
// lax EPR) any text is allowed, and in simple content an element child is already an
// error, so validity does not change. The remaining limitation: libxml2 stores lines in
// 16 bits, so for elements at line 65535 and beyond the path is the first element of
// that name from there on (possible only in documents of tens of thousands of lines).
func scan(data []byte, lim Limits) (*scanned, error) {
	s := &scanned{data: data, doc: etree.NewDocument()}
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	// CharsetReader stays nil: a declared encoding other than UTF-8 is an error (precheck
	// has refused those already).

	var (
		stack      []*node
		top        = &s.doc.Element // where the next token goes in the etree tree
		ns         nsScope
		countedOff int64 // lines are counted incrementally: offsets only grow
		countedNL  int
		inserted   []int64 // offsets of the inserted newlines
		prevEnd    = -1    // original line where the previous start tag ended
	)
	lineAt := func(off int64) int {
		countedNL += bytes.Count(data[countedOff:off], []byte{'\n'})
		countedOff = off
		return countedNL + 1
	}
	for {
		start := dec.InputOffset()
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, metaErr("/", "the description is not well-formed XML: line %d: %s. Correct the XML syntax", se.Line, se.Msg)
			}
			return nil, metaErr("/", "the description is not well-formed XML: %v. Correct the XML syntax", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= lim.MaxDepth {
				return nil, metaErr("/", "elements are nested more than %d deep; a description needs far fewer levels. Flatten the document", lim.MaxDepth)
			}
			if len(stack) == 0 && s.root != nil {
				return nil, metaErr("/", "the document has more than one root element. Send one vw:virtualWorkspace element")
			}
			n, err := ns.open(t)
			if err != nil {
				return nil, err
			}
			end := dec.InputOffset()
			if lineAt(start) == prevEnd {
				inserted = append(inserted, start)
			}
			prevEnd = lineAt(end)
			n.line = prevEnd + len(inserted)
			// As etree's reader does it (etree.Element.readFrom), so that Raw is what
			// doc.ReadFromBytes would return for a document that passes validation
			// (etree keeps the last of duplicate attributes; libxml2 refuses them).
			n.el = etree.NewElement(t.Name.Local)
			n.el.Space, n.el.Tag = t.Name.Space, t.Name.Local
			for _, a := range t.Attr {
				n.el.CreateAttr(rawName(a.Name), a.Value)
			}
			top.AddChild(n.el)
			top = n.el
			if len(stack) > 0 {
				n.parent = stack[len(stack)-1]
				n.parent.kids = append(n.parent.kids, n)
			} else {
				s.root = n
			}
			stack = append(stack, n)
			s.nodes = append(s.nodes, n)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, metaErr("/", "the description is not well-formed XML: end tag </%s> without a start tag. Correct the XML syntax", rawName(t.Name))
			}
			open := stack[len(stack)-1]
			if t.Name.Space != open.prefix || t.Name.Local != open.local {
				return nil, metaErr("/", "the description is not well-formed XML: end tag </%s> at line %d does not match start tag <%s>. Correct the XML syntax", rawName(t.Name), lineAt(dec.InputOffset()), rawName(xml.Name{Space: open.prefix, Local: open.local}))
			}
			stack = stack[:len(stack)-1]
			ns.close()
			top = top.Parent()
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimLeft(t, " \t\n")) != 0 {
					return nil, metaErr("/", "the document has text outside its root element. Send only the vw:virtualWorkspace element")
				}
			} else {
				n := stack[len(stack)-1]
				n.text = append(n.text, t...)
			}
			text := string(t)
			top.CreateText("").SetData(text) // SetData marks whitespace as etree's reader does
		case xml.Comment:
			top.CreateComment(string(t))
		case xml.ProcInst:
			top.CreateProcInst(t.Target, string(t.Inst))
		case xml.Directive:
			return nil, errDTD() // hasDTD should have caught it; the parser has the last word
		}
	}
	if len(stack) > 0 {
		return nil, metaErr("/", "the description is not well-formed XML: it ends inside <%s>. Send the complete document", rawName(xml.Name{Space: stack[len(stack)-1].prefix, Local: stack[len(stack)-1].local}))
	}
	if s.root == nil {
		return nil, metaErr("/", "the document has no element. Send a vw:virtualWorkspace element")
	}
	s.lib = data
	if len(inserted) > 0 {
		s.lib = make([]byte, 0, len(data)+len(inserted))
		prev := int64(0)
		for _, off := range inserted {
			s.lib = append(s.lib, data[prev:off]...)
			s.lib = append(s.lib, '\n')
			prev = off
		}
		s.lib = append(s.lib, data[prev:]...)
	}
	return s, nil
}

func rawName(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// nsScope resolves namespace prefixes (RawToken does not) and checks that every prefix
// used is declared, which encoding/xml does not check either.
type nsScope struct {
	bindings []binding
	marks    []int
	decls    int
	slab     []node // nodes are allocated in chunks: one allocation instead of one per element
}

func (s *nsScope) alloc() *node {
	if len(s.slab) == cap(s.slab) {
		s.slab = make([]node, 0, 64)
	}
	s.slab = s.slab[:len(s.slab)+1]
	return &s.slab[len(s.slab)-1]
}

type binding struct{ prefix, uri string }

func (s *nsScope) lookup(prefix string) (string, bool) {
	switch prefix {
	case "xml":
		return xmlNS, true
	case "xmlns":
		return "", false
	}
	for i := len(s.bindings) - 1; i >= 0; i-- {
		if s.bindings[i].prefix == prefix {
			return s.bindings[i].uri, true
		}
	}
	return "", prefix == "" // no default namespace declared: no namespace
}

func (s *nsScope) open(t xml.StartElement) (*node, error) {
	s.marks = append(s.marks, len(s.bindings))
	if len(t.Attr) > maxAttrs {
		return nil, metaErr("/", "<%s> has %d attributes; at most %d are accepted. Remove the extra attributes", rawName(t.Name), len(t.Attr), maxAttrs)
	}
	// encoding/xml splits a name at its first colon and accepts more; XML namespaces
	// allow one, between two non-empty parts.
	if err := checkQName(t.Name); err != nil {
		return nil, err
	}
	for _, a := range t.Attr {
		if err := checkQName(a.Name); err != nil {
			return nil, err
		}
	}
	for _, a := range t.Attr {
		switch {
		case a.Name.Space == "xmlns":
			if a.Value == "" {
				return nil, metaErr("/", "namespace prefix %q is undeclared with xmlns:%s=\"\" on <%s>; XML 1.0 namespaces do not allow that. Remove the declaration", a.Name.Local, a.Name.Local, rawName(t.Name))
			}
			if a.Name.Local == "xml" || a.Name.Local == "xmlns" {
				if a.Name.Local == "xml" && a.Value == xmlNS {
					continue
				}
				return nil, metaErr("/", "the reserved prefix %q is redeclared on <%s>. Remove the declaration", a.Name.Local, rawName(t.Name))
			}
			s.bindings = append(s.bindings, binding{a.Name.Local, a.Value})
			s.decls++
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			s.bindings = append(s.bindings, binding{"", a.Value})
			s.decls++
		}
	}
	if s.decls > maxNSDecls {
		return nil, metaErr("/", "the document declares more than %d namespaces; a description needs a few. Declare each namespace once, on the root element", maxNSDecls)
	}
	uri, ok := s.lookup(t.Name.Space)
	if !ok {
		return nil, metaErr("/", "namespace prefix %q of <%s> is not declared. Declare it with xmlns:%s=\"...\"", t.Name.Space, rawName(t.Name), t.Name.Space)
	}
	n := s.alloc()
	*n = node{ns: intern(uri), local: t.Name.Local, prefix: t.Name.Space}
	for _, a := range t.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		var auri string
		if a.Name.Space != "" { // unprefixed attributes are in no namespace
			if auri, ok = s.lookup(a.Name.Space); !ok {
				return nil, metaErr("/", "namespace prefix %q of attribute %s on <%s> is not declared. Declare it with xmlns:%s=\"...\"", a.Name.Space, rawName(a.Name), rawName(t.Name), a.Name.Space)
			}
		}
		n.attrs = append(n.attrs, attr{auri, a.Name.Local, a.Value})
		if auri == xsiNS && a.Name.Local == "type" {
			// Resolved here, while this element's namespace bindings are in scope.
			prefix, local, ok := strings.Cut(strings.TrimSpace(a.Value), ":")
			if !ok {
				prefix, local = "", prefix
			}
			if tns, ok := s.lookup(prefix); ok {
				n.xsiType = typeKey(qname{tns, local})
			}
		}
	}
	return n, nil
}

func checkQName(n xml.Name) error {
	if n.Local == "" || strings.IndexByte(n.Local, ':') >= 0 {
		return metaErr("/", "%q is not a valid qualified name (at most one colon, between a prefix and a local name). Correct the name", rawName(n))
	}
	return nil
}

// intern returns the package's own copy of a vws namespace name: the nodes are
// compared with those names all the time, and equal strings at the same address
// compare without reading them.
func intern(uri string) string {
	switch uri {
	case vwsns.Workspace:
		return vwsns.Workspace
	case vwsns.Hardware:
		return vwsns.Hardware
	case vwsns.Network:
		return vwsns.Network
	case vwsns.Software:
		return vwsns.Software
	case vwsns.Capability:
		return vwsns.Capability
	}
	return uri
}

func (s *nsScope) close() {
	s.bindings = s.bindings[:s.marks[len(s.marks)-1]]
	s.marks = s.marks[:len(s.marks)-1]
}

// displayName is an element's name in a path or message: the conventional prefix for
// the vws namespaces, the bare name for no namespace, the document's own prefix for
// other namespaces, and Q{uri}name (XPath 3.0) where that prefix would be misleading.
func displayName(ns, local, docPrefix string) string {
	if p, ok := prefixes[ns]; ok {
		return p + ":" + local
	}
	if ns == "" {
		return local
	}
	if docPrefix != "" && !conventional(docPrefix) {
		return docPrefix + ":" + local
	}
	return "Q{" + ns + "}" + local
}

func conventional(prefix string) bool {
	for _, p := range prefixes {
		if p == prefix {
			return true
		}
	}
	return false
}

func (n *node) name() string { return displayName(n.ns, n.local, n.prefix) }

// path is the element's path: /vw:virtualWorkspace/hw:hardware/hw:disk[2]/hw:target,
// with a 1-based position wherever siblings of the same name repeat.
func (n *node) path() string {
	if n == nil {
		return "/"
	}
	var segs []string
	for c := n; c != nil; c = c.parent {
		seg := c.name()
		if c.parent != nil {
			pos, count := 0, 0
			for _, k := range c.parent.kids {
				if k.ns == c.ns && k.local == c.local {
					count++
					if k == c {
						pos = count
					}
				}
			}
			if count > 1 {
				seg += "[" + strconv.Itoa(pos) + "]"
			}
		}
		segs = append(segs, seg)
	}
	var b strings.Builder
	for i := len(segs) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(segs[i])
	}
	return b.String()
}

// child returns the first child element with the given name, or nil; like every node
// accessor it accepts a nil receiver, so optional parts read without checks.
func (n *node) child(ns, local string) *node {
	if n == nil {
		return nil
	}
	for _, k := range n.kids {
		if k.ns == ns && k.local == local {
			return k
		}
	}
	return nil
}

func (n *node) children(ns, local string) []*node {
	if n == nil {
		return nil
	}
	var out []*node
	for _, k := range n.kids {
		if k.ns == ns && k.local == local {
			out = append(out, k)
		}
	}
	return out
}

// str is the element's value as the schema validated it: xs:string-derived types keep
// whitespace, so the text is returned as is.
func (n *node) str() string {
	if n == nil {
		return ""
	}
	return string(n.text)
}

// attr returns the value of an unqualified attribute.
func (n *node) attr(local string) (string, bool) {
	if n == nil {
		return "", false
	}
	for _, a := range n.attrs {
		if a.ns == "" && a.local == local {
			return a.value, true
		}
	}
	return "", false
}
