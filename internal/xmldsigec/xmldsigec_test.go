package xmldsigec

import (
	"bytes"
	"encoding/asn1"
	"math/big"
	"testing"
)

func TestECDSAConversion(t *testing.T) {
	// Small integers are left-padded to the curve size, both ways.
	r, s := big.NewInt(0x0102), new(big.Int).Lsh(big.NewInt(1), 255)
	der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := DERToRaw(der, 32)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 64)
	want[30], want[31], want[32] = 1, 2, 0x80
	if !bytes.Equal(raw, want) {
		t.Fatalf("raw = %x\nwant  %x", raw, want)
	}
	back, err := RawToDER(raw, 32)
	if err != nil || !bytes.Equal(back, der) {
		t.Fatalf("back = %x, %v; want %x", back, err, der)
	}
	for name, bad := range map[string][]byte{
		"trailing bytes": append(append([]byte{}, der...), 0),
		"not ASN.1":      {0x01, 0x02},
		"r too long":     mustDER(t, new(big.Int).Lsh(big.NewInt(1), 256), s),
		"zero s":         mustDER(t, r, big.NewInt(0)),
	} {
		if _, err := DERToRaw(bad, 32); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustDER(t *testing.T, r, s *big.Int) []byte {
	der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		t.Fatal(err)
	}
	return der
}
