package wssec

import (
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/wsa"
)

// BenchmarkSign signs a response-sized envelope as the server does (RSA-2048).
func BenchmarkSign(b *testing.B) {
	p := getPKI(b)
	s := p.signer(RSASHA256, time.Now())
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Sign(request(wsa.NS200508, "urn:uuid:bench")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify verifies a parsed request; the replay cache is left out (one
// message would be a replay after the first round), VerifyChain is trivial (the
// site's trust is the caller's cost).
func BenchmarkVerify(b *testing.B) {
	p := getPKI(b)
	now := time.Now()
	doc := request(wsa.NS200508, "urn:uuid:bench")
	if err := p.signer(RSASHA256, now).Sign(doc); err != nil {
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
}

// BenchmarkServerPair is the server's share of one signed exchange: parse and verify
// the request, sign and serialize the response (replay cache left out as above).
func BenchmarkServerPair(b *testing.B) {
	p := getPKI(b)
	now := time.Now()
	doc := request(wsa.NS200508, "urn:uuid:pair")
	if err := p.signer(RSASHA256, now).Sign(doc); err != nil {
		b.Fatal(err)
	}
	req, _ := doc.WriteToBytes()
	v := &Verifier{VerifyChain: p.verifyChain, Now: func() time.Time { return now }}
	s := p.signer(RSASHA256, now)
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
		if err := s.Sign(resp); err != nil {
			b.Fatal(err)
		}
		if _, err := resp.WriteToBytes(); err != nil {
			b.Fatal(err)
		}
	}
}
