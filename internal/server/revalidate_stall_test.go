package server

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/tlsutil"
)

// TestRefusedChainDoesNotHoldItsConnection: a request refused because the caller's
// chain expired on an open connection is answered and its connection closed, even
// when the client then sends nothing of the body it announced: net/http would
// otherwise wait for that body, without any deadline, before closing.
func TestRefusedChainDoesNotHoldItsConnection(t *testing.T) {
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
	conn, err := tls.Dial("tcp", hs.Listener.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "localhost",
		Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: proxy.Key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("before expiry: HTTP %d", resp.StatusCode)
	}

	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	fmt.Fprintf(conn, "PUT /images?name=x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n0123456789") // and then nothing
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after expiry: HTTP %d", resp.StatusCode)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	t0 := time.Now()
	_, err = br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the connection of a refused chain is still open %s after its 403: the server waits for the body it will never read", time.Since(t0).Round(time.Second))
	}
}
