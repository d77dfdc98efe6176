package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// hostCredential writes a test CA directory and a host certificate valid as v, with
// its key of mode keyMode.
func hostCredential(t *testing.T, v pki.Validity, keyMode os.FileMode) (cert, key, caDir string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	caDir = filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	host, err := ca.IssueHost(pki.HostOptions{Name: "127.0.0.1", Validity: v, KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "hostcert.pem"), filepath.Join(dir, "hostkey.pem")
	if err := pki.WriteCredential(cert, key, host); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, keyMode); err != nil {
		t.Fatal(err)
	}
	return cert, key, caDir
}

// A host certificate past its end (or before its start) would start a server every
// client refuses at the handshake, with nothing on the server's side but handshake
// errors: the start is refused, saying which certificate and what to do.
func TestServeRefusesAHostCertificateOutsideItsValidity(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    pki.Validity
		says string
	}{
		{"expired", pki.Validity{NotBefore: time.Now().Add(-48 * time.Hour), Lifetime: 24 * time.Hour}, "expired"},
		{"not yet valid", pki.Validity{NotBefore: time.Now().Add(24 * time.Hour), Lifetime: 24 * time.Hour}, "not valid before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cert, key, caDir := hostCredential(t, tc.v, 0o600)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			r := vwsRun(t, ctx, "serve", "--role", "repository", "--listen", "127.0.0.1:0", "--data", t.TempDir(),
				"--cert", cert, "--key", key, "--ca", caDir)
			wantError(t, r, cert, tc.says, "renew")
		})
	}
}

// A host key others may read lets anyone on the machine act as the host: refused at
// start, as Globus refuses it, saying how to fix the mode.
func TestServeRefusesAHostKeyOthersMayRead(t *testing.T) {
	cert, key, caDir := hostCredential(t, pki.Validity{}, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, "serve", "--role", "repository", "--listen", "127.0.0.1:0", "--data", t.TempDir(),
		"--cert", cert, "--key", key, "--ca", caDir)
	wantError(t, r, key, "chmod 600")
}
