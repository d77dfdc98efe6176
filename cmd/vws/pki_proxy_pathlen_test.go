package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A --path-length below -1 is no number of further proxies: it was taken for -1, no
// limit, and the user who meant a limit got a proxy anyone could delegate forever.
func TestPKIProxyNegativePathLengthIsRefused(t *testing.T) {
	dir := t.TempDir()
	ca, alice, out := filepath.Join(dir, "certificates"), filepath.Join(dir, "alice"), filepath.Join(dir, "x509up")
	for _, s := range [][]string{
		{"pki", "ca", "--dir", ca, "--key-type", "ecdsa"},
		{"pki", "user", "--ca-dir", ca, "--cn", "alice", "--key-type", "ecdsa", "--out", alice},
	} {
		if msg, err := runCLI(t, s...); err != nil {
			t.Fatalf("vws %s: %v\n%s", strings.Join(s, " "), err, msg)
		}
	}
	msg, err := runCLI(t, "pki", "proxy", "--cert", alice+"-cert.pem", "--key", alice+"-key.pem", "--path-length", "-2", "--out", out)
	if err == nil || !strings.Contains(err.Error(), "--path-length -2") {
		t.Errorf("vws pki proxy --path-length -2: %v (want it refused)\n%s", err, msg)
	}
	if _, serr := os.Stat(out); !errors.Is(serr, fs.ErrNotExist) {
		t.Errorf("the refused proxy command wrote %s (%v)", out, serr)
	}
}
