package main

import "testing"

// TestUnboundPrefix: a query's prefixes are checked against those bound before it is
// sent — axes, functions and string literals are not prefixes.
func TestUnboundPrefix(t *testing.T) {
	ns := map[string]string{"vw": "urn:vw", "wsrl": "urn:rl"}
	for expr, want := range map[string]string{
		"/*/vw:state":                                "",
		"/*/zz:state":                                "zz",
		"/*/wsrl:TerminationTime":                    "",
		"count(/*/vw:*)":                             "",
		"/child::vw:state":                           "",
		"/*/vw:state[. = 'a:b']":                     "",
		`/*/vw:state[. = "zz:x"] | /*/qq:name`:       "qq",
		"/descendant-or-self::node()/vw:host":        "",
		"/*/vw:state[contains(., 'x')] and /*/x:y/z": "x",
	} {
		if got := unboundPrefix(expr, ns); got != want {
			t.Errorf("unboundPrefix(%q) = %q, want %q", expr, got, want)
		}
	}
}
