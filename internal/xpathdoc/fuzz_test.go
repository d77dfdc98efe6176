package xpathdoc

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/antchfx/xpath"
	"github.com/beevik/etree"
)

// FuzzEvaluate checks that no expression makes Evaluate panic, run past its
// budget, fail with an error outside the two sentinels, return an
// inconsistent result, or give different answers on a cache miss and a hit.
func FuzzEvaluate(f *testing.F) {
	for _, s := range []string{
		"/", "/*", "/rp:WorkspaceProperties/vw:state", "//vw:nic[@id='eth1']/vw:ip/text()",
		"//@*", "//@xsi:nil", "//vw:owner/@xml:lang", "count(//*)", "sum(//vw:event/@n)",
		"//vw:event[last()]", "//vw:tag[position() > 1]", "(//vw:tag | //vw:state)[1]",
		"//vw:event[2]/preceding::*[1]", "//vw:mac/ancestor-or-self::node()", "//comment()",
		"//processing-instruction('pi')", "//vw:description/node()", "//note", "//d:note",
		"name(//d:note)", "namespace-uri(//plain)", "concat(//vw:name, '-', 1 div 0)",
		"substring(//vw:name, 2, 3)", "translate(//vw:state, 'nu', 'NU')",
		"-//vw:cpu * 2 mod 3 div 4", "//vw:cpu > 1 and //vw:disk < 100 or not(true())",
		"//*[count(//*[count(//*) > 0]) > 0]", "string-length(concat(string(/), string(/)))",
		"vw:*", "//wsrl:*/@*", "ws:state | ws:name", ".//..", "/*/..", "self::node()",
		"//*[. = //*]", "//vw:ip[starts-with(., '10.')]", "number('x') != number('x')",
		"foo:bar", "//*[", "a b", "$x", "matches('a', 'b')", "namespace::*", "'", "@", "*",
		"child::", "//*[@a=\"\"]", "1.5.", ".5", "..", "//", "/ | /*", "- - 1", "(1)", "((/))",
		"processing-instruction()", "text()", "node()[1]", "comment", "div div div",
		"*/*/*", "and", "@and", "and/or", "//div div 2", "//and[and]", "//node", "//text", "node() | text",
		"count(//*) mod 2", "or or or", "//*[div]", "/and/div/text()", "//@a + //@b", "//vw:*[local-name() = 'tag'][2]", "id('x')", "\u00e9l\u00e9ment",
	} {
		f.Add(s)
	}
	root := loadDoc(f, rpDoc)
	plain := loadDoc(f, plainDoc)
	lim := Limits{MaxSteps: 50_000, Timeout: 500 * time.Millisecond, MaxResults: 100}
	f.Fuzz(func(t *testing.T, expr string) {
		begin := time.Now()
		defer func() {
			if d := time.Since(begin); d > 4*lim.Timeout {
				t.Fatalf("%q: the whole check took %v", expr, d)
			}
		}()
		differential(t, plain, expr, lim)

		start := time.Now()
		r1, err1 := Evaluate(context.Background(), root, expr, queryNS, lim)
		if d := time.Since(start); d > 2*lim.Timeout {
			t.Fatalf("%q took %v", expr, d)
		}
		checkResult(t, r1, err1, lim)
		r2, err2 := Evaluate(context.Background(), root, expr, queryNS, lim)
		checkResult(t, r2, err2, lim)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("first %v, then %v", err1, err2)
		}
		// A timeout may legitimately strike one run and not the other; step
		// counts and answers must otherwise agree.
		if err1 == nil && r1.Steps != r2.Steps {
			t.Fatalf("steps %d, then %d", r1.Steps, r2.Steps)
		}
		if err1 == nil && !sameResult(r1, r2) {
			t.Fatalf("first %+v, then %+v", r1, r2)
		}
	})
}

// plainDoc uses no namespaces, so the library's own prefix-based name tests
// and this package's rewritten ones must agree on it. Its element names
// include the operator names.
const plainDoc = `<and a="1" b="x"><or>1</or><div n="2">2<mod/>3</div><!--c--><text>t</text><node/><and/></and>`

// differential evaluates expr on a namespace-free document both through
// Evaluate and directly through the library; where both succeed, the
// answers must agree. This checks the tokenizer's idea of which names are
// name tests (it rewrites those) against the library's.
func differential(t *testing.T, root *etree.Element, expr string, lim Limits) {
	t.Helper()
	if strings.Contains(expr, "processing-instruction") || strings.Contains(expr, ":*") {
		return // rewritten on purpose to fix library behaviour
	}
	ours, err := Evaluate(context.Background(), root, expr, nil, lim)
	if err != nil || len(expr) > lim.MaxExprLen {
		return
	}
	var x *xpath.Expr
	func() {
		defer func() { _ = recover() }()
		x, err = xpath.Compile(expr)
	}()
	if err != nil || x == nil {
		t.Fatalf("accepted %q, which the library rejects: %v", expr, err)
	}
	lib, err := run(x, root, newBudget(context.Background(), lim), lim.withDefaults())
	if err != nil {
		t.Fatalf("library failed on %q: %v", expr, err)
	}
	if !sameResult(ours, lib) {
		t.Fatalf("%q: ours %s %v, library %s %v", expr, renderAll(ours), ours.Atomic, renderAll(lib), lib.Atomic)
	}
}

func checkResult(t *testing.T, r Result, err error, lim Limits) {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrInvalidExpression) && !errors.Is(err, ErrBudgetExceeded) {
			t.Fatalf("error %v wraps neither sentinel", err)
		}
		if r.Nodes != nil || r.IsAtomic {
			t.Fatalf("error %v with a result", err)
		}
		return
	}
	if r.Steps > lim.MaxSteps {
		t.Fatalf("%d steps > %d", r.Steps, lim.MaxSteps)
	}
	if r.IsAtomic {
		switch r.Atomic.(type) {
		case string, float64, bool:
		default:
			t.Fatalf("atomic %T", r.Atomic)
		}
		if r.Nodes != nil {
			t.Fatal("atomic with nodes")
		}
		return
	}
	if len(r.Nodes) > lim.MaxResults {
		t.Fatalf("%d nodes", len(r.Nodes))
	}
	for _, n := range r.Nodes {
		ok := false
		switch n.Kind {
		case DocumentNode, ElementNode:
			ok = n.Element != nil && n.Element.Parent() == nil && n.Attr == nil
		case AttributeNode:
			ok = n.Attr != nil && n.Element == nil && n.Attr.Space != "xmlns" && !(n.Attr.Space == "" && n.Attr.Key == "xmlns")
		case TextNode:
			ok = n.Element == nil && n.Attr == nil && n.Text != ""
		case CommentNode:
			ok = n.Element == nil && n.Attr == nil
		}
		if !ok {
			t.Fatalf("inconsistent node %+v", n)
		}
	}
}

func sameResult(a, b Result) bool {
	if a.IsAtomic != b.IsAtomic || len(a.Nodes) != len(b.Nodes) {
		return false
	}
	if a.IsAtomic {
		if fa, ok := a.Atomic.(float64); ok && math.IsNaN(fa) {
			fb, ok := b.Atomic.(float64)
			return ok && math.IsNaN(fb)
		}
		return a.Atomic == b.Atomic
	}
	for i := range a.Nodes {
		if render(a.Nodes[i]) != render(b.Nodes[i]) || a.Nodes[i].NamespaceURI != b.Nodes[i].NamespaceURI {
			return false
		}
		if ea, eb := a.Nodes[i].Element, b.Nodes[i].Element; ea != nil {
			if len(ea.Attr) != len(eb.Attr) {
				return false
			}
			for j := range ea.Attr {
				x, y := ea.Attr[j], eb.Attr[j]
				if x.Space != y.Space || x.Key != y.Key || x.Value != y.Value {
					return false
				}
			}
		}
	}
	return true
}
