package wsa

import (
	"fmt"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// TestDetachCarriesOnlyTheNamespacesItUses: a detached element (a reference parameter
// echoed in every reply) declares the prefixes its names, attributes and QName values
// use, not every one in scope: 200 declarations on an envelope and 64 parameters were
// 12,800 attributes to echo.
func TestDetachCarriesOnlyTheNamespacesItUses(t *testing.T) {
	var decls strings.Builder
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&decls, ` xmlns:p%d="urn:p%d"`, i, i)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<e` + decls.String() + ` xmlns="urn:default" xmlns:q="urn:q" xmlns:t="urn:t">` +
		`<p7:key p9:a="v" b="t:x">q:value urn:uuid:1</p7:key></e>`); err != nil {
		t.Fatal(err)
	}
	c := Detach(doc.Root().SelectElement("key"))
	got := map[string]string{}
	for _, a := range c.Attr {
		if a.Space == "xmlns" || a.Key == "xmlns" {
			got[a.FullKey()] = a.Value
		}
	}
	want := map[string]string{"xmlns:p7": "urn:p7", "xmlns:p9": "urn:p9", "xmlns:q": "urn:q", "xmlns:t": "urn:t"}
	if len(got) != len(want) {
		t.Fatalf("declared %d namespaces %v; want %v", len(got), got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	// An unprefixed element keeps its default namespace.
	doc = etree.NewDocument()
	if err := doc.ReadFromString(`<e xmlns="urn:default" xmlns:p="urn:p"><k>1</k></e>`); err != nil {
		t.Fatal(err)
	}
	if c := Detach(doc.Root().SelectElement("k")); c.SelectAttrValue("xmlns", "") != "urn:default" || c.SelectAttr("xmlns:p") != nil {
		t.Errorf("detached unprefixed element: %v", c.Attr)
	}
}

// TestParseEPRBoundsItsReferenceParameters: each is echoed as a header of every reply.
func TestParseEPRBoundsItsReferenceParameters(t *testing.T) {
	epr := func(n int) string {
		return `<wsa:ReplyTo xmlns:wsa="` + NS200508 + `"><wsa:Address>` + V200508.Anonymous() + `</wsa:Address><wsa:ReferenceParameters>` +
			strings.Repeat(`<r/>`, n) + `</wsa:ReferenceParameters></wsa:ReplyTo>`
	}
	for n, ok := range map[int]bool{MaxReferences: true, MaxReferences + 1: false} {
		doc := etree.NewDocument()
		if err := doc.ReadFromString(epr(n)); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseEPR(doc.Root()); (err == nil) != ok {
			t.Errorf("%d reference parameters: %v", n, err)
		}
	}
}
