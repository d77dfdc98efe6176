package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/pki"
)

// vws pki ca interrupted between its files must not leave a CA key without its
// certificate: such a directory is refused by a rerun ("already holds a CA") and by
// every command that issues from it. The certificate goes first, the key last; a lone
// key left by an older version is refused with what to do about it.
func TestPKICAInterruptedLeavesNoLoneKey(t *testing.T) {
	const dn = "/O=Grid/OU=vws/CN=Partial Test CA"
	raw, err := pki.ParseDN(dn)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := pki.SubjectHash(raw)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certificates")
	// The certificate cannot be written (a non-empty directory holds its name): the
	// run fails as a kill or a full disk between the two files would leave it.
	blocker := filepath.Join(dir, hash+".0")
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	ca := []string{"pki", "ca", "--dir", dir, "--dn", dn, "--key-type", "ecdsa"}
	if out, err := runCLI(t, ca...); err == nil {
		t.Fatalf("vws pki ca with its certificate unwritable: succeeded\n%s", out)
	}
	keyPath := filepath.Join(dir, "private", "ca-key.pem")
	if _, err := os.Stat(keyPath); err == nil {
		t.Errorf("a failed vws pki ca left the key %s without its certificate", keyPath)
	}
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, ca...); err != nil {
		t.Fatalf("vws pki ca again, once the certificate can be written: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "pki", "user", "--ca-dir", dir, "--cn", "alice", "--out", filepath.Join(t.TempDir(), "alice")); err != nil {
		t.Fatalf("issuing from the CA: %v\n%s", err, out)
	}

	// A lone key (left by an interrupted older version): refused, saying what it is.
	lone := filepath.Join(t.TempDir(), "certificates")
	other, err := pki.NewCA(pki.CAOptions{Subject: dn, KeyType: pki.KeyTypeECDSA})
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.KeyPEM(other.Key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(lone, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lone, "private", "ca-key.pem"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = runCLI(t, "pki", "ca", "--dir", lone, "--dn", dn, "--key-type", "ecdsa")
	if err == nil || !strings.Contains(err.Error(), "no CA certificate") || !strings.Contains(err.Error(), "Remove "+filepath.Join(lone, "private", "ca-key.pem")) {
		t.Errorf("vws pki ca over a lone CA key: %v, want it named as a key without its certificate, and to remove it", err)
	}
}
