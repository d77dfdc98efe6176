package xpathdoc

import (
	"fmt"
	"slices"
	"strings"

	"github.com/antchfx/xpath"
	"github.com/beevik/etree"
)

// xmlNamespace is the URI the "xml" prefix is always bound to.
const xmlNamespace = "http://www.w3.org/XML/1998/namespace"

type navKind uint8

const (
	kindDoc navKind = iota
	kindElem
	kindAttr
	kindText
	kindComment
)

// nav implements xpath.NodeNavigator over an etree element tree.
//
// The XPath data model it presents: a document node whose only child is
// root; elements; attributes (namespace declarations excluded); text nodes
// (adjacent CharData tokens, CDATA included, are merged into one text node,
// as XPath requires, and empty ones are hidden); comments. Processing
// instructions and directives are invisible.
//
// Field meaning per kind:
//
//	kindDoc:     nothing
//	kindElem:    e = element, p = its parent (nil for root), i = index in p.Child
//	kindAttr:    e, p, i as for the owning element; a = index in e.Attr
//	kindText:    p = parent, i = index in p.Child of the run's first CharData
//	kindComment: p = parent, i = index in p.Child
//
// A nav never writes to the tree, so any number of navigators (in any number
// of goroutines) may walk the same document. All navigators of one
// evaluation share a *budget, which is not safe for concurrent use; the
// xpath library never uses one evaluation from two goroutines.
type nav struct {
	b    *budget
	root *etree.Element
	p    *etree.Element
	e    *etree.Element
	i    int
	a    int
	k    navKind
}

var _ xpath.NodeNavigator = (*nav)(nil)

func newNav(b *budget, root *etree.Element) *nav {
	return &nav{b: b, root: root, k: kindDoc}
}

func (n *nav) NodeType() xpath.NodeType {
	switch n.k {
	case kindDoc:
		return xpath.RootNode
	case kindElem:
		return xpath.ElementNode
	case kindAttr:
		return xpath.AttributeNode
	case kindText:
		return xpath.TextNode
	default:
		return xpath.CommentNode
	}
}

func (n *nav) LocalName() string {
	switch n.k {
	case kindElem:
		return n.e.Tag
	case kindAttr:
		return n.e.Attr[n.a].Key
	}
	return ""
}

// Prefix returns the prefix as written in the document. The xpath library
// only compares it for name tests that carry no namespace URI, which the
// compiler in this package never produces (unprefixed name tests are bound
// to the empty namespace URI), so it only shows up through name().
func (n *nav) Prefix() string {
	switch n.k {
	case kindElem:
		return n.e.Space
	case kindAttr:
		return n.e.Attr[n.a].Space
	}
	return ""
}

// NamespaceURL returns the namespace URI of an element or attribute; the
// xpath library uses it for name tests and namespace-uri().
func (n *nav) NamespaceURL() string {
	switch n.k {
	case kindElem:
		return n.resolve(n.e, n.e.Space, true)
	case kindAttr:
		if sp := n.e.Attr[n.a].Space; sp != "" {
			return n.resolve(n.e, sp, false)
		}
	}
	return ""
}

// resolve finds the URI bound to prefix in scope at e ("" = default
// namespace, consulted only for elements). Every element inspected costs
// one step. Declarations above root (e.g. on an enclosing document) are in
// scope too.
func (n *nav) resolve(e *etree.Element, prefix string, elem bool) string {
	if prefix == "xml" {
		return xmlNamespace
	}
	if prefix == "" && !elem {
		return ""
	}
	for ; e != nil; e = e.Parent() {
		n.b.tick(1)
		for _, a := range e.Attr {
			if prefix == "" {
				if a.Space == "" && a.Key == "xmlns" {
					return a.Value
				}
			} else if a.Space == "xmlns" && a.Key == prefix {
				return a.Value
			}
		}
	}
	return ""
}

// Value returns the XPath string-value of the current node. Each token
// visited costs one step and its text one more per 64 bytes, so string(/) on
// a large document is not free, and neither is one large text node: the
// library copies strings (concat, translate) without moving the navigator.
func (n *nav) Value() string {
	switch n.k {
	case kindDoc:
		return n.elemText(n.root)
	case kindElem:
		return n.elemText(n.e)
	case kindAttr:
		return n.charged(n.e.Attr[n.a].Value)
	case kindText:
		return n.runText(n.p, n.i)
	case kindComment:
		return n.charged(n.p.Child[n.i].(*etree.Comment).Data)
	}
	return ""
}

// textStepBytes is how many bytes of text cost one step.
const textStepBytes = 64

// charged charges the text s and returns it.
func (n *nav) charged(s string) string {
	n.b.tick(len(s) / textStepBytes)
	return s
}

func (n *nav) elemText(e *etree.Element) string {
	// Fast path for the common leaf element with a single text child.
	if len(e.Child) == 1 {
		n.b.tick(1)
		if cd, ok := e.Child[0].(*etree.CharData); ok {
			return n.charged(cd.Data)
		}
		if _, ok := e.Child[0].(*etree.Element); !ok {
			return ""
		}
	}
	var sb strings.Builder
	n.appendText(&sb, e)
	return sb.String()
}

func (n *nav) appendText(sb *strings.Builder, e *etree.Element) {
	for _, t := range e.Child {
		n.b.tick(1)
		switch t := t.(type) {
		case *etree.CharData:
			sb.WriteString(n.charged(t.Data))
		case *etree.Element:
			n.appendText(sb, t)
		}
	}
}

// runText concatenates the text run starting at p.Child[i].
func (n *nav) runText(p *etree.Element, i int) string {
	end := runEnd(p, i)
	n.b.tick(end - i)
	first := ""
	var sb *strings.Builder
	for j := i; j < end; j++ {
		cd, ok := p.Child[j].(*etree.CharData)
		if !ok || cd.Data == "" {
			continue
		}
		n.charged(cd.Data)
		switch {
		case sb != nil:
			sb.WriteString(cd.Data)
		case first == "":
			first = cd.Data
		default:
			sb = &strings.Builder{}
			sb.WriteString(first)
			sb.WriteString(cd.Data)
		}
	}
	if sb != nil {
		return sb.String()
	}
	return first
}

// invisible reports whether t is a token XPath does not see.
func invisible(t etree.Token) bool {
	switch t.(type) {
	case *etree.ProcInst, *etree.Directive:
		return true
	}
	return false
}

// runEnd returns the index just past the text run starting at p.Child[i]:
// CharData tokens, possibly interleaved with invisible tokens.
func runEnd(p *etree.Element, i int) int {
	j := i
	for j < len(p.Child) {
		switch p.Child[j].(type) {
		case *etree.CharData, *etree.ProcInst, *etree.Directive:
			j++
			continue
		}
		break
	}
	return j
}

// runStart returns the index of the first token of the text run containing p.Child[i].
func runStart(p *etree.Element, i int) int {
	for i > 0 {
		switch p.Child[i-1].(type) {
		case *etree.CharData, *etree.ProcInst, *etree.Directive:
			i--
			continue
		}
		break
	}
	return i
}

// runNonEmpty reports whether the run [i, end) holds any character.
func runNonEmpty(p *etree.Element, i, end int) bool {
	for j := i; j < end; j++ {
		if cd, ok := p.Child[j].(*etree.CharData); ok && cd.Data != "" {
			return true
		}
	}
	return false
}

// seekForward positions n on the first visible child of p at index >= j,
// where j is not in the middle of a text run.
func (n *nav) seekForward(p *etree.Element, j int) bool {
	for j < len(p.Child) {
		n.b.tick(1)
		switch t := p.Child[j].(type) {
		case *etree.Element:
			n.k, n.p, n.e, n.i = kindElem, p, t, j
			return true
		case *etree.Comment:
			n.k, n.p, n.e, n.i = kindComment, p, nil, j
			return true
		case *etree.CharData:
			end := runEnd(p, j)
			if runNonEmpty(p, j, end) {
				n.k, n.p, n.e, n.i = kindText, p, nil, j
				return true
			}
			j = end
		default:
			j++
		}
	}
	return false
}

// seekBackward positions n on the last visible child of p at index <= j.
func (n *nav) seekBackward(p *etree.Element, j int) bool {
	for j >= 0 {
		n.b.tick(1)
		switch t := p.Child[j].(type) {
		case *etree.Element:
			n.k, n.p, n.e, n.i = kindElem, p, t, j
			return true
		case *etree.Comment:
			n.k, n.p, n.e, n.i = kindComment, p, nil, j
			return true
		case *etree.CharData:
			start := runStart(p, j)
			if runNonEmpty(p, start, j+1) {
				n.k, n.p, n.e, n.i = kindText, p, nil, start
				return true
			}
			j = start - 1
		default:
			j--
		}
	}
	return false
}

func (n *nav) Copy() xpath.NodeNavigator {
	n.b.tick(1)
	c := *n
	return &c
}

func (n *nav) MoveToRoot() {
	n.b.tick(1)
	n.k, n.p, n.e, n.i, n.a = kindDoc, nil, nil, 0, 0
}

func (n *nav) MoveToParent() bool {
	n.b.tick(1)
	switch n.k {
	case kindDoc:
		return false
	case kindAttr:
		n.k = kindElem
		return true
	case kindElem:
		if n.p == nil { // root element: parent is the document node
			n.k, n.e = kindDoc, nil
			return true
		}
	}
	n.toElement(n.p)
	return true
}

// toElement positions n on element e, which is root or a descendant of it.
func (n *nav) toElement(e *etree.Element) {
	n.k, n.e = kindElem, e
	if e == n.root {
		n.p, n.i = nil, 0
		return
	}
	n.p, n.i = n.parentOf(e)
}

// parentOf returns the parent of e (a descendant of root) and the index of e
// in it.
func (n *nav) parentOf(e *etree.Element) (*etree.Element, int) {
	p := e.Parent()
	if p == nil {
		panic(abort{fmt.Errorf("xpathdoc: inconsistent document: element <%s> below the root has no parent", e.FullTag())})
	}
	i := e.Index()
	if i < 0 || i >= len(p.Child) || p.Child[i] != e {
		// Stale index (Child was edited by hand): search.
		n.b.tick(len(p.Child))
		i = slices.Index(p.Child, etree.Token(e))
		if i < 0 {
			panic(abort{fmt.Errorf("xpathdoc: inconsistent document: element <%s> is not among its parent's children", e.FullTag())})
		}
	}
	return p, i
}

func (n *nav) MoveToNextAttribute() bool {
	n.b.tick(1)
	var j int
	switch n.k {
	case kindElem:
		j = 0
	case kindAttr:
		j = n.a + 1
	default:
		return false
	}
	for ; j < len(n.e.Attr); j++ {
		if a := &n.e.Attr[j]; a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
			continue
		}
		n.k, n.a = kindAttr, j
		return true
	}
	return false
}

func (n *nav) MoveToChild() bool {
	n.b.tick(1)
	switch n.k {
	case kindDoc:
		n.k, n.p, n.e, n.i = kindElem, nil, n.root, 0
		return true
	case kindElem:
		return n.seekForward(n.e, 0)
	}
	return false
}

func (n *nav) MoveToFirst() bool {
	n.b.tick(1)
	switch n.k {
	case kindElem, kindText, kindComment:
		if n.p == nil {
			return true // the root element is its own first sibling
		}
		return n.seekForward(n.p, 0)
	}
	return false
}

func (n *nav) MoveToNext() bool {
	n.b.tick(1)
	if n.p == nil {
		return false
	}
	var j int
	switch n.k {
	case kindElem, kindComment:
		j = n.i + 1
	case kindText:
		j = runEnd(n.p, n.i)
	default:
		return false
	}
	return n.seekForward(n.p, j) // leaves n alone on failure
}

func (n *nav) MoveToPrevious() bool {
	n.b.tick(1)
	if n.p == nil {
		return false
	}
	switch n.k {
	case kindElem, kindComment, kindText:
	default:
		return false
	}
	return n.seekBackward(n.p, n.i-1) // leaves n alone on failure
}

func (n *nav) MoveTo(other xpath.NodeNavigator) bool {
	n.b.tick(1)
	o, ok := other.(*nav)
	if !ok || o.root != n.root {
		return false
	}
	b := n.b
	*n = *o
	n.b = b
	return true
}
