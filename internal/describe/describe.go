// Package describe validates and reads a workspace description: the
// vw:virtualWorkspace element a grid client sends the Factory's Create.
//
// The client is untrusted, so a description goes through four stages, each of which
// refuses with an error wrapping *errdefs.MetadataError (the SOAP adapter's
// WorkspaceMetadataFault) whose Path names the offending element, e.g.
// /vw:virtualWorkspace/hw:hardware/hw:RAM/hw:size:
//
//  1. byte-level pre-checks: size, UTF-8 only, no control characters, no DTD;
//  2. a well-formedness scan with encoding/xml: depth, namespaces, one root element
//     {http://vws.dev/ns/2026/workspace}virtualWorkspace, and the element tree that
//     paths are computed from;
//  3. XML Schema validation against schema/vws/workspace.xsd by libxml2, through
//     github.com/terminalstatic/go-xsd-validate (Go has no XSD validator);
//  4. the rules the schema documents but cannot express (counts, min <= size <= max,
//     uniqueness, safe names and paths).
//
// What libxml2 may do with a document: go-xsd-validate parses it with
// xmlCtxtReadMemory and parser options 0, so no entity substitution (XML_PARSE_NOENT
// off), no DTD loading or DTD validation, no XInclude, and libxml2's default limits
// (XML_PARSE_HUGE off). The library cannot pass XML_PARSE_NONET; instead initLibxml
// installs an external entity loader that refuses http, https and ftp for every parse
// in the process. A document cannot name anything to load anyway: DTDs are refused
// before parsing, XInclude is never processed, and xsi:schemaLocation hints are ignored
// because the schema is given (the tests check that the loader is never called).
//
// The result is a Description: a typed view of what the Factory needs, read from the
// scanned tree with the namespaces resolved (not through the gowsdl types of wsdl/gen,
// whose namespace handling is lossy), plus the validated element as an etree.Element.
package describe

import (
	"fmt"
	"strings"
	"sync"

	"github.com/beevik/etree"
	xsdvalidate "github.com/terminalstatic/go-xsd-validate"

	"github.com/vws-grid/vws/internal/vwsns"
)

// Limits bound what Validate accepts before any parser sees the document.
type Limits struct {
	// MaxBytes bounds the document size. Default 256 KiB: a description is a few KiB;
	// file contents are what can make it larger.
	MaxBytes int
	// MaxDepth bounds element nesting. Default 64: a description nests about 6 deep
	// (EPR content a few more).
	MaxDepth int
}

// DefaultLimits are the limits of NewValidator.
var DefaultLimits = Limits{MaxBytes: 256 << 10, MaxDepth: 64}

// Validator holds the compiled schema; safe for concurrent use.
type Validator struct {
	limits Limits
	model  *model

	// mu guards xsd against Close: Validate holds it shared for the duration of the
	// libxml2 call, so the schema is never freed under a running validation.
	mu  sync.RWMutex
	xsd *xsdvalidate.XsdHandler
}

// NewValidator compiles schema/vws/workspace.xsd (and its imports) from schema.FS.
// Nothing is written to disk: libxml2 reads the schema files from memory through an
// external entity loader (see initLibxml).
func NewValidator() (*Validator, error) {
	return NewValidatorWithLimits(DefaultLimits)
}

// NewValidatorWithLimits is NewValidator with other limits; zero fields take the
// defaults.
func NewValidatorWithLimits(lim Limits) (*Validator, error) {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultLimits.MaxBytes
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = DefaultLimits.MaxDepth
	}
	if err := initLibxml(); err != nil {
		return nil, err
	}
	m, err := loadModel()
	if err != nil {
		return nil, fmt.Errorf("describe: reading the schema: %w", err)
	}
	// ParsErrDefault, never ParsErrVerbose: in verbose mode the library leaves libxml2's
	// thread-local generic error handler pointing at a C stack buffer that is gone once
	// the call returns.
	xsd, err := xsdvalidate.NewXsdHandlerUrl(mainSchemaURL, xsdvalidate.ParsErrDefault)
	if err != nil {
		return nil, fmt.Errorf("describe: compiling %s: %w", mainSchemaURL, err)
	}
	return &Validator{limits: lim, model: m, xsd: xsd}, nil
}

// Close frees the compiled schema. Validate returns ErrClosed afterwards. libxml2
// itself stays initialised for the life of the process.
func (v *Validator) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.xsd != nil {
		v.xsd.Free()
		v.xsd = nil
	}
}

// Validate checks one description (the bytes of a document whose root is
// vw:virtualWorkspace, or of that element alone) and returns the parsed description
// on success. Every refusal of the description wraps *errdefs.MetadataError; other
// errors (ErrClosed, a libxml2 failure) are the service's.
func (v *Validator) Validate(data []byte) (*Description, error) {
	return v.validate(data, len(data))
}

// validate is Validate of data whose sender sent size bytes.
func (v *Validator) validate(data []byte, size int) (*Description, error) {
	data, err := precheckSized(data, size, v.limits)
	if err != nil {
		return nil, err
	}
	s, err := scan(data, v.limits)
	if err != nil {
		return nil, err
	}
	if s.root.ns != vwsns.Workspace || s.root.local != "virtualWorkspace" {
		return nil, metaErr(s.root.path(), "the root element is %s in namespace %q; a description is a virtualWorkspace element in namespace %q. Send a vw:virtualWorkspace element", s.root.local, s.root.ns, vwsns.Workspace)
	}
	if err := v.guard(s); err != nil {
		return nil, err
	}
	if err := v.validateSchema(s); err != nil {
		return nil, err
	}
	if err := v.checkSemantics(s); err != nil {
		return nil, err
	}
	d, err := build(s.root)
	if err != nil {
		return nil, err
	}
	d.Raw = s.doc.Root()
	return d, nil
}

func (v *Validator) validateSchema(s *scanned) error {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.xsd == nil {
		return ErrClosed
	}
	if err := v.xsd.ValidateMem(s.lib, xsdvalidate.ParsErrDefault); err != nil {
		return v.schemaError(s, err)
	}
	return nil
}

// ValidateElement validates a vw:virtualWorkspace element of a parsed message (the
// first child of a fac:Create, say). The namespace declarations it inherits from its
// ancestors are copied onto it first, so that it stands alone as a document.
func (v *Validator) ValidateElement(el *etree.Element) (*Description, error) {
	if el == nil {
		return nil, metaErr("/", "there is no description. Send a vw:virtualWorkspace element")
	}
	c := el.Copy()
	declared := map[string]bool{}
	for _, a := range c.Attr {
		if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			declared[a.FullKey()] = true
		}
	}
	for p := el.Parent(); p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			if (a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns")) && !declared[a.FullKey()] {
				declared[a.FullKey()] = true
				c.CreateAttr(a.FullKey(), a.Value)
			}
		}
	}
	doc := etree.NewDocumentWithRoot(c)
	// Canonical escapes: a CR in text (sent as &#13;, the only way it survives
	// parsing) is written &#xD; and read back as CR, where etree's default writes it
	// raw and the line-end rule of XML reads it back as LF, changing an argument or a
	// file. Quotes stay unescaped, so the size limit is not spent on &quot;.
	doc.WriteSettings.CanonicalText = true
	doc.WriteSettings.CanonicalAttrVal = true
	b, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("describe: serialising the description: %w", err)
	}
	return v.validate(b, len(b)-escapeSurplus(c))
}

// escapeSurplus is how many bytes the canonical writing of el adds to what its
// sender needed to send: each ">" of text is written "&gt;" but may be sent as is.
// The size limit then measures what the client sent, not our re-escaped copy.
func escapeSurplus(el *etree.Element) int {
	n := 0
	for _, t := range el.Child {
		switch t := t.(type) {
		case *etree.CharData:
			if !t.IsCData() {
				n += 3 * strings.Count(t.Data, ">")
			}
		case *etree.Element:
			n += escapeSurplus(t)
		}
	}
	return n
}
