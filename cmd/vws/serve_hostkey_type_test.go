package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/pki"
)

// An Ed25519 host credential is one TLS serves with, but vws signs manifests and
// SOAP messages with the host key, RSA or ECDSA only: the start is refused, naming
// the flags and what to give, before the data directory is made.
func TestServeRefusesAHostKeyItCannotSignWith(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA(pki.CAOptions{KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	caDir := filepath.Join(dir, "certificates")
	if _, err := pki.WriteCADir(caDir, ca.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	// A host certificate as vws pki issues it, for an Ed25519 key.
	host, err := ca.IssueHost(pki.HostOptions{Name: "127.0.0.1", KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, host.Certificate, ca.Certificate, pub, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "hostcert.pem"), filepath.Join(dir, "hostkey.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}

	data := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, "serve", "--role", "repository", "--listen", "127.0.0.1:0", "--data", data,
		"--cert", cert, "--key", key, "--ca", caDir)
	wantError(t, r, "--key "+key, "Ed25519", "RSA or ECDSA")
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("vws serve refused the host key, yet made %s", data)
	}
}
