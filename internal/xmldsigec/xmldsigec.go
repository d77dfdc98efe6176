// Package xmldsigec converts ECDSA signature values between the ASN.1 form Go's
// crypto produces and the raw r||s form XML Signature requires, for WS-Security
// messages and signed manifests alike.
package xmldsigec

import (
	"crypto/ecdsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
)

// XML Signature writes an ECDSA SignatureValue as the raw concatenation r||s, each
// integer left-padded with zeros to the byte length of the curve's order (RFC 4050
// §3.3, XML Signature 1.1 §6.4.3), not as the ASN.1 SEQUENCE that crypto.Signer
// returns and that X.509 uses. xmlsec, Santuario and WSS4J all expect the raw form.

// ecdsaSig is the ASN.1 form of an ECDSA signature (RFC 3279 Ecdsa-Sig-Value).
type ecdsaSig struct {
	R, S *big.Int
}

// Size is the byte length of each of r and s for pub's curve.
func Size(pub *ecdsa.PublicKey) int {
	return (pub.Curve.Params().N.BitLen() + 7) / 8
}

// DERToRaw turns a DER Ecdsa-Sig-Value into r||s of size bytes each.
func DERToRaw(der []byte, size int) ([]byte, error) {
	var sig ecdsaSig
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil {
		return nil, fmt.Errorf("ECDSA signature is not an ASN.1 (r, s) pair: %w", err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("ECDSA signature has %d bytes after the (r, s) pair", len(rest))
	}
	if sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, errors.New("ECDSA signature has a zero or negative r or s")
	}
	if (sig.R.BitLen()+7)/8 > size || (sig.S.BitLen()+7)/8 > size {
		return nil, fmt.Errorf("ECDSA signature integers are longer than the curve's %d bytes", size)
	}
	raw := make([]byte, 2*size)
	sig.R.FillBytes(raw[:size])
	sig.S.FillBytes(raw[size:])
	return raw, nil
}

// RawToDER turns r||s into the DER Ecdsa-Sig-Value ecdsa.VerifyASN1 takes. The
// length must be exactly twice the curve's size: a shorter value would be one whose
// leading zeros the signer dropped, which RFC 4050 does not allow and which could
// hide a split between r and s other than the one meant.
func RawToDER(raw []byte, size int) ([]byte, error) {
	if len(raw) != 2*size {
		return nil, fmt.Errorf("ECDSA SignatureValue is %d bytes; the key's curve needs r||s of %d", len(raw), 2*size)
	}
	der, err := asn1.Marshal(ecdsaSig{R: new(big.Int).SetBytes(raw[:size]), S: new(big.Int).SetBytes(raw[size:])})
	if err != nil {
		return nil, fmt.Errorf("re-encoding the ECDSA signature: %w", err)
	}
	return der, nil
}
