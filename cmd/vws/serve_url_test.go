package main

import (
	"crypto/x509"
	"net"
	"strings"
	"testing"
)

func TestAdvertisedURL(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	cert := &x509.Certificate{DNSNames: []string{"node7.example.org"}, IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
	ipOnly := &x509.Certificate{IPAddresses: []net.IP{net.ParseIP("10.0.0.7")}}
	for _, tc := range []struct {
		scheme string
		addr   net.Addr
		leaf   *x509.Certificate
		want   string
	}{
		{"https", tcp("127.0.0.1:8443"), cert, "https://127.0.0.1:8443"}, // a specific address is reachable as is
		{"https", tcp("[::]:8443"), cert, "https://node7.example.org:8443"},
		{"https", tcp("0.0.0.0:8443"), ipOnly, "https://10.0.0.7:8443"},
		{"http", tcp("10.1.2.3:8080"), nil, "http://10.1.2.3:8080"},
	} {
		if got := advertisedURL(tc.scheme, tc.addr, tc.leaf); got != tc.want {
			t.Errorf("advertisedURL(%s, %v) = %s, want %s", tc.scheme, tc.addr, got, tc.want)
		}
	}
}

// TestServeManagerNeedsItsRepositories: a manager without the repository role is
// told to name the Repositories it deploys from, and a URL that is none is refused.
func TestServeManagerNeedsItsRepositories(t *testing.T) {
	base := []string{"serve", "--insecure", "--listen", "127.0.0.1:0", "--role", "manager", "--libvirt-uri", "test:///default"}
	_, err := runCLI(t, append(base, "--data", t.TempDir())...)
	if err == nil || !strings.Contains(err.Error(), "--repository URL") {
		t.Fatalf("a manager with no repository: %v", err)
	}
	_, err = runCLI(t, append(base, "--data", t.TempDir(), "--repository", "repo.example.org:8443")...)
	if err == nil || !strings.Contains(err.Error(), "repo.example.org:8443") || !strings.Contains(err.Error(), "base URL") {
		t.Fatalf("a repository that is no URL: %v", err)
	}
}
