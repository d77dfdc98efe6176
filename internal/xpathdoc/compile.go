package xpathdoc

import (
	"container/list"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/antchfx/xpath"
)

const (
	// cacheEntries bounds the number of distinct (expression, namespaces)
	// pairs kept compiled.
	cacheEntries = 256
	// maxCachedExprLen keeps long (typically one-off or hostile) expressions
	// out of the cache, which bounds its memory.
	maxCachedExprLen = 512
	// maxIdle bounds the compiled copies one cache entry keeps for reuse.
	// An *xpath.Expr keeps evaluation state, so each concurrent evaluation
	// needs its own copy.
	maxIdle = 4
)

// program is one checked, rewritten expression ready to compile, plus idle
// compiled copies of it.
type program struct {
	text string            // expression handed to the library
	ns   map[string]string // namespaces handed to the library

	mu   sync.Mutex
	idle []*xpath.Expr
}

// acquire returns a compiled copy for the exclusive use of the caller.
func (p *program) acquire() (*xpath.Expr, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		x := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return x, nil
	}
	p.mu.Unlock()
	x, err := xpath.CompileWithNS(p.text, p.ns) // cannot fail: newProgram compiled the same text
	if err != nil {
		return nil, invalid(libraryError(err, p.text))
	}
	return x, nil
}

// release returns a copy whose last evaluation ran to completion.
func (p *program) release(x *xpath.Expr) {
	p.mu.Lock()
	if len(p.idle) < maxIdle {
		p.idle = append(p.idle, x)
	}
	p.mu.Unlock()
}

// lru is a small mutex-guarded LRU of programs.
type lru struct {
	mu    sync.Mutex
	order *list.List // of *lruItem, most recent first
	items map[string]*list.Element
}

type lruItem struct {
	key string
	p   *program
}

var programs = &lru{order: list.New(), items: make(map[string]*list.Element)}

func (c *lru) get(key string) *program {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruItem).p
	}
	return nil
}

func (c *lru) add(key string, p *program) *program {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok { // lost a race: keep the first
		c.order.MoveToFront(el)
		return el.Value.(*lruItem).p
	}
	c.items[key] = c.order.PushFront(&lruItem{key, p})
	for c.order.Len() > cacheEntries {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*lruItem).key)
	}
	return p
}

// cacheKey identifies (expr, namespaces). Bindings of the empty prefix are
// ignored: XPath 1.0 has no default namespace for name tests.
func cacheKey(expr string, ns map[string]string) string {
	var buf [8]string
	prefixes := buf[:0]
	n := len(expr) + 1
	for p, u := range ns {
		if p != "" {
			prefixes = append(prefixes, p)
			n += len(p) + len(u) + 2
		}
	}
	slices.Sort(prefixes)
	var sb strings.Builder
	sb.Grow(n)
	sb.WriteString(expr)
	sb.WriteByte(0)
	for _, p := range prefixes {
		sb.WriteString(p)
		sb.WriteByte(1)
		sb.WriteString(ns[p])
		sb.WriteByte(0)
	}
	return sb.String()
}

// lookup returns the program for (expr, ns), from the cache if possible.
func lookup(expr string, ns map[string]string) (*program, error) {
	if len(expr) > maxCachedExprLen {
		return newProgram(expr, ns)
	}
	key := cacheKey(expr, ns)
	if p := programs.get(key); p != nil {
		return p, nil
	}
	p, err := newProgram(expr, ns)
	if err != nil {
		return nil, err // errors are cheap to recompute and not cached
	}
	return programs.add(key, p), nil
}

// noNamespacePrefix is the reserved prefix unprefixed name tests are
// rewritten to; it is bound to the empty namespace URI.
const noNamespacePrefix = "_xpathdoc-nons"

func newProgram(expr string, ns map[string]string) (*program, error) {
	toks, err := tokenize(expr)
	if err != nil {
		return nil, invalid(err.Error())
	}
	bound := make(map[string]string, len(ns)+2)
	for p, u := range ns {
		if p != "" && u != "" { // an empty URI binds nothing
			bound[p] = u
		}
	}
	bound["xml"] = xmlNamespace // always, and only, bound to this (Namespaces in XML §3)
	noNS := noNamespacePrefix
	for bound[noNS] != "" {
		noNS += "_"
	}
	text, err := rewrite(expr, toks, bound, noNS)
	if err != nil {
		return nil, invalid(err.Error())
	}
	for _, t := range toks {
		if t.kind == tokName && t.prefix != "" {
			if _, ok := bound[t.prefix]; !ok {
				return nil, invalid(fmt.Sprintf("prefix %q is not declared in the query's namespace context (offset %d)", t.prefix, t.start))
			}
		}
	}
	bound[noNS] = ""
	x, err := xpath.CompileWithNS(text, bound)
	if err != nil {
		return nil, invalid(libraryError(err, text))
	}
	return &program{text: text, ns: bound, idle: []*xpath.Expr{x}}, nil
}

// libraryError turns a compile error of antchfx/xpath (whose messages quote
// the rewritten expression) into a message for the client.
func libraryError(err error, text string) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "has an invalid token"), strings.Contains(msg, "invalid qualified name"):
		return "syntax error: unexpected or missing token (check the location steps, brackets and operators)"
	case strings.Contains(msg, "must evaluate to a node-set"):
		return "syntax error: a location step (name test, '*', '.', '..' or node type test) is expected"
	case strings.Contains(msg, "too complex"):
		return "the expression is nested too deeply"
	}
	msg = strings.ReplaceAll(msg, text, "the expression")
	msg = strings.TrimPrefix(msg, "xpath: ")
	return "syntax error: " + msg
}

func invalid(msg string) error {
	return fmt.Errorf("%w: %s", ErrInvalidExpression, msg)
}
