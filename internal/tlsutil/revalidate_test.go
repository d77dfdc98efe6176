package tlsutil_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/tlsutil"
)

// TestRevalidateOpenConnection: a client keeps one connection open; once its proxy
// has expired, or its certificate is revoked by a CRL that appears meanwhile, its next
// request on that connection is refused, saying why, and the connection closed.
func TestRevalidateOpenConnection(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	crl := func(revoked ...pki.RevokedSerial) []byte {
		t.Helper()
		b, err := ca.CRL(revoked, start.Add(-time.Minute), start.Add(48*time.Hour), int64(len(revoked)+1))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	caDir := filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, crl()); err != nil {
		t.Fatal(err)
	}
	issue := func(c *pki.Credential, err error) *pki.Credential {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	host := issue(ca.IssueHost(pki.HostOptions{Name: "localhost", IPs: []net.IP{net.ParseIP("127.0.0.1")}, KeyType: pki.KeyTypeECDSA}))
	alice := issue(ca.IssueUser(pki.UserOptions{CN: "alice", KeyType: pki.KeyTypeECDSA}))
	bob := issue(ca.IssueUser(pki.UserOptions{CN: "bob", KeyType: pki.KeyTypeECDSA}))
	proxy := issue(pki.IssueProxy(alice, pki.ProxyOptions{Validity: pki.Validity{Lifetime: time.Hour}}))
	hostCert := filepath.Join(dir, "host.pem")
	if err := pki.WriteCredential(hostCert, hostCert+".key", host); err != nil {
		t.Fatal(err)
	}

	trust, err := pki.LoadTrust(caDir)
	if err != nil {
		t.Fatal(err)
	}
	// The server's clock: the handshake keeps real time, requests see this one.
	var mu sync.Mutex
	now := start
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }

	cfg, err := tlsutil.Server(hostCert, hostCert+".key", "", tlsutil.WithTrust(trust))
	if err != nil {
		t.Fatal(err)
	}
	rv := tlsutil.NewRevalidator(trust, clock, nil)
	srv := httptest.NewUnstartedServer(rv.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, identity.FromRequest(r).String())
	})))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)

	type answer struct {
		status int
		body   string
		reused bool // sent on a connection an earlier request had opened
		close  bool // the server closes the connection after it
	}
	clientOf := func(c *pki.Credential) func() answer {
		var chain [][]byte
		for _, x := range c.FullChain() {
			chain = append(chain, x.Raw)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Certificate)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
			Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: c.Key}}}}
		t.Cleanup(tr.CloseIdleConnections)
		hc := &http.Client{Transport: tr}
		return func() answer {
			t.Helper()
			var a answer
			trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { a.reused = i.Reused }}
			req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), http.MethodGet, srv.URL+"/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			a.status, a.body, a.close = resp.StatusCode, strings.TrimSpace(string(b)), resp.Close
			return a
		}
	}

	t.Run("proxy expires", func(t *testing.T) {
		get := clientOf(proxy)
		if a := get(); a.status != http.StatusOK || a.body != "/O=Grid/OU=vws/CN=alice" {
			t.Fatalf("first request: %+v", a)
		}
		if a := get(); a.status != http.StatusOK || !a.reused {
			t.Fatalf("second request, before expiry: %+v", a)
		}
		advance(90 * time.Minute)
		a := get()
		if !a.reused || a.status != http.StatusForbidden || !a.close || strings.Contains(a.body, "\n") ||
			!strings.Contains(a.body, "proxy /O=Grid/OU=vws/CN=alice/CN=") || !strings.Contains(a.body, "expired at "+proxy.Certificate.NotAfter.UTC().Format(time.RFC3339)) ||
			!strings.Contains(a.body, "make a new one") {
			t.Fatalf("request on the open connection after expiry: %+v", a)
		}
		// The handshake keeps real time, so a new connection is made and passes it; the
		// request on it is refused all the same.
		if a := get(); a.reused || a.status != http.StatusForbidden {
			t.Fatalf("request after the refusal: %+v; want a new connection, refused", a)
		}
	})

	t.Run("certificate revoked", func(t *testing.T) {
		get := clientOf(bob)
		if a := get(); a.status != http.StatusOK || a.body != "/O=Grid/OU=vws/CN=bob" {
			t.Fatalf("first request: %+v", a)
		}
		if err := pki.WriteCRL(caDir, ca.Certificate, crl(pki.RevokedSerial{Serial: bob.Certificate.SerialNumber, At: start})); err != nil {
			t.Fatal(err)
		}
		// As fetch-crl would leave it, nobody calls Reload: the trust looks for changes
		// at most once a second.
		time.Sleep(1100 * time.Millisecond)
		a := get()
		if !a.reused || a.status != http.StatusForbidden || !a.close ||
			!strings.Contains(a.body, "certificate /O=Grid/OU=vws/CN=bob (serial "+bob.Certificate.SerialNumber.String()+") is revoked by the CRL of") {
			t.Fatalf("request on the open connection after revocation: %+v", a)
		}
		// Others are served as before.
		if a := clientOf(alice)(); a.status != http.StatusOK {
			t.Fatalf("alice after bob's revocation: %+v", a)
		}
	})
}
