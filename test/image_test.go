package test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/test/harness"
)

// imageServer is a real vws server; the image pool is mounted at /images.
func imageServer(t *testing.T) string {
	t.Helper()
	return harness.Start(t).URL
}

func TestCLIImage(t *testing.T) {
	url := imageServer(t)
	env := []string{"VWS_URL=" + url}
	dir := t.TempDir()
	data := make([]byte, 3<<20)
	rand.Read(data)
	data[0] = 0
	raw := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(raw, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])

	r := runVWS(t, env, "image", "import", raw, "--name", "deb12", "--os", "linux/debian/12", "--kernel", "6.1.0-18-amd64",
		"--arch", "x86_64", "--lib", "glibc=2.36", "--lib", "openmpi")
	if r.code != 0 || !strings.Contains(r.stdout, digest) || !strings.Contains(r.stdout, "new content") {
		t.Fatalf("import: %+v", r)
	}
	if r.stderr != "" {
		t.Errorf("import wrote to stderr (a progress bar belongs on terminals only): %q", r.stderr)
	}
	r = runVWS(t, env, "image", "import", raw, "--name", "deb12-copy")
	if r.code != 0 || !strings.Contains(r.stdout, digest) || !strings.Contains(r.stdout, "deduplicated") {
		t.Fatalf("import of identical content: %+v", r)
	}

	// From standard input, with no size known in advance (chunked upload).
	cmd := exec.Command(vws(t), "image", "import", "-", "--name", "from-stdin", "--url", url)
	cmd.Stdin = bytes.NewReader(data[:1<<20])
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "new content") {
		t.Fatalf("import from stdin: %v\n%s", err, out)
	}

	if qemuImg, err := exec.LookPath("qemu-img"); err == nil {
		q := filepath.Join(dir, "empty.qcow2")
		if out, err := exec.Command(qemuImg, "create", "-f", "qcow2", q, "64M").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img: %v\n%s", err, out)
		}
		r = runVWS(t, env, "image", "import", q, "--name", "empty-qcow2", "--arch", "aarch64")
		if r.code != 0 || !strings.Contains(r.stdout, "qcow2") || !strings.Contains(r.stdout, "virtual 64.0 MiB") {
			t.Fatalf("qcow2 import: %+v", r)
		}
	} else {
		t.Log("qemu-img is not installed (qemu-utils): skipping the qcow2 import")
	}

	// Imported again under its name, with its content: nothing to do (a provisioning
	// script may run twice); another file under that name is refused before its upload.
	// The libraries are a set: given again in another order, or one twice, they agree.
	for _, args := range [][]string{{"--name", "deb12"}, {"--name", "deb12", "--os", "linux/debian/12", "--arch", "x86_64"},
		{"--name", "deb12", "--lib", "openmpi", "--lib", "glibc=2.36"}, {"--name", "deb12", "--lib", "glibc=2.36", "--lib", "openmpi", "--lib", "openmpi"}} {
		r = runVWS(t, env, append([]string{"image", "import", raw}, args...)...)
		if r.code != 0 || !strings.Contains(r.stdout, digest) || !strings.Contains(r.stdout, "nothing to do") {
			t.Fatalf("import again %v: %+v", args, r)
		}
	}
	other := filepath.Join(dir, "other.raw")
	if err := os.WriteFile(other, data[:2<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	sameSize := filepath.Join(dir, "same-size.raw")
	if err := os.WriteFile(sameSize, append([]byte{0, 1}, data[2:]...), 0o644); err != nil {
		t.Fatal(err)
	}

	// The pool's refusals exit 2, as faults do (a bad name or metadata is the pool's
	// "bad request", as a soap:Client fault is the service's); what the CLI refuses
	// itself (a missing file or argument, no server there) exits 1.
	refused := []struct {
		args []string
		code int
		says string
	}{
		{[]string{"image", "import", other, "--name", "deb12"}, 2, "already taken by " + digest},
		{[]string{"image", "import", sameSize, "--name", "deb12"}, 2, "already taken by " + digest},
		{[]string{"image", "import", raw, "--name", "deb12", "--kernel", "6.2"}, 2, `with --kernel "6.1.0-18-amd64", not "6.2"`},
		{[]string{"image", "import", raw, "--name", "../x"}, 2, "not valid"},
		{[]string{"image", "import", raw, "--name", "x", "--arch", "amd64"}, 2, "x86_64"},
		{[]string{"image", "import", raw, "--name", "x", "--os", "debian"}, 2, "family[/distribution[/version]]"},
		{[]string{"image", "import", filepath.Join(dir, "missing.raw"), "--name", "x"}, 1, "no such file"},
		{[]string{"image", "import", raw}, 1, `"name" not set`},
		{[]string{"image", "remove", "nope"}, 2, "no image named"},
		{[]string{"image", "list", "--url", "http://127.0.0.1:1"}, 1, "connection refused"},
	}
	for _, tt := range refused {
		r := runVWS(t, env, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.says) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("vws %s: exit %d, stderr %q; want exit %d and one line saying %q", strings.Join(tt.args, " "), r.code, r.stderr, tt.code, tt.says)
		}
	}

	r = runVWS(t, env, "image", "list")
	if r.code != 0 {
		t.Fatalf("list: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 4 || strings.Join(strings.Fields(lines[0]), " ") != "NAME DIGEST FORMAT SIZE VIRTUAL OS KERNEL ARCH" {
		t.Fatalf("list output:\n%s", r.stdout)
	}
	var deb12 string
	for _, l := range lines {
		if strings.HasPrefix(l, "deb12 ") {
			deb12 = strings.Join(strings.Fields(l), " ")
		}
	}
	if want := "deb12 " + digest[:19] + " raw 3.0 MiB 3.0 MiB linux/debian/12 6.1.0-18-amd64 x86_64"; deb12 != want {
		t.Errorf("list row = %q\nwant        %q", deb12, want)
	}

	// The bytes the pool serves are the bytes imported.
	resp, err := http.Get(url + "/images/" + digest)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, data) || resp.Header.Get("ETag") != `"`+digest+`"` {
		t.Errorf("GET /images/%s: %s, %d bytes, ETag %q", digest, resp.Status, len(got), resp.Header.Get("ETag"))
	}

	r = runVWS(t, env, "image", "remove", "deb12")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "removed deb12" {
		t.Fatalf("remove: %+v", r)
	}
	r = runVWS(t, env, "image", "list")
	if strings.Contains(r.stdout, "deb12 ") || !strings.Contains(r.stdout, "deb12-copy") {
		t.Errorf("list after removing deb12:\n%s", r.stdout)
	}
	// deb12-copy still names the content.
	if resp, err := http.Head(url + "/images/" + digest); err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD of content another name still has: %v %v", resp, err)
	}
}
