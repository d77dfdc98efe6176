package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/tlsutil"
)

// TestExpiredProxyRefusedOnEveryEndpoint: with CAs, the server checks the caller's
// chain on each request at its clock, whatever the endpoint, not only at the handshake.
func TestExpiredProxyRefusedOnEveryEndpoint(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "localhost", IPs: []net.IP{net.ParseIP("127.0.0.1")}, KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ca.IssueUser(pki.UserOptions{CN: "alice", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := pki.IssueProxy(alice, pki.ProxyOptions{Validity: pki.Validity{Lifetime: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	hostCert := filepath.Join(dir, "host.pem")
	if err := pki.WriteCredential(hostCert, hostCert+".key", host); err != nil {
		t.Fatal(err)
	}
	trust, err := pki.LoadTrust(caDir)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }

	srv, err := New(t.Context(), Config{DataDir: filepath.Join(dir, "data"), Roles: []string{"factory", "repository"},
		HostCertFile: hostCert, HostKeyFile: hostCert + ".key", Trust: trust, Now: clock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cfg, err := tlsutil.Server(hostCert, hostCert+".key", "", tlsutil.WithTrust(trust))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.TLS = cfg
	hs.StartTLS()
	t.Cleanup(hs.Close)

	var chain [][]byte
	for _, c := range proxy.FullChain() {
		chain = append(chain, c.Raw)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: proxy.Key}}}}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	do := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, hs.URL+path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := do(http.MethodGet, "/healthz"); status != http.StatusOK {
		t.Fatalf("before expiry: %d %s", status, body)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	for _, ep := range []struct{ method, path string }{
		{http.MethodGet, "/healthz"}, {http.MethodGet, "/metrics"}, {http.MethodGet, "/images"},
		{http.MethodGet, "/workspaces/x"}, {http.MethodPost, "/wsrf/services/WorkspaceFactoryService"},
	} {
		status, body := do(ep.method, ep.path)
		if status != http.StatusForbidden || !strings.Contains(body, "client certificate refused: proxy /O=Grid/OU=vws/CN=alice/CN=") || !strings.Contains(body, "make a new one") {
			t.Errorf("%s %s after expiry: %d %s", ep.method, ep.path, status, body)
		}
	}
}
