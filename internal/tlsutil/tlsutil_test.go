package tlsutil_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/tlsutil"
)

// TestMutualTLS runs a server with tlsutil.Server and calls it with
// client.TLSConfig credentials: user certificates and proxy files pass and are
// identified as their user; no certificate, or one from an unknown CA, fails the
// handshake.
func TestMutualTLS(t *testing.T) {
	t.Setenv("X509_USER_PROXY", "")
	t.Setenv("X509_USER_CERT", "")
	t.Setenv("HOME", t.TempDir())
	// No /tmp/x509up_u<uid> of the machine's.
	saved := client.ProxyDir
	client.ProxyDir = t.TempDir()
	t.Cleanup(func() { client.ProxyDir = saved })
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA(pki.CAOptions{Subject: "/O=Other/CN=CA"})
	if err != nil {
		t.Fatal(err)
	}
	crl, err := ca.CRL(nil, time.Now().Add(-time.Minute), time.Now().Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, crl); err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "localhost", IPs: []net.IP{net.ParseIP("127.0.0.1")}})
	if err != nil {
		t.Fatal(err)
	}
	alice, err := ca.IssueUser(pki.UserOptions{CN: "alice", VOAttributes: []string{"/vws/Role=admin"}})
	if err != nil {
		t.Fatal(err)
	}
	mallory, err := other.IssueUser(pki.UserOptions{CN: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	p1, err := pki.IssueProxy(alice, pki.ProxyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := pki.IssueProxy(p1, pki.ProxyOptions{Limited: true})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, c *pki.Credential) string {
		path := filepath.Join(dir, name)
		if err := pki.WriteCredential(path, path+".key", c); err != nil {
			t.Fatal(err)
		}
		return path
	}
	hostCert, aliceCert, malloryCert := write("host.pem", host), write("alice.pem", alice), write("mallory.pem", mallory)
	proxyFile := filepath.Join(dir, "x509up")
	if err := pki.WriteProxyFile(proxyFile, p2); err != nil {
		t.Fatal(err)
	}

	serve := func(t *testing.T, opts ...tlsutil.Option) string {
		cfg, err := tlsutil.Server(hostCert, hostCert+".key", caDir, opts...)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := identity.FromRequest(r)
			fmt.Fprintf(w, "%s proxy=%v limited=%v attrs=%s", id, id.Proxy, id.Limited, strings.Join(id.Attributes, ","))
		}))
		srv.TLS = cfg
		srv.Config.ErrorLog = nil
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL // https://127.0.0.1:port
	}
	call := func(url, cert, key string, env ...string) (string, error) {
		for i := 0; i+1 < len(env); i += 2 {
			t.Setenv(env[i], env[i+1])
		}
		cfg, err := client.TLSConfig(cert, key, caDir)
		if err != nil {
			return "", err
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	url := serve(t)
	for _, tc := range []struct {
		name, cert, key string
		env             []string
		want, wantErr   string
	}{
		{name: "user certificate", cert: aliceCert, key: aliceCert + ".key", want: "/O=Grid/OU=vws/CN=alice proxy=false limited=false attrs=/vws/Role=admin"},
		{name: "proxy file by flag", cert: proxyFile, want: "/O=Grid/OU=vws/CN=alice proxy=true limited=true attrs=/vws/Role=admin"},
		{name: "X509_USER_PROXY", env: []string{"X509_USER_PROXY", proxyFile}, want: "/O=Grid/OU=vws/CN=alice proxy=true limited=true"},
		{name: "X509_USER_CERT", env: []string{"X509_USER_PROXY", "", "X509_USER_CERT", aliceCert, "X509_USER_KEY", aliceCert + ".key"}, want: "/O=Grid/OU=vws/CN=alice proxy=false"},
		{name: "no certificate", env: []string{"X509_USER_PROXY", "", "X509_USER_CERT", ""}, wantErr: "certificate required"},
		{name: "untrusted CA", cert: malloryCert, key: malloryCert + ".key", wantErr: "tls: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := call(url, tc.cert, tc.key, tc.env...)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !strings.HasPrefix(got, tc.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	t.Run("anonymous allowed", func(t *testing.T) {
		url := serve(t, tlsutil.AllowAnonymous())
		t.Setenv("X509_USER_PROXY", "")
		if got, err := call(url, "", ""); err != nil || !strings.HasPrefix(got, "<anonymous>") {
			t.Fatalf("anonymous: %q %v", got, err)
		}
		if got, err := call(url, proxyFile, ""); err != nil || !strings.HasPrefix(got, "/O=Grid/OU=vws/CN=alice proxy=true") {
			t.Fatalf("proxy: %q %v", got, err)
		}
		if _, err := call(url, malloryCert, malloryCert+".key"); err == nil {
			t.Fatal("an untrusted certificate passed where anonymous callers may")
		}
	})
	t.Run("expired proxy refused by the client", func(t *testing.T) {
		old, err := pki.IssueProxy(alice, pki.ProxyOptions{Validity: pki.Validity{NotBefore: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour}})
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "old")
		if err := pki.WriteProxyFile(f, old); err != nil {
			t.Fatal(err)
		}
		if _, err := call(url, f, ""); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("got %v", err)
		}
	})
}
