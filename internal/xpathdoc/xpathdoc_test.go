package xpathdoc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/vws-grid/vws/internal/errdefs"
)

// rpDoc is a resource-property document of about 30 elements. Its default
// namespace is urn:vws:default, so unprefixed names in XPath must not match
// <note>.
const rpDoc = `<rp:WorkspaceProperties xmlns:rp="urn:vws:rp" xmlns:vw="urn:vws:workspace" xmlns:wsrl="urn:wsrl" xmlns="urn:vws:default">
  <vw:state since="2024-01-01T00:00:00Z">Running</vw:state>
  <vw:name>alpha</vw:name>
  <vw:owner vw:uid="42" xml:lang="en">alice</vw:owner>
  <vw:resources>
    <vw:cpu>2</vw:cpu>
    <vw:memory unit="MiB">1024</vw:memory>
    <vw:disk unit="GiB">20</vw:disk>
  </vw:resources>
  <vw:network>
    <vw:nic id="eth0"><vw:ip>10.0.0.5</vw:ip><vw:mac>aa:bb</vw:mac></vw:nic>
    <vw:nic id="eth1"><vw:ip>10.0.1.5</vw:ip><vw:mac>cc:dd</vw:mac></vw:nic>
  </vw:network>
  <vw:tags><vw:tag>gpu</vw:tag><vw:tag>batch</vw:tag><vw:tag>eu</vw:tag></vw:tags>
  <wsrl:CurrentTime>2024-01-01T01:00:00Z</wsrl:CurrentTime>
  <wsrl:TerminationTime xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>
  <note>default-namespace note</note>
  <plain xmlns="">no namespace</plain>
  <vw:description>a <![CDATA[<b>]]> tail<?pi x?> end</vw:description>
  <!-- maintained by vws -->
  <vw:history>
    <vw:event n="1">created</vw:event>
    <vw:event n="2">started</vw:event>
    <vw:event n="3">running</vw:event>
  </vw:history>
</rp:WorkspaceProperties>`

// queryNS is what a client would have in scope at its QueryExpression. The
// prefixes deliberately differ from the document's for "ws".
var queryNS = map[string]string{
	"rp":   "urn:vws:rp",
	"ws":   "urn:vws:workspace",
	"vw":   "urn:vws:workspace",
	"wsrl": "urn:wsrl",
	"d":    "urn:vws:default",
	"xsi":  "http://www.w3.org/2001/XMLSchema-instance",
	"":     "urn:vws:default", // a default namespace in scope must be ignored
}

func loadDoc(t testing.TB, s string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(s); err != nil {
		t.Fatal(err)
	}
	return d.Root()
}

// render describes a result node compactly.
func render(n Node) string {
	switch n.Kind {
	case DocumentNode:
		return "/" + n.Element.FullTag()
	case ElementNode:
		return "<" + n.Element.FullTag() + ">"
	case AttributeNode:
		return "@" + n.Attr.FullKey() + "=" + n.Attr.Value
	case TextNode:
		return fmt.Sprintf("text %q", n.Text)
	case CommentNode:
		return fmt.Sprintf("comment %q", n.Text)
	}
	return "?"
}

func renderAll(r Result) string {
	var parts []string
	for _, n := range r.Nodes {
		parts = append(parts, render(n))
	}
	return strings.Join(parts, " ")
}

func serialize(t testing.TB, e *etree.Element) string {
	t.Helper()
	d := etree.NewDocument()
	d.SetRoot(e)
	s, err := d.WriteToString()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNodeSets(t *testing.T) {
	root := loadDoc(t, rpDoc)
	tests := []struct {
		expr string
		want string
	}{
		// '/' and the root element.
		{"/", "/rp:WorkspaceProperties"},
		{"/*", "<rp:WorkspaceProperties>"},
		{"*", "<rp:WorkspaceProperties>"},
		{".", "/rp:WorkspaceProperties"},
		{"/rp:WorkspaceProperties", "<rp:WorkspaceProperties>"},
		{"/..", ""},
		{"/*/..", "/rp:WorkspaceProperties"},
		// Element paths resolve prefixes through the query's map, not the document's.
		{"/rp:WorkspaceProperties/vw:state", "<vw:state>"},
		{"/*/ws:state", "<vw:state>"},
		{"/*/vw:resources/vw:cpu", "<vw:cpu>"},
		{"/*/wsrl:*", "<wsrl:CurrentTime> <wsrl:TerminationTime>"},
		{"/*/vw:tags/*", "<vw:tag> <vw:tag> <vw:tag>"},
		{"/*/vw:tags/vw:*[2]/text()", `text "batch"`}, // p:* with a position
		{"/*/vw:*[1]", "<vw:state>"},
		{"/*/d:*", "<note>"},
		{"/*/vw:tags/vw:tag[2]", "<vw:tag>"},
		{"/*/vw:tags/vw:tag[2]/text()", `text "batch"`},
		{"/*/vw:tags/vw:tag[last()]/text()", `text "eu"`},
		{"/*/vw:tags/vw:tag[position() > 1]/text()", `text "batch" text "eu"`},
		{"/*/vw:tags/vw:tag[. = 'gpu']", "<vw:tag>"},
		{"/*/vw:nope", ""},
		{"/rp:Other", ""},
		// '//' and axes.
		{"//vw:ip/text()", `text "10.0.0.5" text "10.0.1.5"`},
		{"//vw:nic[@id='eth1']/vw:ip/text()", `text "10.0.1.5"`},
		{"//vw:nic[vw:ip = '10.0.0.5']/@id", "@id=eth0"},
		{"//vw:ip/../@id", "@id=eth0 @id=eth1"},
		{"//vw:mac/ancestor::*", "<rp:WorkspaceProperties> <vw:network> <vw:nic> <vw:nic>"},
		{"//vw:event[2]/following-sibling::*/@n", "@n=3"},
		{"//vw:event[2]/preceding-sibling::*/@n", "@n=1"},
		{"//vw:event[3]/preceding::vw:tag/text()", `text "gpu" text "batch" text "eu"`},
		{"//vw:cpu/following::vw:ip", "<vw:ip> <vw:ip>"},
		{"//vw:tag[1]/ancestor-or-self::*[1]/text()", `text "gpu"`},
		{"/descendant::vw:event[1]/@n", "@n=1"},
		{"//vw:resources/descendant-or-self::*", "<vw:resources> <vw:cpu> <vw:memory> <vw:disk>"},
		{"//vw:cpu/self::vw:cpu", "<vw:cpu>"},
		{"//vw:cpu/parent::vw:resources", "<vw:resources>"},
		// Attributes: namespace declarations are not attributes.
		{"/*/@*", ""},
		{"//wsrl:TerminationTime/@*", "@xsi:nil=true"},
		{"//@xsi:nil", "@xsi:nil=true"},
		{"//vw:owner/@vw:uid", "@vw:uid=42"},
		{"//vw:owner/@uid", ""}, // unprefixed attribute names mean no namespace
		{"//vw:owner/@xml:lang", "@xml:lang=en"},
		{"//@unit", "@unit=MiB @unit=GiB"},
		{"//*[@unit='GiB']", "<vw:disk>"},
		{"//@vw:*", "@vw:uid=42"},
		// Text: CDATA merged with adjacent text, processing instructions invisible.
		{"//vw:description/text()", `text "a <b> tail end"`},
		{"//vw:description/node()", `text "a <b> tail end"`},
		{"//processing-instruction()", ""},
		{"//processing-instruction('pi')", ""},
		{"/*/comment()", `comment " maintained by vws "`},
		{"count(/*/node()) = count(/*/*) + count(/*/text()) + 1", ""}, // atomic; see TestAtomic
		// Unions come back in document order without duplicates.
		{"//vw:event | //vw:state | //vw:event[1]", "<vw:state> <vw:event> <vw:event> <vw:event>"},
		{"//vw:event[1]/@n | //vw:event[1]", "<vw:event> @n=1"},
		// Default namespace of the document does not leak into unprefixed names.
		{"//note", ""},
		{"//d:note", "<note>"},
		{"//plain", "<plain>"},
		{"//d:plain", ""},
		{"//*[local-name() = 'note']", "<note>"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			r, err := Evaluate(context.Background(), root, tt.expr, queryNS, Limits{})
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if r.IsAtomic {
				if tt.want != "" {
					t.Fatalf("atomic result %v, want nodes %s", r.Atomic, tt.want)
				}
				return
			}
			if got := renderAll(r); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAtomic(t *testing.T) {
	root := loadDoc(t, rpDoc)
	tests := []struct {
		expr string
		want any
	}{
		{"count(//vw:event)", 3.0},
		{"count(//*)", 28.0},
		{"count(/*/node()) = count(/*/*) + count(/*/text()) + 1", true},
		{"sum(//vw:event/@n)", 6.0},
		{"string(/*/vw:state)", "Running"},
		{"/*/vw:state = 'Running'", true},
		{"/*/vw:state != 'Running'", false},
		{"boolean(/*/vw:state)", true},
		{"boolean(/*/vw:nope)", false},
		{"not(//vw:nope)", true},
		{"//vw:cpu * 2 + 1", 5.0},
		{"//vw:memory div 1024", 1.0},
		{"//vw:memory mod 1000", 24.0},
		{"-//vw:cpu", -2.0},
		{"//vw:cpu > 1 and //vw:disk < 100", true},
		{"//vw:cpu > 1 or false()", true},
		{"number('x')", math.NaN()},
		{"1 div 0", math.Inf(1)},
		{"floor(2.7) + ceiling(2.1) + round(2.5)", 8.0},
		{"concat(//vw:name, '-', //vw:nic[2]/@id)", "alpha-eth1"},
		{"string-length(//vw:name)", 5.0},
		{"substring(//vw:name, 2, 3)", "lph"},
		{"substring-before(//vw:ip, '.')", "10"},
		{"substring-after(//vw:mac, ':')", "bb"},
		{"contains(//vw:state, 'unn')", true},
		{"starts-with(//vw:state, 'Run')", true},
		{"translate(//vw:state, 'nu', 'NU')", "RUNNiNg"},
		{"normalize-space('  a   b ')", "a b"},
		{"local-name(/*)", "WorkspaceProperties"},
		{"namespace-uri(/*)", "urn:vws:rp"},
		{"namespace-uri(//d:note)", "urn:vws:default"},
		{"namespace-uri(//plain)", ""},
		{"name(//vw:owner/@vw:uid)", "vw:uid"},
		{"name(/*)", "rp:WorkspaceProperties"},
		{"name(//d:note)", "note"},
		{"string(//@xsi:nil)", "true"},
		{"true()", true},
		{"'lit'", "lit"},
		{"42", 42.0},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			r, err := Evaluate(context.Background(), root, tt.expr, queryNS, Limits{})
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			if !r.IsAtomic {
				t.Fatalf("got nodes %s, want atomic %v", renderAll(r), tt.want)
			}
			if f, ok := tt.want.(float64); ok && math.IsNaN(f) {
				if g, ok := r.Atomic.(float64); !ok || !math.IsNaN(g) {
					t.Fatalf("got %#v, want NaN", r.Atomic)
				}
				return
			}
			if r.Atomic != tt.want {
				t.Errorf("got %#v, want %#v", r.Atomic, tt.want)
			}
		})
	}
}

func TestDetachedResults(t *testing.T) {
	root := loadDoc(t, rpDoc)
	before := serialize(t, root.Copy())

	r, err := Evaluate(context.Background(), root, "/*/vw:nic[1] | //vw:nic[1] | //vw:owner | //d:note | //wsrl:TerminationTime | //vw:owner/@vw:uid", queryNS, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := renderAll(r); got != "<vw:owner> @vw:uid=42 <vw:nic> <wsrl:TerminationTime> <note>" {
		t.Fatalf("got %s", got)
	}
	want := map[int]string{
		0: `<vw:owner xmlns:vw="urn:vws:workspace" vw:uid="42" xml:lang="en">alice</vw:owner>`,
		2: `<vw:nic xmlns:vw="urn:vws:workspace" id="eth0"><vw:ip>10.0.0.5</vw:ip><vw:mac>aa:bb</vw:mac></vw:nic>`,
		3: `<wsrl:TerminationTime xmlns:wsrl="urn:wsrl" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>`,
		4: `<note xmlns="urn:vws:default">default-namespace note</note>`,
	}
	for i, w := range want {
		n := r.Nodes[i]
		if n.Element == nil {
			t.Fatalf("node %d: no element", i)
		}
		if n.Element.Parent() != nil {
			t.Errorf("node %d is not detached", i)
		}
		if got := serialize(t, n.Element); got != w {
			t.Errorf("node %d:\n got  %s\n want %s", i, got, w)
		}
	}
	if r.Nodes[0].NamespaceURI != "urn:vws:workspace" || r.Nodes[4].NamespaceURI != "urn:vws:default" {
		t.Errorf("namespace URIs %q %q", r.Nodes[0].NamespaceURI, r.Nodes[4].NamespaceURI)
	}
	a := r.Nodes[1]
	if a.Kind != AttributeNode || a.Attr.NamespaceURI() != "urn:vws:workspace" || a.NamespaceURI != "urn:vws:workspace" || a.Text != "42" {
		t.Errorf("attribute %+v, Attr.NamespaceURI()=%q", a, a.Attr.NamespaceURI())
	}

	// Mutating results leaves the document alone.
	r.Nodes[0].Element.SetText("mallory")
	r.Nodes[0].Element.CreateElement("extra")
	r.Nodes[1].Attr.Value = "0"
	etree.NewElement("sink").AddChild(r.Nodes[2].Element)
	if after := serialize(t, root.Copy()); after != before {
		t.Errorf("document changed:\n%s", after)
	}
}

func TestInvalidExpressions(t *testing.T) {
	root := loadDoc(t, rpDoc)
	tests := []struct {
		expr string
		want string // substring of the error message
	}{
		{"", "empty"},
		{"   ", "empty"},
		{"foo:bar", `prefix "foo" is not declared in the query's namespace context`},
		{"/*/vw:state/@foo:x", `prefix "foo" is not declared`},
		{"//foo:*", `prefix "foo" is not declared`},
		{"//*[", "unclosed"},
		{"//*]", `unbalanced "]"`},
		{"/*/vw:state)", `unbalanced ")"`},
		{"count(//*", "unclosed"},
		{"/*/", "incomplete"},
		{"1 +", "incomplete"},
		{"//vw:state 'x'", `expected an operator, found "'x'"`},
		{"/*/vw:state vw:name", `expected an operator, found "vw:name"`},
		{"a b", `syntax error at offset 2: expected an operator, found "b"`},
		{"'unterminated", "syntax error at offset 0: unterminated string literal"},
		{"//*[@a = \"x]", "unterminated string literal"},
		{"/*/vw:state!", "'!' must be followed by '='"},
		{"//*[#]", `unexpected character '#'`},
		{"vw:", `"vw:" must be followed by a local name or '*'`},
		{"vw :state", "no space is allowed around ':'"},
		{"matches(//vw:state, 'R.*')", "unknown function matches()"},
		{"string-join(//vw:tag, ',')", "unknown function string-join()"},
		{"lower-case('A')", "unknown function lower-case()"},
		{"id('x')", "function id() is not supported"},
		{"vw:count(//*)", "extension function vw:count() is not supported"},
		{"$x", "variable references are not supported"},
		{"//*[@id = $x]", "variable references are not supported"},
		{"namespace::*", "the namespace axis is not supported"},
		{"sideways::*", `unknown axis "sideways"`},
		{"/(vw:a, vw:b)", "unexpected '(' after '/'"},
		{"= 1", `expected an operand before "="`},
		{"()", "expected an operand before ')'"},
		{"//*[]", `expected an operand before "]"`},
		{"substring('abc')", "substring function must have at least two parameter"},
		{"concat('a')", "concat() must have at least two arguments"},
		{"sum('a')", "sum() function argument type must be a node-set or number"}, // a run-time error
		{strings.Repeat("(", 300) + "1" + strings.Repeat(")", 300), "nested too deeply"},
		{"\xff", "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := Evaluate(context.Background(), root, tt.expr, queryNS, Limits{})
			if !errors.Is(err, ErrInvalidExpression) || !errors.Is(err, errdefs.ErrInvalidQuery) {
				t.Fatalf("error %v does not wrap ErrInvalidExpression and errdefs.ErrInvalidQuery", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "invalid XPath expression: ") {
				t.Errorf("error %q lacks the sentinel prefix", err)
			}
		})
	}
}

func TestNamespaceMapEdgeCases(t *testing.T) {
	root := loadDoc(t, rpDoc)
	// A nil map: unprefixed names and "xml" still work.
	r, err := Evaluate(context.Background(), root, "count(//plain) + count(//@xml:lang)", nil, Limits{})
	if err != nil || r.Atomic != 2.0 {
		t.Fatalf("got %v, %v", r.Atomic, err)
	}
	// A prefix bound to the empty URI binds nothing.
	_, err = Evaluate(context.Background(), root, "//e:x", map[string]string{"e": ""}, Limits{})
	if !errors.Is(err, ErrInvalidExpression) {
		t.Fatalf("got %v", err)
	}
	// A query prefix that collides with the reserved one still works.
	r, err = Evaluate(context.Background(), root, "count(/*/"+noNamespacePrefix+":state) + count(//plain)",
		map[string]string{noNamespacePrefix: "urn:vws:workspace"}, Limits{})
	if err != nil || r.Atomic != 2.0 {
		t.Fatalf("got %v, %v", r.Atomic, err)
	}
	// A namespace URI with both quote characters, through the p:* rewrite.
	doc := loadDoc(t, `<a xmlns:q="urn:it's &quot;quoted&quot;"><q:b/><q:c/><d/></a>`)
	r, err = Evaluate(context.Background(), doc, "count(/a/q:*)", map[string]string{"q": `urn:it's "quoted"`}, Limits{})
	if err != nil || r.Atomic != 2.0 {
		t.Fatalf("got %v, %v", r.Atomic, err)
	}
	// Same expression, different bindings: no stale cache hit.
	r, err = Evaluate(context.Background(), root, "count(//x:event)", map[string]string{"x": "urn:vws:workspace"}, Limits{})
	if err != nil || r.Atomic != 3.0 {
		t.Fatalf("got %v, %v", r.Atomic, err)
	}
	r, err = Evaluate(context.Background(), root, "count(//x:event)", map[string]string{"x": "urn:other"}, Limits{})
	if err != nil || r.Atomic != 0.0 {
		t.Fatalf("got %v, %v", r.Atomic, err)
	}
}

func TestHandBuiltTree(t *testing.T) {
	// Child slices edited by hand leave stale indexes behind, and a root
	// may sit inside a larger document.
	outer := etree.NewElement("outer")
	outer.CreateAttr("xmlns:p", "urn:p")
	root := outer.CreateElement("p:root")
	a := root.CreateElement("p:a")
	b := root.CreateElement("p:b") // index 1
	root.Child = []etree.Token{a, etree.NewText("t1"), etree.NewCData("t2"), b}
	ns := map[string]string{"p": "urn:p"}
	for expr, want := range map[string]string{
		"/*":                              "<p:root>",
		"/p:root/p:a":                     "<p:a>",
		"/p:root/node()":                  `<p:a> text "t1t2" <p:b>`,
		"//p:b/preceding-sibling::node()": `<p:a> text "t1t2"`,
		"//p:b/..":                        "<p:root>",
		"/..":                             "",
		"/*/..":                           "/p:root",
	} {
		r, err := Evaluate(context.Background(), root, expr, ns, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if got := renderAll(r); got != want {
			t.Errorf("%s: got %s, want %s", expr, got, want)
		}
	}
	r, err := Evaluate(context.Background(), root, "/*", ns, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := serialize(t, r.Nodes[0].Element); !strings.Contains(got, `xmlns:p="urn:p"`) {
		t.Errorf("namespace declared above root is missing from the copy: %s", got)
	}
}

// bigDoc returns a document with n <vw:item> children, each with a child.
func bigDoc(t testing.TB, n int) *etree.Element {
	var sb strings.Builder
	sb.WriteString(`<rp:Doc xmlns:rp="urn:vws:rp" xmlns:vw="urn:vws:workspace">`)
	for i := range n {
		fmt.Fprintf(&sb, `<vw:item n="%d"><vw:v>%d</vw:v></vw:item>`, i, i)
	}
	sb.WriteString(`</rp:Doc>`)
	return loadDoc(t, sb.String())
}

func TestRunawayExpressionsHitTheBudget(t *testing.T) {
	small := loadDoc(t, rpDoc)
	big := bigDoc(t, 2000)
	nested := "//*"
	for range 6 {
		nested = "//*[count(" + nested + ") > 0]"
	}
	huge := "string-length(concat(" + strings.Repeat("string(/), ", 300) + "'x'))"
	tests := []struct {
		name string
		root *etree.Element
		expr string
	}{
		{"nested count", small, nested},
		{"nested count big", big, "//*[count(//*[count(//*) > 0]) > 0]"},
		{"quadratic following", big, "count(//*/following::*)"},
		{"quadratic preceding", big, "count(//*[count(preceding::*) > 0])"},
		{"string concat", big, huge},
		{"union of descendants", big, "count(//* | //*/* | //*/*/* | //node() | //@*)*count(//*[. = //*])"},
		{"last over descendants", big, "//*[last() = count(//*)]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r, err := Evaluate(context.Background(), tt.root, tt.expr, queryNS, Limits{})
			elapsed := time.Since(start)
			if !errors.Is(err, ErrBudgetExceeded) || !errors.Is(err, errdefs.ErrQueryTooCostly) {
				t.Fatalf("got %v (steps %d), want ErrBudgetExceeded", err, r.Steps)
			}
			if elapsed > 2*time.Second {
				t.Fatalf("took %v", elapsed)
			}
			t.Logf("%v after %v", err, elapsed)
		})
	}
}

func TestStepBudgetIsExact(t *testing.T) {
	root := loadDoc(t, rpDoc)
	r, err := Evaluate(context.Background(), root, "count(//*)", nil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	need := r.Steps
	if _, err := Evaluate(context.Background(), root, "count(//*)", nil, Limits{MaxSteps: need}); err != nil {
		t.Fatalf("MaxSteps=%d (what it took): %v", need, err)
	}
	_, err = Evaluate(context.Background(), root, "count(//*)", nil, Limits{MaxSteps: need - 1})
	if !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d evaluation steps", need-1)) {
		t.Fatalf("MaxSteps=%d: %v", need-1, err)
	}
}

func TestTimeout(t *testing.T) {
	big := bigDoc(t, 2000)
	start := time.Now()
	_, err := Evaluate(context.Background(), big, "count(//*[count(//*[count(//*) > 0]) > 0])", nil,
		Limits{MaxSteps: math.MaxInt, Timeout: 20 * time.Millisecond})
	elapsed := time.Since(start)
	if !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), "longer than 20ms") {
		t.Fatalf("got %v", err)
	}
	if elapsed > time.Second {
		t.Fatalf("took %v", elapsed)
	}
}

func TestMaxResults(t *testing.T) {
	big := bigDoc(t, 100)
	r, err := Evaluate(context.Background(), big, "//vw:item", queryNS, Limits{MaxResults: 100})
	if err != nil || len(r.Nodes) != 100 {
		t.Fatalf("100 of 100: %d nodes, %v", len(r.Nodes), err)
	}
	_, err = Evaluate(context.Background(), big, "//vw:item", queryNS, Limits{MaxResults: 99})
	if !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), "more than 99 nodes") {
		t.Fatalf("100 of 99: %v", err)
	}
	// count() of a large node-set is fine: it is not a node-set result.
	r, err = Evaluate(context.Background(), big, "count(//vw:item)", queryNS, Limits{MaxResults: 1})
	if err != nil || r.Atomic != 100.0 {
		t.Fatalf("count: %v %v", r.Atomic, err)
	}
	// Copying results is charged: // over a deep document cannot make
	// quadratic copies.
	deep := loadDoc(t, strings.Repeat("<a>", 1000)+strings.Repeat("</a>", 1000))
	_, err = Evaluate(context.Background(), deep, "//a", nil, Limits{})
	if !errors.Is(err, ErrBudgetExceeded) {
		t.Fatalf("deep //a: %v", err)
	}
}

func TestContextCancellation(t *testing.T) {
	root := loadDoc(t, rpDoc)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Evaluate(ctx, root, "/*", nil, Limits{})
	if !errors.Is(err, ErrBudgetExceeded) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled before: %v", err)
	}

	// Cancelled while running.
	big := bigDoc(t, 2000)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	start := time.Now()
	_, err = Evaluate(ctx, big, "count(//*[count(//*[count(//*) > 0]) > 0])", nil,
		Limits{MaxSteps: math.MaxInt, Timeout: time.Hour})
	if !errors.Is(err, ErrBudgetExceeded) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled while running: %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("took %v", elapsed)
	}

	// A context deadline.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = Evaluate(ctx, big, "count(//*[count(//*[count(//*) > 0]) > 0])", nil,
		Limits{MaxSteps: math.MaxInt, Timeout: time.Hour})
	if !errors.Is(err, ErrBudgetExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
}

func TestExpressionLength(t *testing.T) {
	root := loadDoc(t, rpDoc)
	expr := "/*" + strings.Repeat(" ", 4095)
	_, err := Evaluate(context.Background(), root, expr, nil, Limits{})
	if !errors.Is(err, ErrInvalidExpression) || !strings.Contains(err.Error(), "4097 bytes long; at most 4096") {
		t.Fatalf("got %v", err)
	}
	if _, err := Evaluate(context.Background(), root, expr, nil, Limits{MaxExprLen: 5000}); err != nil {
		t.Fatalf("with a larger limit: %v", err)
	}
}

// TestAbortedEvaluationDoesNotPoisonTheCache checks that a compiled
// expression abandoned mid-evaluation is not reused.
func TestAbortedEvaluationDoesNotPoisonTheCache(t *testing.T) {
	big := bigDoc(t, 200)
	const expr = "//vw:item[vw:v > 10]"
	for i := range 5 {
		lim := Limits{}
		if i%2 == 0 {
			lim.MaxSteps = 300
		}
		r, err := Evaluate(context.Background(), big, expr, queryNS, lim)
		if i%2 == 0 {
			if !errors.Is(err, ErrBudgetExceeded) {
				t.Fatalf("run %d: %v", i, err)
			}
			continue
		}
		if err != nil || len(r.Nodes) != 189 {
			t.Fatalf("run %d: %d nodes, %v", i, len(r.Nodes), err)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	root := loadDoc(t, rpDoc)
	exprs := map[string]string{
		"/*/vw:state":              "<vw:state>",
		"//vw:nic[2]/vw:ip/text()": `text "10.0.1.5"`,
		"//vw:event/@n":            "@n=1 @n=2 @n=3",
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				for expr, want := range exprs {
					lim := Limits{}
					if (g+i)%7 == 0 {
						lim.MaxSteps = 5 // some evaluations abort
					}
					r, err := Evaluate(context.Background(), root, expr, queryNS, lim)
					if lim.MaxSteps == 5 {
						if !errors.Is(err, ErrBudgetExceeded) {
							errs <- fmt.Errorf("%s: %v", expr, err)
						}
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					if got := renderAll(r); got != want {
						errs <- fmt.Errorf("%s: got %s", expr, got)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFormatAtomic(t *testing.T) {
	for v, want := range map[any]string{
		"s": "s", true: "true", false: "false",
		1.0: "1", -2.5: "-2.5", 1e21: "1000000000000000000000", 0.000001: "0.000001",
		math.Inf(1): "Infinity", math.Inf(-1): "-Infinity", math.Copysign(0, -1): "0",
	} {
		if got := FormatAtomic(v); got != want {
			t.Errorf("FormatAtomic(%v) = %q, want %q", v, got, want)
		}
	}
	if got := FormatAtomic(math.NaN()); got != "NaN" {
		t.Errorf("NaN: %q", got)
	}
}

func TestNilRootAndNilContext(t *testing.T) {
	if _, err := Evaluate(context.Background(), nil, "/", nil, Limits{}); err == nil {
		t.Fatal("nil root accepted")
	}
	var noCtx context.Context // a nil context must not crash
	if r, err := Evaluate(noCtx, loadDoc(t, rpDoc), "count(/*)", nil, Limits{}); err != nil || r.Atomic != 1.0 {
		t.Fatalf("nil ctx: %v %v", r.Atomic, err)
	}
}

func BenchmarkSimpleQuery(b *testing.B) {
	root := loadDoc(b, rpDoc)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := Evaluate(ctx, root, "/*/vw:state", queryNS, Limits{})
		if err != nil || len(r.Nodes) != 1 {
			b.Fatal(r, err)
		}
	}
}

func BenchmarkSimpleQueryParallel(b *testing.B) {
	root := loadDoc(b, rpDoc)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := Evaluate(ctx, root, "/*/vw:state", queryNS, Limits{})
			if err != nil || len(r.Nodes) != 1 {
				b.Fatal(r, err)
			}
		}
	})
}

// BenchmarkSimpleQueryUncompiled measures a cache miss: checking, rewriting
// and compiling the expression each time.
func BenchmarkSimpleQueryUncompiled(b *testing.B) {
	root := loadDoc(b, rpDoc)
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		ns := map[string]string{"vw": "urn:vws:workspace", "n": fmt.Sprint(i)} // defeats the cache
		r, err := Evaluate(ctx, root, "/*/vw:state", ns, Limits{})
		if err != nil || len(r.Nodes) != 1 {
			b.Fatal(r, err)
		}
	}
}

func BenchmarkDescendantPredicate(b *testing.B) {
	root := loadDoc(b, rpDoc)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		r, err := Evaluate(ctx, root, "//vw:nic[@id='eth1']/vw:ip", queryNS, Limits{})
		if err != nil || len(r.Nodes) != 1 {
			b.Fatal(r, err)
		}
	}
}

// A string-value costs one step per 64 bytes of text besides its tokens, as
// Limits.MaxSteps says: otherwise one large text node, copied by concat() a few
// hundred times, allocates hundreds of MiB within a handful of steps and runs far past
// the timeout, which is only consulted as steps pass.
func TestLargeTextCostsSteps(t *testing.T) {
	text := strings.Repeat("x", 64*1000)
	root := loadDoc(t, `<rp:Doc xmlns:rp="urn:vws:rp" a="`+text+`"><rp:c>`+text+`</rp:c><!--`+text+`--></rp:Doc>`)
	for _, expr := range []string{"string-length(/)", "string-length(/*/rp:c)", "string-length(//text())", "string-length(/*/@a)", "string-length(//comment())"} {
		r, err := Evaluate(context.Background(), root, expr, queryNS, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		if r.Steps < 1000 {
			t.Errorf("%s took %d steps; a string-value of %d bytes costs at least %d", expr, r.Steps, len(text), len(text)/64)
		}
	}
	huge := "string-length(concat(" + strings.Repeat("/*/rp:c, ", 300) + "'x'))"
	r, err := Evaluate(context.Background(), root, huge, queryNS, Limits{Timeout: time.Hour})
	if !errors.Is(err, ErrBudgetExceeded) || !strings.Contains(err.Error(), "evaluation steps") {
		t.Fatalf("got %v (steps %d), want the step budget exceeded", err, r.Steps)
	}
}
