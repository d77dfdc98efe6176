package wssec

import (
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// benchKeys are the signers the benchmarks compare: RSA-2048 (rsa-sha256) and ECDSA
// P-256 (ecdsa-sha256), the two key types vws pki makes.
func benchKeys(p *testPKI, now time.Time) []struct {
	name string
	s    *Signer
} {
	return []struct {
		name string
		s    *Signer
	}{{"RSA-2048", p.signer(RSASHA256, now)}, {"ECDSA-P256", p.ecSigner(RSASHA256, now)}}
}

// BenchmarkSign signs a response-sized envelope as the server does.
func BenchmarkSign(b *testing.B) {
	p := getPKI(b)
	for _, k := range benchKeys(p, time.Now()) {
		b.Run(k.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := k.s.Sign(request(wsa.NS200508, "urn:uuid:bench")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify verifies a parsed request; the replay cache is left out (one
// message would be a replay after the first round), VerifyChain is trivial (the
// site's trust is the caller's cost).
func BenchmarkVerify(b *testing.B) {
	p := getPKI(b)
	now := time.Now()
	for _, k := range benchKeys(p, now) {
		b.Run(k.name, func(b *testing.B) {
			doc := request(wsa.NS200508, "urn:uuid:bench")
			if err := k.s.Sign(doc); err != nil {
				b.Fatal(err)
			}
			data, _ := doc.WriteToBytes()
			env, err := soap.Parse(data)
			if err != nil {
				b.Fatal(err)
			}
			v := &Verifier{VerifyChain: p.verifyChain, Now: func() time.Time { return now }}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServerPair is the server's share of one signed exchange: parse and verify
// the request, sign and serialize the response (replay cache left out as above).
func BenchmarkServerPair(b *testing.B) {
	p := getPKI(b)
	now := time.Now()
	for _, k := range benchKeys(p, now) {
		b.Run(k.name, func(b *testing.B) {
			doc := request(wsa.NS200508, "urn:uuid:pair")
			if err := k.s.Sign(doc); err != nil {
				b.Fatal(err)
			}
			req, _ := doc.WriteToBytes()
			v := &Verifier{VerifyChain: p.verifyChain, Now: func() time.Time { return now }}
			b.ReportAllocs()
			for b.Loop() {
				env, err := soap.Parse(req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := v.Verify(env); err != nil {
					b.Fatal(err)
				}
				resp := response(wsa.NS200508, "urn:uuid:pair")
				if err := k.s.Sign(resp); err != nil {
					b.Fatal(err)
				}
				if _, err := resp.WriteToBytes(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
