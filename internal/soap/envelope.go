// Package soap reads and writes SOAP 1.1 envelopes. It refuses DTDs and entity
// declarations outright, so nothing a client sends can expand or fetch anything.
package soap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"

	"github.com/beevik/etree"
)

// Namespaces of SOAP 1.1 and (only to recognise and refuse it) SOAP 1.2.
const (
	NS11 = "http://schemas.xmlsoap.org/soap/envelope/"
	NS12 = "http://www.w3.org/2003/05/soap-envelope"
	// ActorNext is the SOAP 1.1 actor that means "the next SOAP node", i.e. us.
	ActorNext = "http://schemas.xmlsoap.org/soap/actor/next"
)

// Parse errors, each mapped to a SOAP fault by the container.
var (
	ErrMalformed       = errors.New("request is not a well-formed SOAP 1.1 envelope")
	ErrDTD             = errors.New("DTDs and entity declarations are not accepted")
	ErrVersionMismatch = errors.New("SOAP version mismatch")
)

// Envelope is a parsed request envelope.
type Envelope struct {
	Doc     *etree.Document
	Root    *etree.Element
	Headers []*etree.Element // header blocks, in order
	Body    *etree.Element
	// Payload is the first element child of Body; nil for an empty body.
	Payload *etree.Element
}

// MaxDepth bounds element nesting; a SOAP request has no reason to be deep.
const MaxDepth = 64

// MaxAttributes bounds the attributes (namespace declarations included) of one
// element: resolving a prefix scans an element's attributes and its ancestors', so a
// header of tens of thousands of them made every look-up cost as much.
const MaxAttributes = 256

// Parse reads one SOAP 1.1 envelope from data.
func Parse(data []byte) (*Envelope, error) {
	data, transcoded := toUTF8(data)
	if hasDTD(data) {
		return nil, ErrDTD
	}
	charsets := utf8Only
	if transcoded {
		// The declaration still names UTF-16; the bytes are UTF-8 now.
		charsets = func(charset string, input io.Reader) (io.Reader, error) {
			if strings.HasPrefix(strings.ToLower(charset), "utf-16") {
				return input, nil
			}
			return utf8Only(charset, input)
		}
	}
	doc := etree.NewDocument()
	doc.ReadSettings = etree.ReadSettings{MaxDepth: MaxDepth, CharsetReader: charsets}
	if err := doc.ReadFromBytes(data); err != nil {
		if errors.Is(err, etree.ErrMaxDepth) {
			// The library's wording names neither the bound nor what to change.
			return nil, fmt.Errorf("%w: elements are nested more than %d deep; a SOAP request has no reason to be deeper",
				ErrMalformed, MaxDepth)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Anywhere in the tree: hasDTD, a byte scan, can be misled (a "<!--" inside a
	// processing instruction hides what follows the instruction from it).
	if hasDirective(doc.Child) {
		return nil, ErrDTD
	}
	if el := tooManyAttributes(doc.Child); el != nil {
		return nil, fmt.Errorf("%w: element %s has %d attributes; at most %d are accepted (a SOAP message has no reason for more)",
			ErrMalformed, el.FullTag(), len(el.Attr), MaxAttributes)
	}
	if err := undeclaredPrefix(doc.Child, map[string]int{}); err != nil {
		return nil, err
	}
	env := &Envelope{Doc: doc}
	for _, t := range doc.Child {
		switch t := t.(type) {
		case *etree.Directive:
			return nil, ErrDTD
		case *etree.Element:
			if env.Root != nil {
				return nil, fmt.Errorf("%w: more than one root element", ErrMalformed)
			}
			env.Root = t
		case *etree.CharData:
			if !t.IsWhitespace() {
				return nil, fmt.Errorf("%w: text outside the root element", ErrMalformed)
			}
		}
	}
	root := env.Root
	if root == nil {
		return nil, fmt.Errorf("%w: empty document", ErrMalformed)
	}
	// SOAP 1.1 (and WS-I BP R1009) forbid them; and a reader taking an element's text
	// stops at one, so "2030-01-01T00:00:00<?x?>+05:00" would be read as another time.
	if pi := procInst(root.Child); pi != nil {
		return nil, fmt.Errorf("%w: a processing instruction <?%s?> inside the envelope; SOAP messages hold none", ErrMalformed, pi.Target)
	}
	if root.Tag != "Envelope" {
		return nil, fmt.Errorf("%w: root element is %s, not soap:Envelope", ErrMalformed, root.Tag)
	}
	switch root.NamespaceURI() {
	case NS11:
	case NS12:
		return nil, fmt.Errorf("%w: SOAP 1.2 envelope; this service speaks SOAP 1.1 (%s)", ErrVersionMismatch, NS11)
	default:
		return nil, fmt.Errorf("%w: envelope namespace %q is not SOAP 1.1 (%s)", ErrVersionMismatch, root.NamespaceURI(), NS11)
	}
	for _, c := range root.ChildElements() {
		if c.NamespaceURI() != NS11 {
			if env.Body != nil {
				continue // trailing elements after Body are allowed by SOAP 1.1
			}
			return nil, fmt.Errorf("%w: unexpected %s before soap:Body", ErrMalformed, c.FullTag())
		}
		switch c.Tag {
		case "Header":
			if env.Body != nil || env.Headers != nil {
				return nil, fmt.Errorf("%w: soap:Header must come once, before soap:Body", ErrMalformed)
			}
			env.Headers = c.ChildElements()
			if env.Headers == nil {
				env.Headers = []*etree.Element{}
			}
		case "Body":
			if env.Body != nil {
				return nil, fmt.Errorf("%w: more than one soap:Body", ErrMalformed)
			}
			env.Body = c
		default:
			return nil, fmt.Errorf("%w: unexpected soap:%s", ErrMalformed, c.Tag)
		}
	}
	if env.Body == nil {
		return nil, fmt.Errorf("%w: no soap:Body", ErrMalformed)
	}
	if kids := env.Body.ChildElements(); len(kids) > 0 {
		env.Payload = kids[0]
	}
	return env, nil
}

// hasDirective says whether tokens, or any element among them, hold a "<!" directive
// (DOCTYPE, ENTITY, ELEMENT, …).
// tooManyAttributes finds an element with more than MaxAttributes attributes.
func tooManyAttributes(tokens []etree.Token) *etree.Element {
	for _, t := range tokens {
		if el, ok := t.(*etree.Element); ok {
			if len(el.Attr) > MaxAttributes {
				return el
			}
			if found := tooManyAttributes(el.Child); found != nil {
				return found
			}
		}
	}
	return nil
}

// undeclaredPrefix refuses a name whose prefix is not declared where it is used, and
// xmlns:p="" (Namespaces in XML 1.0): etree reads such a name as in no namespace, and
// a reference parameter using one would be echoed, still undeclared, into a reply.
// scope counts the declarations of each prefix in force.
func undeclaredPrefix(tokens []etree.Token, scope map[string]int) error {
	for _, t := range tokens {
		el, ok := t.(*etree.Element)
		if !ok {
			continue
		}
		for _, a := range el.Attr {
			if a.Space == "xmlns" {
				if a.Value == "" {
					return fmt.Errorf("%w: xmlns:%s=\"\" on element %s; XML 1.0 namespaces do not allow undeclaring a prefix", ErrMalformed, a.Key, el.FullTag())
				}
				scope[a.Key]++
			}
		}
		err := func() error {
			if el.Space != "" && el.Space != "xml" && scope[el.Space] == 0 {
				return fmt.Errorf("%w: the prefix of element %s is not declared", ErrMalformed, el.FullTag())
			}
			for _, a := range el.Attr {
				if a.Space != "" && a.Space != "xmlns" && a.Space != "xml" && scope[a.Space] == 0 {
					return fmt.Errorf("%w: the prefix of attribute %s on element %s is not declared", ErrMalformed, a.FullKey(), el.FullTag())
				}
			}
			return undeclaredPrefix(el.Child, scope)
		}()
		for _, a := range el.Attr {
			if a.Space == "xmlns" {
				scope[a.Key]--
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func hasDirective(tokens []etree.Token) bool {
	for _, t := range tokens {
		switch t := t.(type) {
		case *etree.Directive:
			return true
		case *etree.Element:
			if hasDirective(t.Child) {
				return true
			}
		}
	}
	return false
}

// procInst is the first processing instruction among tokens and their descendants.
func procInst(tokens []etree.Token) *etree.ProcInst {
	for _, t := range tokens {
		switch t := t.(type) {
		case *etree.ProcInst:
			return t
		case *etree.Element:
			if pi := procInst(t.Child); pi != nil {
				return pi
			}
		}
	}
	return nil
}

// hasDTD finds "<!" markup that is neither a comment nor CDATA. The parser would keep a
// DOCTYPE as a directive anyway; refusing it before parsing means an entity declaration
// never reaches the decoder at all.
func hasDTD(data []byte) bool {
	for i := 0; ; {
		j := bytes.Index(data[i:], []byte("<!"))
		if j < 0 {
			return false
		}
		i += j
		rest := data[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return false // unterminated; the parser reports it
			}
			i += 4 + end + 3
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end := bytes.Index(rest[9:], []byte("]]>"))
			if end < 0 {
				return false
			}
			i += 9 + end + 3
		default:
			return true
		}
	}
}

// toUTF8 returns data as UTF-8 without a byte-order mark: XML processors must read
// UTF-8 (a BOM allowed) and UTF-16 (XML 1.0 §4.3.3), which .NET and some gSOAP
// builds send. transcoded is true when data was UTF-16.
func toUTF8(data []byte) (out []byte, transcoded bool) {
	switch {
	case bytes.HasPrefix(data, []byte{0xEF, 0xBB, 0xBF}):
		return data[3:], false
	case bytes.HasPrefix(data, []byte{0xFE, 0xFF}):
		return fromUTF16(data[2:], binary.BigEndian), true
	case bytes.HasPrefix(data, []byte{0xFF, 0xFE}):
		return fromUTF16(data[2:], binary.LittleEndian), true
	case bytes.HasPrefix(data, []byte{0x00, '<', 0x00, '?'}): // UTF-16BE without a BOM (XML 1.0 Appendix F)
		return fromUTF16(data, binary.BigEndian), true
	case bytes.HasPrefix(data, []byte{'<', 0x00, '?', 0x00}):
		return fromUTF16(data, binary.LittleEndian), true
	}
	return data, false
}

func fromUTF16(data []byte, order binary.ByteOrder) []byte {
	units := make([]uint16, len(data)/2)
	for i := range units {
		units[i] = order.Uint16(data[2*i:])
	}
	return []byte(string(utf16.Decode(units)))
}

func utf8Only(charset string, input io.Reader) (io.Reader, error) {
	switch strings.ToLower(charset) {
	case "utf-8", "utf8", "us-ascii", "ascii":
		return input, nil
	}
	return nil, fmt.Errorf("encoding %q is not supported; send UTF-8", charset)
}

// MustUnderstand reports whether header block h demands processing by this node:
// mustUnderstand="1"/"true" and an actor that is absent or "next".
func MustUnderstand(h *etree.Element) bool {
	mu, actor := "", ""
	for _, a := range h.Attr {
		// The name first: resolving the prefix scans the element's attributes.
		if (a.Key != "mustUnderstand" && a.Key != "actor") || a.NamespaceURI() != NS11 {
			continue
		}
		switch a.Key {
		case "mustUnderstand":
			mu = strings.TrimSpace(a.Value)
		case "actor":
			actor = strings.TrimSpace(a.Value)
		}
	}
	if mu != "1" && mu != "true" {
		return false
	}
	return actor == "" || actor == ActorNext
}
