package identity

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
)

// TestNamesHostIgnoresCase: host names are case-insensitive, as the SAN match is; a
// CN-only (Globus-style) host certificate for host/Node1.example.org names
// node1.example.org. Only ASCII letters fold: a Unicode look-alike (the Kelvin sign
// for K) names no other host.
func TestNamesHostIgnoresCase(t *testing.T) {
	for _, c := range []struct {
		cn, host string
		want     bool
	}{
		{"host/Node1.example.org", "node1.example.org", true},
		{"host/node1.example.org", "NODE1.Example.ORG", true},
		{"Node1.example.org", "node1.example.org", true},
		{"host/node1.example.org", "node2.example.org", false},
		{"host/\u212aeystone.example.org", "keystone.example.org", false},
	} {
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: c.cn}}
		if got := NamesHost(cert, c.host); got != c.want {
			t.Errorf("NamesHost(CN=%s, %q) = %v, want %v", c.cn, c.host, got, c.want)
		}
	}
}
