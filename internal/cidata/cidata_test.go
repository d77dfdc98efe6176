package cidata

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kdomanski/iso9660"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
)

func testConfig() Config {
	return Config{
		InstanceID: "ws-0123.abc_def",
		Hostname:   "ws1.grid.example",
		Startup: &describe.Startup{
			Executable: "/usr/bin/worker",
			Args:       []string{"--job", "it's"},
			Files:      []describe.File{{Path: "/etc/worker.conf", Mode: 0o600, Content: []byte{0, 1, 2, 0xff}}},
			OnExit:     "poweroff",
		},
	}
}

func TestMetaData(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{InstanceID: "i-1"}, "instance-id: \"i-1\"\n"},
		// Values YAML would otherwise read as a number, a boolean or null.
		{Config{InstanceID: "1.0", Hostname: "a.b"}, "instance-id: \"1.0\"\nlocal-hostname: \"a.b\"\n"},
		{Config{InstanceID: "null"}, "instance-id: \"null\"\n"},
		{Config{InstanceID: "-", Hostname: "123"}, "instance-id: \"-\"\nlocal-hostname: \"123\"\n"},
	} {
		got, err := MetaData(tc.c)
		if err != nil || string(got) != tc.want {
			t.Errorf("MetaData(%+v) = %q, %v; want %q", tc.c, got, err, tc.want)
		}
	}
	// If PyYAML is around, let a real YAML parser read it back.
	if py, err := exec.LookPath("python3"); err == nil && exec.Command(py, "-c", "import yaml").Run() == nil {
		got, _ := MetaData(Config{InstanceID: "1.0", Hostname: "true"})
		cmd := exec.Command(py, "-c", `import sys, yaml; d = yaml.safe_load(sys.stdin); print(repr(d["instance-id"]), repr(d["local-hostname"]))`)
		cmd.Stdin = bytes.NewReader(got)
		out, err := cmd.Output()
		if err != nil || string(out) != "'1.0' 'true'\n" {
			t.Errorf("yaml.safe_load: %q %v", out, err)
		}
	}
	for _, c := range []Config{
		{InstanceID: ""},
		{InstanceID: "a b"},
		{InstanceID: "a\"b"},
		{InstanceID: "a\nlocal-hostname: evil"},
		{InstanceID: strings.Repeat("a", 129)},
		{InstanceID: "i", Hostname: "-bad"},
		{InstanceID: "i", Hostname: "bad-"},
		{InstanceID: "i", Hostname: "a..b"},
		{InstanceID: "i", Hostname: "a.b."},
		{InstanceID: "i", Hostname: "a_b"},
		{InstanceID: "i", Hostname: "a\"b"},
		{InstanceID: "i", Hostname: strings.Repeat("a", 64)},
		{InstanceID: "i", Hostname: strings.Repeat("abcdefghi.", 25) + "abcd"},
	} {
		if _, err := MetaData(c); !errors.Is(err, errdefs.ErrBadRequest) {
			t.Errorf("MetaData(%q, %q): %v, want ErrBadRequest", c.InstanceID, c.Hostname, err)
		}
	}
}

// linuxName is the name Linux's isofs shows for a plain ISO9660 file identifier (no
// Rock Ridge, no Joliet, default map=normal): lower case, ";version" and a trailing
// "." dropped (fs/isofs/dir.c, isofs_name_translate).
func linuxName(id string) string {
	id = strings.ToLower(id)
	if i := strings.IndexByte(id, ';'); i >= 0 {
		id = id[:i]
	}
	return strings.TrimSuffix(id, ".")
}

// readBack writes c to a fresh image and returns its path with the expected contents.
func readBack(t *testing.T, c Config) (string, map[string][]byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cidata.iso")
	if err := Write(p, c); err != nil {
		t.Fatalf("Write: %v", err)
	}
	meta, _ := MetaData(c)
	user, _ := UserData(c.Startup)
	return p, map[string][]byte{MetaDataName: meta, UserDataName: user}
}

func TestWriteReadBackLibrary(t *testing.T) {
	p, want := readBack(t, testConfig())
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := iso9660.OpenImage(f)
	if err != nil {
		t.Fatal(err)
	}
	if l, err := img.Label(); err != nil || l != VolumeID {
		t.Errorf("label %q, %v; want %q", l, err, VolumeID)
	}
	root, err := img.RootDir()
	if err != nil {
		t.Fatal(err)
	}
	kids, err := root.GetChildren()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range kids {
		names = append(names, k.Name())
		data, err := io.ReadAll(k.Reader())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want[k.Name()]) {
			t.Errorf("%s: content differs:\n%s", k.Name(), data)
		}
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "meta-data user-data" {
		t.Errorf("root holds %q", names)
	}
	if !bytes.HasPrefix(want[UserDataName], []byte("#!/bin/sh\n")) {
		t.Error("user-data is not a #!/bin/sh script")
	}
}

// TestWriteReadBackXorriso reads the image with an independent implementation
// (libisofs, through xorriso): volume id, names, contents.
func TestWriteReadBackXorriso(t *testing.T) {
	x, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso not installed")
	}
	p, want := readBack(t, testConfig())
	out, err := exec.Command(x, "-indev", p, "-pvd_info", "-find", "/", "-exec", "lsdl").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	s := string(out)
	if !regexp.MustCompile(`(?m)^Volume id\s*: 'cidata'$`).MatchString(s) {
		t.Errorf("xorriso does not report volume id 'cidata':\n%s", s)
	}
	files := regexp.MustCompile(`(?m)^-\S+\s.*'(/[^']*)'$`).FindAllStringSubmatch(s, -1)
	var names []string
	for _, m := range files {
		names = append(names, m[1])
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "/meta-data /user-data" {
		t.Errorf("xorriso lists %q:\n%s", names, s)
	}
	dir := t.TempDir()
	if out, err := exec.Command(x, "-osirrox", "on", "-indev", p, "-extract", "/", dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract: %v\n%s", err, out)
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s extracted by xorriso: %v, content equal %v", name, err, bytes.Equal(got, data))
		}
	}
}

// TestWriteReadBackIsoinfo reads the raw directory records (genisoimage's isoinfo): the
// identifiers are "meta-data;1" and "user-data;1", which Linux shows as meta-data and
// user-data; there is no Rock Ridge or Joliet.
func TestWriteReadBackIsoinfo(t *testing.T) {
	x, err := exec.LookPath("isoinfo")
	if err != nil {
		t.Skip("isoinfo (genisoimage) not installed")
	}
	p, want := readBack(t, testConfig())
	out, err := exec.Command(x, "-d", "-i", p).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^Volume id: cidata$`).Match(out) {
		t.Errorf("isoinfo -d: %v\n%s", err, out)
	}
	out, err = exec.Command(x, "-f", "-i", p).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -f: %v\n%s", err, out)
	}
	raw := strings.Fields(string(out))
	sort.Strings(raw)
	if strings.Join(raw, " ") != "/meta-data;1 /user-data;1" {
		t.Errorf("raw identifiers %q", raw)
	}
	for _, r := range raw {
		name := linuxName(strings.TrimPrefix(r, "/"))
		if _, ok := want[name]; !ok {
			t.Errorf("Linux would show %q as %q", r, name)
		}
		got, err := exec.Command(x, "-i", p, "-x", r).Output()
		if err != nil || !bytes.Equal(got, want[name]) {
			t.Errorf("isoinfo -x %s: %v, content equal %v", r, err, bytes.Equal(got, want[name]))
		}
	}
}

// TestWriteReadBackBlkid checks the label as udev/blkid (and so cloud-init's
// "find devices with LABEL=cidata") sees it.
func TestWriteReadBackBlkid(t *testing.T) {
	x, err := exec.LookPath("blkid")
	if err != nil {
		t.Skip("blkid not installed")
	}
	p, _ := readBack(t, testConfig())
	out, err := exec.Command(x, "-p", "-o", "export", p).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^LABEL=cidata$`).Match(out) || !regexp.MustCompile(`(?m)^TYPE=iso9660$`).Match(out) {
		t.Errorf("blkid: %v\n%s", err, out)
	}
}

// TestWriteMount mounts the image as the guest kernel would, where this sandbox allows
// it (root, loop devices, isofs in the running kernel).
func TestWriteMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	p, want := readBack(t, testConfig())
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "iso9660", "-o", "loop,ro", p, mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount an ISO9660 image here: %v %s", err, bytes.TrimSpace(out))
	}
	defer exec.Command("umount", mnt).Run()
	ents, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		got, err := os.ReadFile(filepath.Join(mnt, e.Name()))
		if err != nil || !bytes.Equal(got, want[e.Name()]) {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
	if strings.Join(names, " ") != "meta-data user-data" {
		t.Errorf("mounted names %q", names)
	}
}

func TestWriteNilStartup(t *testing.T) {
	p, want := readBack(t, Config{InstanceID: "i-1"})
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("image mode: %v %v", fi.Mode(), err)
	}
	if !bytes.Contains(want[UserDataName], []byte("no startup program")) {
		t.Errorf("user-data:\n%s", want[UserDataName])
	}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cidata.iso")

	// An invalid configuration: nothing is written.
	bad := testConfig()
	bad.Startup.Args = []string{"a\x00b"}
	if err := Write(p, bad); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Fatalf("Write(bad) = %v", err)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("left behind: %q", names)
	}

	// An existing image survives a failed Write untouched.
	if err := os.WriteFile(p, []byte("old image"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, Config{InstanceID: ""}); !errors.Is(err, errdefs.ErrBadRequest) {
		t.Fatalf("Write(no instance id) = %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old image" {
		t.Errorf("existing file changed: %q", b)
	}

	// A failure after the image is fully written (the rename onto a non-empty
	// directory fails): the temporary file is gone, the directory untouched.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(blocked, testConfig()); err == nil {
		t.Fatal("Write onto a non-empty directory succeeded")
	}
	if names := listDir(t, dir); strings.Join(names, " ") != "blocked cidata.iso" {
		t.Errorf("directory holds %q after a failed rename", names)
	}
	if names := listDir(t, blocked); strings.Join(names, " ") != "keep" {
		t.Errorf("blocked holds %q", names)
	}

	// A missing directory: an error, nothing created.
	if err := Write(filepath.Join(dir, "missing", "x.iso"), testConfig()); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("Write created the missing directory")
	}

	// Success replaces the old file in one step.
	if err := Write(p, testConfig()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := iso9660.OpenImage(f); err != nil {
		t.Errorf("replaced file is not an image: %v", err)
	}
	if names := listDir(t, dir); strings.Join(names, " ") != "blocked cidata.iso" {
		t.Errorf("directory holds %q", names)
	}
}

// TestWriteStagesNothingOutsideItsDirectory: the startup files (which may hold
// secrets) reach the disk only inside the image's own directory, which the Manager
// cleans with the workspace. A staging copy under the system temporary directory
// would stay there for good when the manager is killed while writing.
func TestWriteStagesNothingOutsideItsDirectory(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "no-such-dir"))
	dir := t.TempDir()
	p := filepath.Join(dir, "cidata.iso")
	if err := Write(p, testConfig()); err != nil {
		t.Fatalf("Write with an unusable TMPDIR: %v", err)
	}
	if names := listDir(t, dir); strings.Join(names, " ") != "cidata.iso" {
		t.Errorf("directory holds %q", names)
	}
}
