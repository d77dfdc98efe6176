package cidata

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
)

// The test binary doubles as the startup program the scripts run: with
// VWS_CIDATA_HELPER=1 in its environment it prints its arguments, environment, working
// directory and uid, one per line (Go-quoted, so newlines in values stay on one line),
// writes a line to stderr and exits with VWS_CIDATA_HELPER_EXIT.
func TestMain(m *testing.M) {
	if os.Getenv("VWS_CIDATA_HELPER") == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

func helperMain() int {
	w := bufio.NewWriter(os.Stdout)
	for _, a := range os.Args[1:] {
		fmt.Fprintf(w, "helper argv %s\n", strconv.Quote(a))
	}
	for _, e := range os.Environ() {
		fmt.Fprintf(w, "helper env %s\n", strconv.Quote(e))
	}
	wd, _ := os.Getwd()
	fmt.Fprintf(w, "helper cwd %s\n", strconv.Quote(wd))
	fmt.Fprintf(w, "helper uid %d\n", os.Getuid())
	w.Flush()
	fmt.Fprintln(os.Stderr, "HELPER-STDERR line")
	code, _ := strconv.Atoi(os.Getenv("VWS_CIDATA_HELPER_EXIT"))
	return code
}

type helperRun struct {
	argv []string
	env  map[string]string
	cwd  string
	uid  int
	ran  bool
}

func parseHelper(t *testing.T, out string) helperRun {
	t.Helper()
	r := helperRun{env: map[string]string{}, uid: -1}
	for _, line := range strings.Split(out, "\n") {
		kind, val, ok := strings.Cut(strings.TrimPrefix(line, "helper "), " ")
		if !ok || !strings.HasPrefix(line, "helper ") {
			continue
		}
		r.ran = true
		if kind == "uid" {
			r.uid, _ = strconv.Atoi(val)
			continue
		}
		s, err := strconv.Unquote(val)
		if err != nil {
			t.Fatalf("helper line %q: %v", line, err)
		}
		switch kind {
		case "argv":
			r.argv = append(r.argv, s)
		case "env":
			k, v, _ := strings.Cut(s, "=")
			r.env[k] = v
		case "cwd":
			r.cwd = s
		}
	}
	return r
}

// shell is a way of running user-data as the guest does: "/bin/sh user-data".
type shell struct {
	name string
	argv []string
}

// shells are dash (/bin/sh here, with coreutils and util-linux around it) and busybox
// sh, which in Debian's static busybox runs its own applets (su, env, base64, mkdir,
// id, ...) before any PATH lookup: the guest's userland.
func shells(t *testing.T) []shell {
	t.Helper()
	var out []shell
	if _, err := os.Stat("/bin/sh"); err == nil {
		out = append(out, shell{"sh", []string{"/bin/sh"}})
	}
	for _, bb := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if _, err := os.Stat(bb); err == nil {
			out = append(out, shell{"busybox", []string{bb, "sh"}})
			break
		}
	}
	if len(out) < 2 {
		t.Logf("busybox not found: running with /bin/sh only")
	}
	if len(out) == 0 {
		t.Skip("no /bin/sh")
	}
	return out
}

var (
	unshareOnce sync.Once
	unshareOK   bool
)

// sandboxed says whether scripts run in their own PID namespace (unshare --pid
// --fork): there a stray "reboot" only ends that namespace, so hostile strings may
// name it literally.
func sandboxed() bool {
	unshareOnce.Do(func() {
		unshareOK = exec.Command("unshare", "--pid", "--fork", "true").Run() == nil
	})
	return unshareOK
}

// runScript runs script with sh in dir and returns its combined output and exit code.
func runScript(t *testing.T, sh shell, script []byte, dir string) (string, int) {
	t.Helper()
	p := filepath.Join(dir, "user-data")
	if err := os.WriteFile(p, script, 0o644); err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string{}, sh.argv...), p)
	if sandboxed() {
		argv = append([]string{"unshare", "--pid", "--fork", "--"}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", sh.name, err)
	}
	return out.String(), code
}

// guestDir is a fresh directory whose path is a valid guest path (t.TempDir() is, in
// practice; checked), traversable by other users, holding a copy of the helper at
// bin/helper.
func guestDir(t *testing.T) (dir, helper string) {
	t.Helper()
	dir = t.TempDir()
	if !guestPathRE.MatchString(dir) {
		d, err := os.MkdirTemp("/tmp", "vws-cidata-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
		if !guestPathRE.MatchString(dir) {
			t.Skipf("no temporary directory with a valid guest path (%q)", dir)
		}
	}
	// t.TempDir's directory and its parent are this test's own; open them for the
	// su test's unprivileged user.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	helper = filepath.Join(dir, "bin", "helper")
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(helper, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, helper
}

func mustUserData(t *testing.T, s *describe.Startup) []byte {
	t.Helper()
	b, err := UserData(s)
	if err != nil {
		t.Fatalf("UserData: %v", err)
	}
	return b
}

func hostileStrings(canary string) []string {
	h := []string{
		"",
		"'",
		"''",
		`'\''`,
		`"`,
		`\`,
		`\n`,
		"$(touch " + canary + ")",
		"`touch " + canary + "`",
		"; touch " + canary + ";",
		"&& touch " + canary,
		"| touch " + canary,
		"> " + canary,
		"$HOME",
		"${HOME:-x}",
		"$((1+1))",
		"$0 $@ $* $#",
		"a\nb",
		"\n",
		"\r\n",
		"a\tb",
		"  spaced  ",
		"*",
		"/*",
		"~",
		"~root",
		"#comment",
		"!!",
		"-c",
		"-l",
		"--",
		"-",
		"A=B",
		"%s%n",
		"VWS_CIDATA_EOF",
		"héllo wörld ✓ 日本語 🙂",
		"\x01\x07\x1b[31mred",
		strings.Repeat("x'", MaxArgLen/2), // the longest allowed, every other one a quote
	}
	if sandboxed() {
		h = append(h, "$(reboot)", "`reboot`", "; reboot -f")
	}
	return h
}

func TestUserDataQuoting(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir, helper := guestDir(t)
			canary := filepath.Join(dir, "canary")
			hostile := hostileStrings(canary)
			if !sandboxed() {
				t.Log("unshare --pid unavailable: probing command substitution with touch instead of reboot")
			}
			s := &describe.Startup{
				Executable:       helper,
				Args:             hostile,
				WorkingDirectory: filepath.Join(dir, "work", "dir"),
				Env: []describe.EnvVar{
					{Name: "VWS_CIDATA_HELPER", Value: "1"},
					// The program's PATH and IFS must not change the script's own.
					{Name: "PATH", Value: "/nonexistent"},
					{Name: "IFS", Value: "/"},
				},
			}
			want := map[string]string{"VWS_CIDATA_HELPER": "1", "PATH": "/nonexistent", "IFS": "/"}
			for i, v := range hostile {
				name := fmt.Sprintf("V_%d", i)
				s.Env = append(s.Env, describe.EnvVar{Name: name, Value: v})
				want[name] = v
			}
			out, code := runScript(t, sh, mustUserData(t, s), dir)
			if code != 0 {
				t.Errorf("exit code %d, want 0; output:\n%s", code, out)
			}
			r := parseHelper(t, out)
			if !r.ran {
				t.Fatalf("the program did not run; output:\n%s", out)
			}
			if len(r.argv) != len(hostile) {
				t.Fatalf("program got %d arguments, want %d: %q", len(r.argv), len(hostile), r.argv)
			}
			for i := range hostile {
				if r.argv[i] != hostile[i] {
					t.Errorf("argument %d: got %q, want %q", i+1, r.argv[i], hostile[i])
				}
			}
			for k, v := range want {
				if got, ok := r.env[k]; !ok || got != v {
					t.Errorf("env %s: got %q (present %v), want %q", k, got, ok, v)
				}
			}
			if r.cwd != s.WorkingDirectory {
				t.Errorf("cwd %q, want %q", r.cwd, s.WorkingDirectory)
			}
			if _, err := os.Stat(canary); err == nil {
				t.Errorf("a hostile string was executed: %s exists", canary)
			}
			for _, line := range []string{"vws: startup " + helper + "\n", "vws: startup program exited with status 0\n"} {
				if !strings.Contains(out, line) {
					t.Errorf("output lacks %q:\n%s", line, out)
				}
			}
		})
	}
}

func TestUserDataFiles(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir, helper := guestDir(t)
			all := make([]byte, 256*4)
			for i := range all {
				all[i] = byte(i)
			}
			big := make([]byte, MaxFileSize)
			rand.Read(big)
			files := []describe.File{
				{Path: filepath.Join(dir, "new", "deep", "tool.bin"), Mode: 0o755, Content: all},
				{Path: filepath.Join(dir, "secret"), Mode: 0o600, Content: []byte("s3cret\n")},
				{Path: filepath.Join(dir, "empty"), Mode: 0o644, Content: nil},
				{Path: filepath.Join(dir, "big", ".hidden"), Mode: 0o640, Content: big},
				// Content that looks like the here-document's end and like shell syntax.
				{Path: filepath.Join(dir, "eof"), Mode: 0o644, Content: []byte("VWS_CIDATA_EOF\n$(touch " + dir + "/canary)\n'\n")},
			}
			// An existing file is overwritten and gets the mode asked for.
			if err := os.WriteFile(files[1].Path, []byte("old content, longer than the new"), 0o666); err != nil {
				t.Fatal(err)
			}
			s := &describe.Startup{
				Executable: helper,
				Env:        []describe.EnvVar{{Name: "VWS_CIDATA_HELPER", Value: "1"}},
				Files:      files,
			}
			out, code := runScript(t, sh, mustUserData(t, s), dir)
			if code != 0 || !parseHelper(t, out).ran {
				t.Fatalf("exit code %d; output:\n%s", code, out)
			}
			for _, f := range files {
				got, err := os.ReadFile(f.Path)
				if err != nil {
					t.Errorf("%v", err)
					continue
				}
				if !bytes.Equal(got, f.Content) {
					t.Errorf("%s: %d bytes differ from the %d given", f.Path, len(got), len(f.Content))
				}
				fi, _ := os.Stat(f.Path)
				if fi.Mode() != f.Mode {
					t.Errorf("%s: mode %v, want %v", f.Path, fi.Mode(), f.Mode)
				}
			}
			if fi, err := os.Stat(filepath.Join(dir, "new", "deep")); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("created directory: %v %v, want mode 0755", fi.Mode(), err)
			}
			if _, err := os.Stat(filepath.Join(dir, "canary")); err == nil {
				t.Error("file content was executed")
			}
		})
	}
}

func TestUserDataDiscardAndStatus(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir, helper := guestDir(t)
			s := &describe.Startup{
				Executable: helper,
				Args:       []string{"x"},
				Env: []describe.EnvVar{
					{Name: "VWS_CIDATA_HELPER", Value: "1"},
					{Name: "VWS_CIDATA_HELPER_EXIT", Value: "7"},
				},
				Output: "discard",
			}
			out, code := runScript(t, sh, mustUserData(t, s), dir)
			if code != 0 {
				t.Errorf("keep-running script exited %d, want 0", code)
			}
			if strings.Contains(out, "helper argv") || strings.Contains(out, "HELPER-STDERR") {
				t.Errorf("discarded output appeared:\n%s", out)
			}
			for _, line := range []string{"vws: startup " + helper + "\n", "vws: startup program exited with status 7\n"} {
				if !strings.Contains(out, line) {
					t.Errorf("output lacks %q:\n%s", line, out)
				}
			}

			// The same on the console: stdout and stderr both come through.
			s.Output = "console"
			out, _ = runScript(t, sh, mustUserData(t, s), dir)
			if !strings.Contains(out, `helper argv "x"`) || !strings.Contains(out, "HELPER-STDERR line") ||
				!strings.Contains(out, "vws: startup program exited with status 7\n") {
				t.Errorf("console output:\n%s", out)
			}

			// A program that doesn't exist.
			s.Executable = filepath.Join(dir, "no", "such", "program")
			out, _ = runScript(t, sh, mustUserData(t, s), dir)
			if !strings.Contains(out, "vws: startup program exited with status 127\n") {
				t.Errorf("missing program:\n%s", out)
			}
		})
	}
}

func TestUserDataUser(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir, helper := guestDir(t)
			canary := filepath.Join(dir, "canary")
			args := []string{"-c", "touch " + canary, "-l", "--", "-m", "'", "a\nb", ""}
			s := &describe.Startup{
				Executable: helper,
				Args:       args,
				Env: []describe.EnvVar{
					{Name: "VWS_CIDATA_HELPER", Value: "1"},
					{Name: "HOME", Value: "$(touch " + canary + ")"}, // overrides su's HOME
				},
				WorkingDirectory: filepath.Join(dir, "wd"),
				User:             "vws_no_such_user",
			}
			out, code := runScript(t, sh, mustUserData(t, s), dir)
			r := parseHelper(t, out)
			if code != 0 || !r.ran || r.uid != os.Getuid() {
				t.Fatalf("missing user: code %d, uid %d; output:\n%s", code, r.uid, out)
			}
			if !strings.Contains(out, "vws: user vws_no_such_user does not exist in this guest; running as root\n") {
				t.Errorf("no warning:\n%s", out)
			}

			if os.Geteuid() != 0 {
				t.Skip("switching users needs root")
			}
			nobody, err := user.Lookup("nobody")
			if err != nil {
				t.Skip("no user nobody")
			}
			s.User = "nobody"
			out, code = runScript(t, sh, mustUserData(t, s), dir)
			r = parseHelper(t, out)
			if code != 0 || !r.ran {
				t.Fatalf("code %d; output:\n%s", code, out)
			}
			if strconv.Itoa(r.uid) != nobody.Uid {
				t.Errorf("program ran as uid %d, want %s (nobody)", r.uid, nobody.Uid)
			}
			if fmt.Sprint(r.argv) != fmt.Sprint(args) || len(r.argv) != len(args) {
				t.Errorf("argv %q, want %q", r.argv, args)
			}
			if r.env["HOME"] != s.Env[1].Value || r.cwd != s.WorkingDirectory {
				t.Errorf("HOME %q, cwd %q", r.env["HOME"], r.cwd)
			}
			if _, err := os.Stat(canary); err == nil {
				t.Error("an argument became an su option or command")
			}
			if strings.Contains(out, "does not exist") {
				t.Errorf("unexpected warning:\n%s", out)
			}
		})
	}
}

func TestUserDataSetupFailure(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			dir, helper := guestDir(t)
			blocker := filepath.Join(dir, "afile")
			if err := os.WriteFile(blocker, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			s := &describe.Startup{
				Executable: helper,
				Env:        []describe.EnvVar{{Name: "VWS_CIDATA_HELPER", Value: "1"}},
				Files:      []describe.File{{Path: filepath.Join(blocker, "x"), Mode: 0o644, Content: []byte("x")}},
			}
			out, code := runScript(t, sh, mustUserData(t, s), dir)
			if code != 1 || parseHelper(t, out).ran || !strings.Contains(out, "vws: startup failed: cannot create directory "+blocker+"\n") {
				t.Errorf("code %d; output:\n%s", code, out)
			}
			s.Files = nil
			s.WorkingDirectory = filepath.Join(blocker, "wd")
			out, code = runScript(t, sh, mustUserData(t, s), dir)
			if code != 1 || parseHelper(t, out).ran || !strings.Contains(out, "vws: startup failed: cannot enter working directory") {
				t.Errorf("code %d; output:\n%s", code, out)
			}
		})
	}
}

func TestUserDataNil(t *testing.T) {
	for _, sh := range shells(t) {
		dir := t.TempDir()
		out, code := runScript(t, sh, mustUserData(t, nil), dir)
		if code != 0 || out != "vws: no startup program\n" {
			t.Errorf("%s: code %d, output %q", sh.name, code, out)
		}
	}
}

// The exit actions can't run on the host: check the script's text, and that every shell
// parses it (sh -n).
func TestUserDataOnExit(t *testing.T) {
	for _, tc := range []struct{ onExit, want, not string }{
		{"", "\texit \"$1\"\n", "poweroff"},
		{"keep-running", "\texit \"$1\"\n", "poweroff"},
		{"poweroff", "\tsync\n\tpoweroff -f || poweroff\n", "reboot"},
		{"reboot", "\tsync\n\treboot -f || reboot\n", "poweroff"},
	} {
		b := mustUserData(t, &describe.Startup{Executable: "/bin/true", OnExit: tc.onExit, User: "alice",
			Files: []describe.File{{Path: "/etc/x", Mode: 0o644, Content: []byte("x")}}, WorkingDirectory: "/w"})
		if !bytes.Contains(b, []byte(tc.want)) || bytes.Contains(b, []byte(tc.not)) {
			t.Errorf("onExit %q:\n%s", tc.onExit, b)
		}
		if !bytes.HasSuffix(b, []byte("vws_finish 0\n")) {
			t.Errorf("onExit %q: script does not end with vws_finish 0", tc.onExit)
		}
		for _, sh := range shells(t) {
			cmd := exec.Command(sh.argv[0], append(sh.argv[1:], "-n")...)
			cmd.Stdin = bytes.NewReader(b)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v %s", sh.name, err, out)
			}
		}
	}
}

func TestUserDataValidation(t *testing.T) {
	ok := func() *describe.Startup {
		return &describe.Startup{Executable: "/usr/bin/prog", Output: "console", OnExit: "keep-running"}
	}
	many := func(n int) []string { return make([]string, n) }
	manyEnv := func(n int) []describe.EnvVar {
		e := make([]describe.EnvVar, n)
		for i := range e {
			e[i] = describe.EnvVar{Name: fmt.Sprintf("V%d", i)}
		}
		return e
	}
	manyFiles := func(n int) []describe.File {
		f := make([]describe.File, n)
		for i := range f {
			f[i] = describe.File{Path: fmt.Sprintf("/f/%d", i), Mode: 0o644}
		}
		return f
	}
	long := "/" + strings.Repeat("a", MaxPathLen-1)
	for _, tc := range []struct {
		name  string
		edit  func(*describe.Startup)
		field string // "" : valid
	}{
		{"minimal", func(*describe.Startup) {}, ""},
		{"dot segments allowed by the schema", func(s *describe.Startup) { s.Executable = "/home/u/.local/bin/a.b-c_d+e@f" }, ""},
		{"path of 1024", func(s *describe.Startup) { s.Executable = long }, ""},
		{"256 args, 256 env, 64 files, 1 MiB", func(s *describe.Startup) {
			s.Args, s.Env, s.Files = many(MaxArgs), manyEnv(MaxEnv), manyFiles(MaxFiles)
			s.Files[0].Content = make([]byte, MaxFileSize)
		}, ""},
		{"arg of 4096 characters", func(s *describe.Startup) { s.Args = []string{strings.Repeat("é", MaxArgLen)} }, ""},
		{"mode 000", func(s *describe.Startup) { s.Files = []describe.File{{Path: "/x", Mode: 0}} }, ""},

		{"empty executable", func(s *describe.Startup) { s.Executable = "" }, "startup executable"},
		{"relative executable", func(s *describe.Startup) { s.Executable = "bin/prog" }, "startup executable"},
		{"dotdot", func(s *describe.Startup) { s.Executable = "/usr/../bin/sh" }, "startup executable"},
		{"dot", func(s *describe.Startup) { s.Executable = "/usr/./bin" }, "startup executable"},
		{"trailing dotdot", func(s *describe.Startup) { s.Executable = "/usr/.." }, "startup executable"},
		{"double slash", func(s *describe.Startup) { s.Executable = "/usr//bin" }, "startup executable"},
		{"trailing slash", func(s *describe.Startup) { s.Executable = "/usr/bin/" }, "startup executable"},
		{"root", func(s *describe.Startup) { s.Executable = "/" }, "startup executable"},
		{"space", func(s *describe.Startup) { s.Executable = "/usr/my prog" }, "startup executable"},
		{"quote", func(s *describe.Startup) { s.Executable = "/usr/it's" }, "startup executable"},
		{"dollar", func(s *describe.Startup) { s.Executable = "/usr/$(x)" }, "startup executable"},
		{"newline", func(s *describe.Startup) { s.Executable = "/usr/a\nb" }, "startup executable"},
		{"non-ASCII", func(s *describe.Startup) { s.Executable = "/usr/é" }, "startup executable"},
		{"path of 1025", func(s *describe.Startup) { s.Executable = long + "a" }, "startup executable"},
		{"257 args", func(s *describe.Startup) { s.Args = many(MaxArgs + 1) }, "startup arguments"},
		{"NUL argument", func(s *describe.Startup) { s.Args = []string{"ok", "a\x00b"} }, "startup argument 2"},
		{"invalid UTF-8 argument", func(s *describe.Startup) { s.Args = []string{"\xff"} }, "startup argument 1"},
		{"argument of 4097", func(s *describe.Startup) { s.Args = []string{strings.Repeat("a", MaxArgLen+1)} }, "startup argument 1"},
		{"257 env", func(s *describe.Startup) { s.Env = manyEnv(MaxEnv + 1) }, "startup environment"},
		{"env name digit", func(s *describe.Startup) { s.Env = []describe.EnvVar{{Name: "1A"}} }, "startup environment variable 1 name"},
		{"env name dash", func(s *describe.Startup) { s.Env = []describe.EnvVar{{Name: "A-B"}} }, "startup environment variable 1 name"},
		{"env name empty", func(s *describe.Startup) { s.Env = []describe.EnvVar{{Name: ""}} }, "startup environment variable 1 name"},
		{"env name injection", func(s *describe.Startup) { s.Env = []describe.EnvVar{{Name: "A=1 B"}} }, "startup environment variable 1 name"},
		{"env name of 129", func(s *describe.Startup) { s.Env = []describe.EnvVar{{Name: strings.Repeat("A", 129)}} }, "startup environment variable 1 name"},
		{"env NUL value", func(s *describe.Startup) { s.Env = []describe.EnvVar{{Name: "A", Value: "\x00"}} }, "startup environment variable A value"},
		{"env value of 4097", func(s *describe.Startup) {
			s.Env = []describe.EnvVar{{Name: "A", Value: strings.Repeat("a", MaxEnvValueLen+1)}}
		}, "startup environment variable A value"},
		{"relative workdir", func(s *describe.Startup) { s.WorkingDirectory = "tmp" }, "startup workingDirectory"},
		{"user upper case", func(s *describe.Startup) { s.User = "Root" }, "startup user"},
		{"user option", func(s *describe.Startup) { s.User = "-c" }, "startup user"},
		{"user of 33", func(s *describe.Startup) { s.User = strings.Repeat("a", 33) }, "startup user"},
		{"user shell", func(s *describe.Startup) { s.User = "a;b" }, "startup user"},
		{"65 files", func(s *describe.Startup) { s.Files = manyFiles(MaxFiles + 1) }, "startup files"},
		{"file path", func(s *describe.Startup) { s.Files = []describe.File{{Path: "/a/../etc/shadow"}} }, "startup file 1 path"},
		{"file mode setuid", func(s *describe.Startup) { s.Files = []describe.File{{Path: "/a", Mode: 0o4755}} }, "startup file 1 mode"},
		{"file mode dir", func(s *describe.Startup) { s.Files = []describe.File{{Path: "/a", Mode: fs.ModeDir | 0o755}} }, "startup file 1 mode"},
		{"file too big", func(s *describe.Startup) {
			s.Files = []describe.File{{Path: "/a", Content: make([]byte, MaxFileSize+1)}}
		}, "startup file 1 content"},
		{"output", func(s *describe.Startup) { s.Output = "file" }, "startup output"},
		{"onExit", func(s *describe.Startup) { s.OnExit = "halt" }, "startup onExit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok()
			tc.edit(s)
			_, err := UserData(s)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}
