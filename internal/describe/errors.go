package describe

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	xsdvalidate "github.com/terminalstatic/go-xsd-validate"

	"github.com/vws-grid/vws/internal/errdefs"
)

// ErrClosed is returned by Validate after Close.
var ErrClosed = errors.New("describe: validator is closed")

func newMeta(path, reason string) *errdefs.MetadataError {
	return &errdefs.MetadataError{Path: path, Reason: reason}
}

// libxml2's schema validity messages start with the element (and attribute) they are
// about: "Element '{ns}local', attribute 'a': ...".
var (
	subjectRE = regexp.MustCompile(`^Element '(?:\{([^}]*)\})?([^']*)'(?:, attribute '([^']*)')?: `)
	// A namespace-qualified name in Clark notation. Sets of enumeration values are
	// written {'a', 'b'} and never match: a namespace name has no quotes or spaces.
	clarkRE = regexp.MustCompile(`\{([A-Za-z][A-Za-z0-9+.\-]*:[^{}'"\s]*)\}([A-Za-z_][A-Za-z0-9_.\-]*)`)
	facetRE = regexp.MustCompile(`^\[facet '([A-Za-z]+)'\]`)
	// A quoted value too long to repeat in a fault: libxml2 quotes the whole value.
	longRE = regexp.MustCompile(`'[^']{81,}'`)
)

// maxQuoted is how much of a long value a reason repeats.
const maxQuoted = 60

// maxAlso bounds how many further problems one error lists besides the first;
// maxAttributed how many libxml2 errors are traced to their element at all.
const (
	maxAlso       = 3
	maxAttributed = 16
)

// problem is one libxml2 error, attributed to an element.
type problem struct {
	n       *node
	attr    string // the attribute the message is about, if any
	message string // readable: no namespace URIs, no "Element '...': " prefix
}

// schemaError turns go-xsd-validate's errors into a MetadataError naming the element
// of the first problem; the others are summarised in the reason so that a client can
// fix them in one round trip.
func (v *Validator) schemaError(s *scanned, err error) error {
	var ve xsdvalidate.ValidationError
	var pe xsdvalidate.XmlParserError
	switch {
	case errors.As(err, &ve):
	case errors.As(err, &pe):
		// encoding/xml accepted the document but libxml2 did not (for example a duplicate
		// attribute, which encoding/xml lets through).
		return metaErr("/", "the description is not well-formed XML (libxml2: %s). Correct the XML syntax", pe.Message)
	default:
		return fmt.Errorf("describe: libxml2 failed: %w", err)
	}
	// Lax content can make libxml2 report an error per element, tens of thousands:
	// only the first few are attributed (through an index of lines), the rest counted.
	var probs []problem
	unattributed := 0
	var byLine map[int]*node
	for _, e := range ve.Errors {
		if e.Level < 2 { // XML_ERR_WARNING: not a validity error
			continue
		}
		if len(probs) == maxAttributed {
			unattributed++
			continue
		}
		if byLine == nil {
			byLine = make(map[int]*node, len(s.nodes))
			for _, n := range s.nodes {
				byLine[n.line] = n
			}
		}
		probs = append(probs, s.attribute(e, byLine))
	}
	if len(probs) == 0 {
		return nil
	}
	first := probs[0]
	var reasons []string
	seen := map[string]bool{}
	for _, p := range probs {
		if p.n == first.n && !seen[p.message] {
			seen[p.message] = true
			reasons = append(reasons, strings.TrimSuffix(p.message, "."))
		}
	}
	reason := strings.Join(reasons, "; ") + ". " + v.advice(first)
	var also []string
	others := unattributed
	blamed := map[*node]bool{first.n: true}
	for _, p := range probs {
		if blamed[p.n] {
			continue
		}
		blamed[p.n] = true
		if len(also) < maxAlso {
			also = append(also, p.n.path()+": "+strings.TrimSuffix(p.message, "."))
		} else {
			others++
		}
	}
	if len(also) > 0 {
		reason += " Also: " + strings.Join(also, "; ")
		if others > 0 {
			reason += fmt.Sprintf("; and %d more problems", others)
		}
		reason += "."
	}
	return fmt.Errorf("workspace description: %w", newMeta(first.n.path(), reason))
}

// attribute finds the element a libxml2 error is about: the element of that name whose
// start tag ends on the reported line (unique, see scan). Beyond line 65535, where
// libxml2's 16-bit line numbers saturate, it is the first element of that name from
// there on; failing everything, the root.
func (s *scanned) attribute(e xsdvalidate.StructError, byLine map[int]*node) problem {
	p := problem{message: e.Message}
	var ns, local string
	haveNS := false
	if m := subjectRE.FindStringSubmatch(e.Message); m != nil {
		ns, local, p.attr = m[1], m[2], m[3]
		haveNS = true
		p.message = e.Message[len(m[0]):]
		if p.attr != "" {
			p.message = "attribute '" + p.attr + "': " + p.message
		}
	} else {
		local = e.NodeName
	}
	p.message = readable(p.message)
	match := func(n *node) bool { return n.local == local && (!haveNS || n.ns == ns) }
	if n := byLine[e.Line]; n != nil && e.Line < 65535 && match(n) {
		p.n = n
		return p
	}
	for _, n := range s.nodes {
		if n.line >= min(e.Line, 65535) && match(n) {
			p.n = n
			return p
		}
	}
	p.n = s.root
	return p
}

// readable replaces {namespace}name with the conventional prefix (or just the name
// for namespaces without one).
func readable(msg string) string {
	msg = clarkRE.ReplaceAllStringFunc(msg, func(s string) string {
		m := clarkRE.FindStringSubmatch(s)
		if p, ok := prefixes[m[1]]; ok {
			return p + ":" + m[2]
		}
		return m[2]
	})
	return longRE.ReplaceAllStringFunc(msg, func(q string) string {
		v := []rune(q[1 : len(q)-1])
		return fmt.Sprintf("'%s...' (%d characters)", string(v[:maxQuoted]), len(v))
	})
}

// advice says what to do about a problem, from the kind of message and, for values,
// the documentation of the element's type in the schema.
func (v *Validator) advice(p problem) string {
	msg := p.message
	if p.attr != "" {
		msg = strings.TrimPrefix(msg, "attribute '"+p.attr+"': ")
	}
	file := v.model.file[p.n.ns]
	if file == "" {
		file = "vws/workspace.xsd"
	}
	switch {
	case strings.Contains(msg, "This element is not expected. Expected is"):
		return "Remove the element, or move it: the order of elements is fixed by schema/" + file + "."
	case strings.Contains(msg, "This element is not expected"):
		return "Remove the element; the description has no such element there (schema/" + file + ")."
	case strings.Contains(msg, "Missing child element"):
		return "Add the missing element."
	case strings.Contains(msg, "is not allowed") && strings.Contains(msg, "attribute"):
		return "Remove the attribute."
	case strings.Contains(msg, "is required but missing"):
		return "Add the attribute."
	case strings.Contains(msg, "content type is a simple type"), strings.Contains(msg, "element-only"):
		return "Remove the text or child elements the element does not allow."
	}
	facet := ""
	if m := facetRE.FindStringSubmatch(msg); m != nil {
		facet = m[1]
	}
	if facet == "enumeration" {
		return "Use one of the listed values."
	}
	if p.attr == "" {
		if t := p.n.typ; t != "" {
			if d := v.model.docs[t]; d != "" {
				return "Send a value of type " + typeName(t) + ": " + strings.TrimSuffix(d, ".") + "."
			}
			if name := typeName(t); name != "" && facet != "" {
				return "Send a value that type " + name + " (schema/" + file + ") allows."
			}
		}
	}
	switch facet {
	case "minInclusive", "maxInclusive", "minExclusive", "maxExclusive":
		return "Send a value within the allowed range."
	case "pattern":
		return "Send a value the pattern accepts."
	case "length", "minLength", "maxLength":
		return "Send a value of allowed length."
	}
	return "Correct it so that it conforms to schema/" + file + "."
}
