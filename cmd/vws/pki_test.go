package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/tlsutil"
)

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func opensslVerify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	out, err := exec.Command("openssl", append([]string{"verify"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestPKICommands makes a CA, host and user certificates, a proxy and a revocation
// with the CLI, and has openssl, pki.Trust and a TLS handshake judge the results.
func TestPKICommands(t *testing.T) {
	dir := t.TempDir()
	ca, host, user, proxy := filepath.Join(dir, "certificates"), filepath.Join(dir, "host"), filepath.Join(dir, "alice"), filepath.Join(dir, "x509up")
	steps := [][]string{
		{"pki", "ca", "--dir", ca, "--days", "30", "--dn", "/O=Grid/OU=vws/CN=CLI Test CA"},
		{"pki", "host", "--ca-dir", ca, "--name", "localhost", "--ip", "127.0.0.1", "--out", host},
		{"pki", "user", "--ca-dir", ca, "--cn", "alice", "--vo-attribute", "/atlas/Role=production", "--out", user},
		{"pki", "proxy", "--cert", user + "-cert.pem", "--key", user + "-key.pem", "--hours", "2", "--path-length", "1", "--out", proxy},
	}
	for _, s := range steps {
		if out, err := runCLI(t, s...); err != nil {
			t.Fatalf("vws %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	if fi, err := os.Stat(filepath.Join(ca, "private", "ca-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("CA key: %v %v", fi, err)
	}
	if fi, err := os.Stat(proxy); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("proxy file: %v %v", fi, err)
	}
	for _, c := range []string{host + "-cert.pem", user + "-cert.pem"} {
		if out, err := opensslVerify(t, "-CApath", ca, "-crl_check", c); err != nil {
			t.Fatalf("openssl refused %s: %s", c, out)
		}
	}
	if out, err := opensslVerify(t, "-allow_proxy_certs", "-CApath", ca, "-crl_check", "-untrusted", user+"-cert.pem", proxy); err != nil {
		t.Fatalf("openssl refused the proxy: %s", out)
	}

	trust, err := pki.LoadTrust(ca)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pki.ReadCertificates(proxy)
	if err != nil {
		t.Fatal(err)
	}
	id, err := trust.Verify(chain, time.Now())
	if err != nil || id.DN != "/O=Grid/OU=vws/CN=alice" || !id.Proxy || len(id.Attributes) != 1 || id.Attributes[0] != "/atlas/Role=production" {
		t.Fatalf("proxy identity %+v, %v", id, err)
	}

	t.Run("https with --cert and --ca", func(t *testing.T) {
		cfg, err := tlsutil.Server(host+"-cert.pem", host+"-key.pem", ca)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, identity.FromRequest(r).String())
		}))
		srv.TLS = cfg
		srv.StartTLS()
		defer srv.Close()
		tlsFlags.cert, tlsFlags.key, tlsFlags.ca = proxy, "", ca
		defer func() { tlsFlags.cert, tlsFlags.ca = "", "" }()
		hc := &http.Client{Transport: &lazyTransport{}}
		resp, err := hc.Get(srv.URL) // https://127.0.0.1:…: the host certificate's IP SAN
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if b, _ := io.ReadAll(resp.Body); string(b) != "/O=Grid/OU=vws/CN=alice" {
			t.Fatalf("server saw %q", b)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		out, err := runCLI(t, "pki", "revoke", "--ca-dir", ca, user+"-cert.pem")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if out, err := opensslVerify(t, "-CApath", ca, "-crl_check", user+"-cert.pem"); err == nil || !strings.Contains(out, "revoked") {
			t.Fatalf("openssl accepted a revoked certificate: %s", out)
		}
		// A second revocation keeps the first.
		if out, err := runCLI(t, "pki", "revoke", "--ca-dir", ca, "0x1234"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if err := trust.Reload(); err != nil {
			t.Fatal(err)
		}
		if _, err := trust.Verify(chain, time.Now()); err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("revoked user's proxy: %v", err)
		}
		if _, err := trust.Verify(chain[len(chain)-1:], time.Now()); err == nil {
			t.Fatal("revoked user accepted")
		}
	})

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pki", "user", "--cn", "bob", "--out", user}, "--ca-dir is required"},
		{[]string{"pki", "host", "--ca-dir", dir, "--name", "x", "--out", host}, "is " + dir + " a CA directory made by vws pki ca?"},
		{[]string{"pki", "host", "--ca-dir", ca, "--name", "x", "--ip", "300.1.1.1", "--out", host}, `--ip "300.1.1.1" is not an IP address`},
		{[]string{"pki", "user", "--ca-dir", ca, "--cn", "bob", "--vo-attribute", "atlas", "--out", user}, "an FQAN starts with '/'"},
		{[]string{"pki", "user", "--ca-dir", ca, "--cn", "mallory/CN=host/evil", "--out", user}, `common name "mallory/CN=host/evil" holds "/" or "="`},
		{[]string{"pki", "user", "--ca-dir", ca, "--cn", "a=b", "--out", user}, `holds "/" or "="`},
		{[]string{"pki", "host", "--ca-dir", ca, "--name", "x/CN=admin", "--out", host}, `host name "x/CN=admin" holds "/" or "="`},
		{[]string{"pki", "ca", "--dir", ca}, "already holds a CA"},
		{[]string{"pki", "revoke", "--ca-dir", ca, "nonsense"}, "neither a certificate file nor a serial"},
		// openssl's hex serial=1234 pasted bare: not revoked as decimal 1234.
		{[]string{"pki", "revoke", "--ca-dir", ca, "1234"}, "write 0x1234 for hex"},
		{[]string{"pki", "proxy", "--cert", user + "-cert.pem", "--key", host + "-key.pem", "--out", proxy}, "does not belong to the certificate"},
	} {
		if out, err := runCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("vws %s: %v (want %q)\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}

// TestServeNeedsCredentials: without --insecure and without host credentials,
// serve says what to pass.
func TestServeNeedsCredentials(t *testing.T) {
	if fileExists(defaultHostCert) {
		t.Skip(defaultHostCert + " exists on this machine")
	}
	_, err := runCLI(t, "serve", "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--cert HOSTCERT --key HOSTKEY") || !strings.Contains(err.Error(), "vws pki") || !strings.Contains(err.Error(), "--insecure") {
		t.Fatalf("got %v", err)
	}
	if _, err := runCLI(t, "serve", "--insecure", "--cert", "x.pem"); err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Fatalf("got %v", err)
	}
}
