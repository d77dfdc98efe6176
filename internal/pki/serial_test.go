package pki

import (
	"errors"
	"math/big"
	"strings"
	"testing"
)

// TestParseSerialAsOpenSSLPrintsIt: openssl x509 -noout -serial prints a serial in hex
// without a prefix (serial=1234 is 0x1234): pasted, it must never be read as decimal
// and so revoke another certificate. A bare even number of digits may be either and
// is refused; vws pki's decimal serials otherwise still read.
func TestParseSerialAsOpenSSLPrintsIt(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64 // 0: refused
	}{
		{"serial=1234", 0x1234},
		{"serial=0A1B2C", 0x0A1B2C},
		{"SERIAL=0a1b2c", 0x0A1B2C},
		{"0A1B2C", 0x0A1B2C},
		{"0x1234", 0x1234},
		{"12:34", 0x1234},
		{"12345", 12345},
		{"1234", 0},
		{"8412345678901234", 0},
		{"+12", 0},
		{"serial=", 0},
		{"serial=12_34", 0},
		{"0", 0},
		{"nonsense", 0},
	} {
		n, err := ParseSerial(c.in)
		switch {
		case c.want == 0 && err == nil:
			t.Errorf("ParseSerial(%q) = %v (0x%x), want it refused", c.in, n, n)
		case c.want != 0 && err != nil:
			t.Errorf("ParseSerial(%q): %v", c.in, err)
		case c.want != 0 && n.Cmp(big.NewInt(c.want)) != 0:
			t.Errorf("ParseSerial(%q) = %v (0x%x), want %d (0x%x)", c.in, n, n, c.want, c.want)
		}
	}
	_, err := ParseSerial("1234")
	if !errors.Is(err, ErrAmbiguousSerial) || !strings.Contains(err.Error(), "0x1234") {
		t.Errorf("an ambiguous serial's refusal does not say how to write it: %v", err)
	}
}
