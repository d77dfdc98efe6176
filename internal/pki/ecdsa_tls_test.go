package pki_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/tlsutil"
)

// TestECDSAMutualTLS runs the server's and the client's own TLS configurations
// (tlsutil.Server with pki.Trust, client.TLSConfig) with an all-ECDSA PKI: the
// handshake completes with an ECDSA host certificate and an ECDSA user proxy, and the
// server names the proxy's owner.
func TestECDSAMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{Subject: "/O=Grid/OU=ec/CN=EC CA", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	crl, err := ca.CRL(nil, now.Add(-time.Minute), now.Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, crl); err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "127.0.0.1", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	hostCert, hostKey := filepath.Join(dir, "host-cert.pem"), filepath.Join(dir, "host-key.pem")
	if err := pki.WriteCredential(hostCert, hostKey, host); err != nil {
		t.Fatal(err)
	}
	user, err := ca.IssueUser(pki.UserOptions{CN: "erin", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := pki.IssueProxy(user, pki.ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	proxyFile := filepath.Join(dir, "x509up")
	if err := pki.WriteProxyFile(proxyFile, proxy); err != nil {
		t.Fatal(err)
	}

	serverTLS, err := tlsutil.Server(hostCert, hostKey, caDir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, identity.FromRequest(r).DN)
	}))
	srv.TLS = serverTLS
	srv.StartTLS()
	defer srv.Close()

	clientTLS, err := client.TLSConfig(proxyFile, "", caDir)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatalf("ECDSA mutual TLS: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "/O=Grid/OU=ec/CN=erin" {
		t.Fatalf("status %d, identity %q; want the proxy's owner /O=Grid/OU=ec/CN=erin", resp.StatusCode, body)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || resp.TLS.PeerCertificates[0].PublicKeyAlgorithm.String() != "ECDSA" {
		t.Fatalf("server certificate is not the ECDSA host certificate: %+v", resp.TLS)
	}
}
