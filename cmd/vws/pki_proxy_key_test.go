package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A --key without --cert names the key the user means to sign with: vws pki proxy
// must not drop it for the default credential and make a proxy of someone else's.
func TestPKIProxyKeyWithoutCertIsRefused(t *testing.T) {
	dir := t.TempDir()
	ca, alice, bob, out := filepath.Join(dir, "certificates"), filepath.Join(dir, "alice"), filepath.Join(dir, "bob"), filepath.Join(dir, "x509up")
	for _, s := range [][]string{
		{"pki", "ca", "--dir", ca, "--key-type", "ecdsa"},
		{"pki", "user", "--ca-dir", ca, "--cn", "alice", "--key-type", "ecdsa", "--out", alice},
		{"pki", "user", "--ca-dir", ca, "--cn", "bob", "--key-type", "ecdsa", "--out", bob},
	} {
		if msg, err := runCLI(t, s...); err != nil {
			t.Fatalf("vws %s: %v\n%s", strings.Join(s, " "), err, msg)
		}
	}
	// The default credential, which the proxy would otherwise be made from.
	t.Setenv("X509_USER_CERT", alice+"-cert.pem")
	t.Setenv("X509_USER_KEY", alice+"-key.pem")
	msg, err := runCLI(t, "pki", "proxy", "--key", bob+"-key.pem", "--out", out)
	if err == nil || !strings.Contains(err.Error(), "--key needs --cert") {
		t.Errorf("vws pki proxy --key without --cert: %v (want it refused: --key needs --cert)\n%s", err, msg)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("the refused proxy command wrote %s (%v)", out, serr)
	}
}
