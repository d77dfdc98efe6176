package client

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadCredentialsOfAMissingFile names the missing file and what to give instead of
// the operating system's bare "open …: no such file or directory".
func TestLoadCredentialsOfAMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "usercert.pem")
	_, err := LoadCredentials(missing, missing+".key", "")
	if err == nil {
		t.Fatal("a missing certificate file was accepted")
	}
	for _, want := range []string{missing + " does not exist", "--cert", "vws pki proxy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "open ") {
		t.Errorf("%q still carries the bare open error", err)
	}
}

// TestLoadCredentialsOfADirectory says to give the PEM files, not a directory.
func TestLoadCredentialsOfADirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadCredentials(dir, dir, "")
	if err == nil || !strings.Contains(err.Error(), "give the PEM files themselves") {
		t.Fatalf("--cert DIR: %v", err)
	}
}
