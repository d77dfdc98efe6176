package cidata

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/describe"
)

// A file the guest already has (left in the image with mode 0644, say) is replaced by
// the placed one: its content must never sit under the old, more open mode until the
// chmod, as "umask 077" promises for new files. Redirecting onto an existing file
// keeps that file's mode, so a secret would be readable by others meanwhile, and any
// of them that opened it then keeps reading it after the chmod.
func TestAnExistingFileIsNeverOpenWithTheSecret(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir, helper := guestDir(t)
	// A base64 on PATH that notes the mode of what it writes to, then decodes. (Only
	// /bin/sh looks it up: busybox sh runs its own applet.)
	fake := filepath.Join(dir, "fakebin")
	seen := filepath.Join(dir, "seen")
	if err := os.MkdirAll(fake, 0o755); err != nil {
		t.Fatal(err)
	}
	real := "/usr/bin/base64"
	if _, err := os.Stat(real); err != nil {
		t.Skip("no /usr/bin/base64")
	}
	script := "#!/bin/sh\nstat -L -c %a /proc/self/fd/0 <&1 >>" + seen + "\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(fake, "base64"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", fake+":"+os.Getenv("PATH"))

	secret := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(secret, []byte("placeholder from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(secret, 0o644)
	s := &describe.Startup{
		Executable: helper,
		Env:        []describe.EnvVar{{Name: "VWS_CIDATA_HELPER", Value: "1"}},
		Files:      []describe.File{{Path: secret, Mode: 0o600, Content: []byte("PRIVATE KEY\n")}},
	}
	out, code := runScript(t, shell{"sh", []string{"/bin/sh"}}, mustUserData(t, s), dir)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	modes, err := os.ReadFile(seen)
	if err != nil {
		t.Fatalf("the fake base64 did not run: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(modes)); got != "600" {
		t.Errorf("the secret was written into %s while its mode was %s, not 600\n%s", secret, got, out)
	}
	if got, _ := os.ReadFile(secret); string(got) != "PRIVATE KEY\n" {
		t.Errorf("content %q", got)
	}
	if fi, _ := os.Stat(secret); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
}
