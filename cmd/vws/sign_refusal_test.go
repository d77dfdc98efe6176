package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/pki"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/tlsutil"
	"github.com/vws-grid/vws/internal/vwsns"
)

// TestSignedRequestRefusedSaysWhy: a service refusing a signed request for its message
// security cannot sign its fault (it signs only the answers to requests it accepted),
// and vws --sign must not take that fault's word as the service's; but it says what
// the unverified fault says, here that the request was signed for another address
// than the service's, rather than only that the answer is not signed.
func TestSignedRequestRefusedSaysWhy(t *testing.T) {
	dir := t.TempDir()
	ca, host, user, proxy := filepath.Join(dir, "certificates"), filepath.Join(dir, "host"), filepath.Join(dir, "alice"), filepath.Join(dir, "x509up")
	for _, s := range [][]string{
		{"pki", "ca", "--dir", ca, "--days", "30", "--dn", "/O=Grid/OU=vws/CN=Sign Test CA"},
		{"pki", "host", "--ca-dir", ca, "--name", "localhost", "--ip", "127.0.0.1", "--out", host},
		{"pki", "user", "--ca-dir", ca, "--cn", "alice", "--out", user},
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
	srv, err := server.New(context.Background(), server.Config{
		DataDir: filepath.Join(dir, "data"), Roles: []string{"factory", "repository"},
		HostCertFile: host + "-cert.pem", HostKeyFile: host + "-key.pem", Trust: trust,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cfg, err := tlsutil.Server(host+"-cert.pem", host+"-key.pem", "", tlsutil.WithTrust(trust))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.TLS = cfg
	hs.StartTLS()
	defer hs.Close()
	srv.SetBaseURL(hs.URL) // https://127.0.0.1:PORT

	// The same service under the host's name, which its certificate names too.
	other := strings.Replace(hs.URL, "127.0.0.1", "localhost", 1)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--sign", "--cert", proxy, "--ca", ca,
		"wsrf", "get-property", "-s", other + "/wsrf/services/" + vwsns.FactoryService, "fac:Version"}, io.Discard, &stderr)
	msg := stderr.String()
	if code == 0 {
		t.Fatalf("a request signed for another address was carried out: %s", msg)
	}
	if !strings.Contains(msg, "not to this service") {
		t.Errorf("the refusal does not say why: %s", msg)
	}
	if code == exitFault || !strings.Contains(msg, "not signed") {
		t.Errorf("the unverified fault is not told as such (exit %d): %s", code, msg)
	}
}
