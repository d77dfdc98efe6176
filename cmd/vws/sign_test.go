package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/internal/vwsns"
)

// TestSignFlag: against a server whose policy requires signed Factory requests, an
// unsigned call over mutual TLS is refused naming the requirement, and the same call
// with --sign is accepted (and its signed answer verified).
// signSite is a Factory and Repository over mutual TLS on https://127.0.0.1:PORT,
// with a test CA, a host credential naming localhost and 127.0.0.1, and alice's proxy;
// rules, when not "", is the policy file's text.
type signSite struct {
	dir, ca, proxy, url string
}

func startSignSite(t *testing.T, rules string) signSite {
	t.Helper()
	dir := t.TempDir()
	ca, host, user, proxy := filepath.Join(dir, "certificates"), filepath.Join(dir, "host"), filepath.Join(dir, "alice"), filepath.Join(dir, "x509up")
	for _, s := range [][]string{
		{"pki", "ca", "--dir", ca, "--days", "30", "--dn", "/O=Grid/OU=vws/CN=Sign Test CA"},
		{"pki", "host", "--ca-dir", ca, "--name", "localhost", "--ip", "127.0.0.1", "--out", host},
		{"pki", "user", "--ca-dir", ca, "--cn", "alice", "--out", user},
		// A proxy file holds certificate and key: the wsrf verbs' own --key (the
		// resource key name) shadows the root --key.
		{"pki", "proxy", "--cert", user + "-cert.pem", "--key", user + "-key.pem", "--hours", "1", "--out", proxy},
	} {
		if out, err := runCLI(t, s...); err != nil {
			t.Fatalf("vws %s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}
	trust, err := pki.LoadTrust(ca)
	if err != nil {
		t.Fatal(err)
	}
	var policyFile string
	if rules != "" {
		policyFile = filepath.Join(dir, "policy")
		if err := os.WriteFile(policyFile, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := server.New(context.Background(), server.Config{
		DataDir: filepath.Join(dir, "data"), Roles: []string{"factory", "repository"}, PolicyFile: policyFile,
		HostCertFile: host + "-cert.pem", HostKeyFile: host + "-key.pem", Trust: trust,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := tlsutil.Server(host+"-cert.pem", host+"-key.pem", "", tlsutil.WithTrust(trust))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.TLS = cfg
	hs.StartTLS()
	t.Cleanup(hs.Close)
	srv.SetBaseURL(hs.URL)
	return signSite{dir: dir, ca: ca, proxy: proxy, url: hs.URL}
}

func TestSignFlag(t *testing.T) {
	site := startSignSite(t, "require-signature WorkspaceFactoryService *\nallow * *\n")
	dir, ca, proxy := site.dir, site.ca, site.proxy

	call := []string{"--cert", proxy, "--ca", ca,
		"wsrf", "get-property", "-s", site.url + "/wsrf/services/" + vwsns.FactoryService, "fac:Version"}
	out, err := runCLI(t, call...)
	if err == nil || !strings.Contains(err.Error(), "requires WorkspaceFactoryService.GetResourceProperty requests to be signed") {
		t.Fatalf("unsigned call: %v (want the signature requirement)\n%s", err, out)
	}
	out, err = runCLI(t, append([]string{"--sign"}, call...)...)
	if err != nil {
		t.Fatalf("signed call: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Version>") {
		t.Fatalf("signed call printed %q, want the factory's Version", out)
	}
	// --sign without trusted CAs cannot check the answers: it says so.
	t.Setenv("X509_CERT_DIR", "")
	if _, err := os.Stat("/etc/grid-security/certificates"); err != nil {
		t.Setenv("HOME", dir)
		if _, err := runCLI(t, "--sign", "--cert", proxy,
			"wsrf", "get-property", "-s", "http://127.0.0.1:1/wsrf/services/"+vwsns.FactoryService, "fac:Version"); err == nil || !strings.Contains(err.Error(), "--ca") {
			t.Errorf("--sign without CAs: %v", err)
		}
	}
}
