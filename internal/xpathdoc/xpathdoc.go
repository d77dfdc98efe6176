// Package xpathdoc evaluates XPath 1.0 expressions over a resource-property
// document held as a beevik/etree element tree, bounded in time, work and
// result size. It backs WS-ResourceProperties QueryResourceProperties with
// the dialect http://www.w3.org/TR/1999/REC-xpath-19991116.
//
// Evaluation is built on github.com/antchfx/xpath. Expressions are checked
// first: only XPath 1.0 is accepted (the library's extension functions,
// variables and the namespace axis are rejected with an explanation), name
// tests match by namespace URI and local name (an unprefixed name test
// means "no namespace", whatever the document's default namespace), and
// prefixes resolve through the namespace map the caller passes.
//
// Evaluate is safe for concurrent use, including on the same document, as
// long as nobody mutates the document meanwhile; it never modifies it.
//
// Data model: the document node's only child is the root element passed to
// Evaluate (even when that element sits inside a larger tree; namespace
// declarations above it still apply). Namespace declarations are not
// attributes, adjacent text and CDATA form one text node, processing
// instructions and directives are invisible (processing-instruction()
// matches nothing), and there are no namespace nodes.
//
// Known deviations inherited from the library, which do not affect the order
// of returned node-sets (always document order) but do affect positions:
//   - a positional predicate on a parenthesized union, as in (a | b)[1],
//     counts the left operand's nodes first, then the right's;
//   - proximity positions on the preceding axis are not reverse document
//     order across subtrees (preceding::x[1] may not be the nearest x);
//   - a union drops an attribute when the same element has another
//     attribute with the same local name and value in another namespace.
package xpathdoc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/antchfx/xpath"
	"github.com/beevik/etree"
	"github.com/vws-grid/vws/internal/errdefs"
)

// Defaults applied to zero (or negative) Limits fields.
const (
	DefaultMaxSteps   = 200_000
	DefaultTimeout    = 100 * time.Millisecond
	DefaultMaxResults = 10_000
	DefaultMaxExprLen = 4096
)

// Limits bounds one evaluation. A zero or negative field takes its default.
type Limits struct {
	// MaxSteps bounds the work of one evaluation: every navigator move, every
	// token visited to compute a string-value (plus one per 64 bytes of
	// text), every element inspected to resolve a namespace, and every
	// token copied into the result costs one step.
	MaxSteps int
	// Timeout bounds the wall-clock time of one evaluation. The clock and
	// the context are consulted every 1024 steps.
	Timeout time.Duration
	// MaxResults bounds the number of nodes in a node-set result.
	MaxResults int
	// MaxExprLen bounds the length of the expression in bytes.
	MaxExprLen int
}

// DefaultLimits returns the limits Evaluate applies to a zero Limits.
func DefaultLimits() Limits {
	return Limits{MaxSteps: DefaultMaxSteps, Timeout: DefaultTimeout, MaxResults: DefaultMaxResults, MaxExprLen: DefaultMaxExprLen}
}

func (l Limits) withDefaults() Limits {
	if l.MaxSteps <= 0 {
		l.MaxSteps = DefaultMaxSteps
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxResults <= 0 {
		l.MaxResults = DefaultMaxResults
	}
	if l.MaxExprLen <= 0 {
		l.MaxExprLen = DefaultMaxExprLen
	}
	return l
}

// sentinel is an error that also matches a broader errdefs error.
type sentinel struct {
	msg    string
	parent error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.parent }

var (
	// ErrInvalidExpression: the expression is too long, does not parse, uses
	// an undeclared prefix or something this package does not support, or
	// fails at run time (e.g. a function applied to the wrong type). It
	// matches errdefs.ErrInvalidQuery too.
	ErrInvalidExpression error = &sentinel{"invalid XPath expression", errdefs.ErrInvalidQuery}
	// ErrBudgetExceeded: the evaluation ran out of steps or time, its context
	// ended, or the node-set is larger than MaxResults. It matches
	// errdefs.ErrQueryTooCostly too; when the context ended it also matches
	// the context's error.
	ErrBudgetExceeded error = &sentinel{"XPath query exceeded its evaluation budget", errdefs.ErrQueryTooCostly}
)

// NodeKind is the XPath type of a result node.
type NodeKind uint8

const (
	DocumentNode  NodeKind = iota + 1 // the document root, "/"
	ElementNode                       // an element
	AttributeNode                     // an attribute (never a namespace declaration)
	TextNode                          // a text node (adjacent text and CDATA merged)
	CommentNode                       // a comment
)

func (k NodeKind) String() string {
	switch k {
	case DocumentNode:
		return "document"
	case ElementNode:
		return "element"
	case AttributeNode:
		return "attribute"
	case TextNode:
		return "text"
	case CommentNode:
		return "comment"
	}
	return "NodeKind(" + strconv.Itoa(int(k)) + ")"
}

// Node is one node of a node-set result. Everything in it is detached from
// the queried document, so the caller may add it to a response as is.
type Node struct {
	Kind NodeKind
	// Element is set for ElementNode (a deep copy of the element) and
	// DocumentNode (a deep copy of the document's root element). Namespace
	// declarations the copy relies on that were made on its ancestors are
	// added to it, so it serializes correctly on its own.
	Element *etree.Element
	// Attr is set for AttributeNode: a copy of the attribute. Attr.Element()
	// is a placeholder element (<attribute-owner>, not the real owner) that
	// carries only the declaration of the attribute's prefix, so that
	// Attr.NamespaceURI() works.
	Attr *etree.Attr
	// Text is the data of a TextNode or CommentNode and the value of an
	// AttributeNode.
	Text string
	// NamespaceURI is the namespace of an ElementNode or AttributeNode.
	NamespaceURI string
}

// Result is the value of an expression: a node-set (Nodes, in document
// order, without duplicates; nil when empty) or, when IsAtomic, a string,
// float64 or bool in Atomic.
type Result struct {
	Nodes    []Node
	Atomic   any // string | float64 | bool
	IsAtomic bool
	// Steps is the work the evaluation took, in Limits.MaxSteps units. It
	// is set on error too.
	Steps int
}

// Evaluate evaluates the XPath 1.0 expression expr over the document whose
// root element is root. The context node is the document node: "/" is the
// document, "/*" and "*" are root. namespaces binds the prefixes expr may use
// (typically those in scope at the QueryExpression element); a binding of the
// empty prefix is ignored, as XPath 1.0 requires.
//
// Errors wrap ErrInvalidExpression or ErrBudgetExceeded, except for the
// caller's own mistakes (a nil root, a tree whose parent links do not match
// its Child slices). Evaluate does not panic, whatever the expression.
func Evaluate(ctx context.Context, root *etree.Element, expr string, namespaces map[string]string, lim Limits) (res Result, err error) {
	defer func() {
		// run recovers evaluation panics; this is the last line of defence
		// for everything else (checking and compiling the expression).
		if r := recover(); r != nil {
			res, err = Result{}, invalid(fmt.Sprintf("internal error: %v", r))
		}
	}()
	lim = lim.withDefaults()
	if root == nil {
		return Result{}, errors.New("xpathdoc: nil root element")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	if len(expr) > lim.MaxExprLen {
		return Result{}, invalid(fmt.Sprintf("the expression is %d bytes long; at most %d are allowed", len(expr), lim.MaxExprLen))
	}
	if strings.TrimSpace(expr) == "" {
		return Result{}, invalid("the expression is empty")
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("%w: not started: %w", ErrBudgetExceeded, err)
	}
	p, err := lookup(expr, namespaces)
	if err != nil {
		return Result{}, err
	}
	x, err := p.acquire()
	if err != nil {
		return Result{}, err
	}
	b := newBudget(ctx, lim)
	res, err = run(x, root, b, lim)
	if err == nil {
		p.release(x) // an aborted evaluation may leave x in any state
	}
	res.Steps = b.steps
	return res, err
}

// run evaluates x, turning every panic into an error: budget aborts raised by
// the navigator, and whatever the library raises on run-time type errors.
func run(x *xpath.Expr, root *etree.Element, b *budget, lim Limits) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			res = Result{}
			if a, ok := r.(abort); ok {
				err = a.err
				return
			}
			err = invalid(fmt.Sprintf("evaluation failed: %v", r))
		}
	}()
	v := x.Evaluate(newNav(b, root))
	switch v := v.(type) {
	case *xpath.NodeIterator:
		var found []nav
		for v.MoveNext() {
			cur, ok := v.Current().(*nav)
			if !ok {
				return Result{}, invalid(fmt.Sprintf("evaluation failed: unexpected node %T", v.Current()))
			}
			if len(found) == lim.MaxResults {
				return Result{}, fmt.Errorf("%w: the node-set has more than %d nodes; make the query more selective", ErrBudgetExceeded, lim.MaxResults)
			}
			found = append(found, *cur)
		}
		return Result{Nodes: materialize(found, b)}, nil
	case string, float64, bool:
		return Result{Atomic: v, IsAtomic: true}, nil
	}
	return Result{}, invalid(fmt.Sprintf("evaluation failed: unexpected result type %T", v))
}

// FormatAtomic converts an atomic result to a string with the rules of the
// XPath 1.0 string() function (numbers: "NaN", "Infinity", integers without
// a decimal point, no exponent).
func FormatAtomic(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	case float64:
		switch {
		case math.IsNaN(v):
			return "NaN"
		case math.IsInf(v, 1):
			return "Infinity"
		case math.IsInf(v, -1):
			return "-Infinity"
		case v == 0:
			return "0"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
