package server

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// TestServiceCallsRefuseARevokedHost: the calls a server makes to other services (the
// Factory's and the Manager's to the Repository, notifications) check the peer's host
// certificate against the site's CRLs, as the CLI does: crypto/tls consults none, and
// a host whose certificate the site revoked (its key stolen) still passed for the
// service.
func TestServiceCallsRefuseARevokedHost(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) *pki.Credential {
		t.Helper()
		c, err := ca.IssueHost(pki.HostOptions{Name: name, IPs: []net.IP{net.ParseIP("127.0.0.1")}, KeyType: pki.KeyTypeECDSA})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	self, stolen := issue("factory.example.org"), issue("repository.example.org")
	now := time.Now()
	crl, err := ca.CRL([]pki.RevokedSerial{{Serial: stolen.Certificate.SerialNumber}}, now.Add(-time.Hour), now.Add(24*time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, crl); err != nil {
		t.Fatal(err)
	}
	trust, err := pki.LoadTrust(caDir)
	if err != nil {
		t.Fatal(err)
	}
	hostCert := filepath.Join(dir, "host.pem")
	if err := pki.WriteCredential(hostCert, hostCert+".key", self); err != nil {
		t.Fatal(err)
	}
	sec, err := newSecurity(Config{HostCertFile: hostCert, HostKeyFile: hostCert + ".key", Trust: trust}, nil)
	if err != nil {
		t.Fatal(err)
	}

	peer := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	var chain [][]byte
	for _, c := range stolen.FullChain() {
		chain = append(chain, c.Raw)
	}
	peer.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: stolen.Key}}}
	peer.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	peer.StartTLS()
	defer peer.Close()

	resp, err := sec.httpClient().Get(peer.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a call reached a host whose certificate the site revoked (HTTP %d)", resp.StatusCode)
	}
	if !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("refused, but not saying the certificate is revoked: %v", err)
	}
	// The Factory and the Manager read a failed verification as a request not sent.
	if cv := (*tls.CertificateVerificationError)(nil); !errors.As(err, &cv) {
		t.Fatalf("refused, but not as a failed certificate verification: %v", err)
	}
}
