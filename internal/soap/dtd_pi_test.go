package soap

import (
	"errors"
	"testing"
)

// TestEntityDeclarationBehindAProcessingInstruction: an entity declaration hidden
// behind "<!--" inside a processing instruction is refused — the byte scan, hasDTD,
// skips from the PI's "<!--" to the later "-->", while the parser ends the PI at "?>"
// and reads the <!ENTITY ...> directive inside the Body.
func TestEntityDeclarationBehindAProcessingInstruction(t *testing.T) {
	in := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
		`<?x <!-- ?><!ENTITY xxe SYSTEM "file:///etc/passwd"><!-- -->` +
		`<p:Op xmlns:p="urn:p"/></soapenv:Body></soapenv:Envelope>`
	env, err := Parse([]byte(in))
	if !errors.Is(err, ErrDTD) {
		t.Fatalf("Parse accepted an entity declaration (err = %v, payload %v); PROTOCOL.md: any DTD or entity declaration is refused", err, env != nil && env.Payload != nil)
	}
}
