package soap

import (
	"errors"
	"strings"
	"testing"
)

// TestTooDeepSaysTheBound: a request nested past MaxDepth is refused saying how deep
// elements may go, not with the XML library's own wording.
func TestTooDeepSaysTheBound(t *testing.T) {
	in := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
		strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</soapenv:Body></soapenv:Envelope>`
	_, err := Parse([]byte(in))
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("err = %v, want %v", err, ErrMalformed)
	}
	if msg := err.Error(); !strings.Contains(msg, "nested more than 64") || strings.Contains(msg, "etree") {
		t.Errorf("the refusal %q does not say elements may be nested at most 64 deep, or names the XML library", msg)
	}
}
