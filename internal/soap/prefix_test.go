package soap

import (
	"errors"
	"strings"
	"testing"
)

// TestUndeclaredPrefixRefused: a name whose prefix is not declared is not
// namespace-well-formed XML (Namespaces in XML 1.0, "Prefix Declared"). etree reads
// it as in no namespace, so such a request was carried out, and a reference
// parameter <c:Corr> with c undeclared was echoed as it came, into a reply no
// namespace-aware client can read. The request is refused, naming the name.
func TestUndeclaredPrefixRefused(t *testing.T) {
	const head = `<s:Envelope xmlns:s="` + NS11 + `" xmlns:wsa="http://www.w3.org/2005/08/addressing"><s:Header>`
	for _, c := range []struct{ in, name string }{
		{head + `<wsa:ReplyTo><wsa:Address>http://www.w3.org/2005/08/addressing/anonymous</wsa:Address><wsa:ReferenceParameters><c:Corr>42</c:Corr></wsa:ReferenceParameters></wsa:ReplyTo></s:Header><s:Body><p:Op xmlns:p="urn:p"/></s:Body></s:Envelope>`, "c:Corr"},
		{head + `</s:Header><s:Body><p:Op/></s:Body></s:Envelope>`, "p:Op"},
		{head + `</s:Header><s:Body><p:Op xmlns:p="urn:p" q:a="1"/></s:Body></s:Envelope>`, "q:a"},
		{head + `</s:Header><s:Body><p:Op xmlns:p="urn:p"><p:x xmlns:p=""/></p:Op></s:Body></s:Envelope>`, `xmlns:p=""`},
	} {
		_, err := Parse([]byte(c.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: err = %v, want ErrMalformed naming %s", c.in, err, c.name)
		}
	}
	// Declared where used, on an ancestor, or the xml prefix: all fine.
	ok := head + `<h:A xmlns:h="urn:h" s:mustUnderstand="0" xml:lang="en"/></s:Header><s:Body><p:Op xmlns:p="urn:p"><p:x><q:y xmlns:q="urn:q" q:a="1"/></p:x></p:Op></s:Body></s:Envelope>`
	if _, err := Parse([]byte(ok)); err != nil {
		t.Errorf("a namespace-well-formed envelope: %v", err)
	}
}
