package soap

import (
	"errors"
	"strings"
	"testing"
)

// TestProcessingInstructionRefused: SOAP 1.1 and WS-I BP (R1009) forbid processing
// instructions in a message, and etree's Text stops at one: the requested time
// "2030-01-01T00:00:00<?x?>+05:00" was read as 2030-01-01T00:00:00 (taken as UTC),
// another time than the one sent. A message holding one is refused.
func TestProcessingInstructionRefused(t *testing.T) {
	for _, body := range []string{
		`<t:SetTerminationTime xmlns:t="urn:t"><t:RequestedTerminationTime>2030-01-01T00:00:00<?x?>+05:00</t:RequestedTerminationTime></t:SetTerminationTime>`,
		`<?x?><t:Ping xmlns:t="urn:t"/>`,
	} {
		_, err := Parse([]byte(`<?xml version="1.0"?><s:Envelope xmlns:s="` + NS11 + `"><s:Body>` + body + `</s:Body></s:Envelope>`))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "processing instruction <?x?>") {
			t.Errorf("%s: %v, want ErrMalformed naming the processing instruction", body, err)
		}
	}
	if _, err := Parse([]byte(`<?xml version="1.0"?><s:Envelope xmlns:s="` + NS11 + `"><s:Body><t:Ping xmlns:t="urn:t"/></s:Body></s:Envelope>`)); err != nil {
		t.Errorf("the XML declaration is no processing instruction of the message: %v", err)
	}
}
