package wssec

import (
	"bytes"
	"testing"

	"github.com/beevik/etree"
)

// TestCanonicalDefaultToken: "#default" in the PrefixList renders the default
// namespace as inclusive c14n does. The expected forms are libxml2's: xmlsec1
// --store-references printed them for the same envelopes and PrefixLists.
func TestCanonicalDefaultToken(t *testing.T) {
	const mixed = `<p:Op xmlns:p="urn:p"><p:a>x</p:a><b xmlns="">y</b><p:c xmlns="urn:e"><p:f/><d/></p:c><g/>` +
		`<p:h xmlns=""><p:i xmlns="urn:d"/></p:h></p:Op>`
	for _, tc := range []struct{ envAttrs, body, prefixes, want string }{
		{`xmlns="urn:d"`, mixed, "#default",
			`<s:Body xmlns="urn:d" xmlns:s="urn:s" xmlns:wsu="urn:wsu" wsu:Id="body"><p:Op xmlns:p="urn:p"><p:a>x</p:a><b xmlns="">y</b>` +
				`<p:c xmlns="urn:e"><p:f></p:f><d></d></p:c><g></g><p:h xmlns=""><p:i xmlns="urn:d"></p:i></p:h></p:Op></s:Body>`},
		// Without it, exclusive c14n leaves the default out wherever no unprefixed
		// element uses it.
		{`xmlns="urn:d"`, mixed, "",
			`<s:Body xmlns:s="urn:s" xmlns:wsu="urn:wsu" wsu:Id="body"><p:Op xmlns:p="urn:p"><p:a>x</p:a><b>y</b>` +
				`<p:c><p:f></p:f><d xmlns="urn:e"></d></p:c><g xmlns="urn:d"></g><p:h><p:i></p:i></p:h></p:Op></s:Body>`},
		{``, `<p:Op xmlns:p="urn:p" xmlns:q="urn:q"><p:a xmlns="urn:x"><p:b/></p:a><c/></p:Op>`, "#default p",
			`<s:Body xmlns:s="urn:s" xmlns:wsu="urn:wsu" wsu:Id="body"><p:Op xmlns:p="urn:p"><p:a xmlns="urn:x"><p:b></p:b></p:a><c></c></p:Op></s:Body>`},
		{``, `<Op xmlns="urn:x"><p:a xmlns:p="urn:p" xmlns="urn:x"><b xmlns=""/></p:a></Op>`, "#default",
			`<s:Body xmlns:s="urn:s" xmlns:wsu="urn:wsu" wsu:Id="body"><Op xmlns="urn:x"><p:a xmlns:p="urn:p"><b xmlns=""></b></p:a></Op></s:Body>`},
	} {
		d := etree.NewDocument()
		if err := d.ReadFromString(`<s:Envelope xmlns:s="urn:s" ` + tc.envAttrs + ` xmlns:wsu="urn:wsu"><s:Header/><s:Body wsu:Id="body">` +
			tc.body + `</s:Body></s:Envelope>`); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := canonicalize(&buf, d.FindElement("//Body"), tc.prefixes); err != nil {
			t.Fatal(err)
		}
		if got := buf.String(); got != tc.want {
			t.Errorf("envelope %s, body %s, PrefixList %q:\n got %s\nwant %s", tc.envAttrs, tc.body, tc.prefixes, got, tc.want)
		}
	}
}
