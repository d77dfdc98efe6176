package pki

import (
	"os"
	"path/filepath"
	"testing"
)

// The proxy goes to /tmp/x509up_u<uid>, through a temporary file beside it: in a
// directory everyone may write, another user can plant that name first, as a link to
// a file of the victim's. Writing the proxy must neither follow it nor write into it.
func TestWriteProxyFilePlantedTemporaryFile(t *testing.T) {
	f := testPKI(t)
	p := proxy(t, f.alice, ProxyOptions{})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x509up_u1000")
	for name, plant := range map[string]func(tmp string) error{
		"symlink":   func(tmp string) error { return os.Symlink(victim, tmp) },
		"hard link": func(tmp string) error { return os.Link(victim, tmp) },
	} {
		os.Remove(path)
		if err := plant(path + ".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := WriteProxyFile(path, p); err != nil {
			t.Logf("%s: %v", name, err)
		}
		if data, _ := os.ReadFile(victim); string(data) != "precious\n" {
			t.Fatalf("a %s planted at %s.tmp had the proxy and its key written into %s (now %d bytes)", name, path, victim, len(data))
		}
		if fi, err := os.Lstat(path); err == nil && !fi.Mode().IsRegular() {
			t.Fatalf("%s: the proxy file %s is a %s, not a file of its own", name, path, fi.Mode().Type())
		}
	}
	// A temporary file a killed run left is the user's own: it does not stop the next.
	if err := os.WriteFile(path+".tmp", []byte("half a proxy"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteProxyFile(path, p); err != nil {
		t.Fatalf("after a leftover temporary file: %v", err)
	}
	got, err := LoadCredential(path, "")
	if err != nil || !got.Certificate.Equal(p.Certificate) {
		t.Fatalf("proxy file not written: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("proxy file mode %s, want 0600", fi.Mode().Perm())
	}
}
