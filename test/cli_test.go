package test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/test/harness"
)

var (
	buildOnce sync.Once
	vwsBin    string
	buildErr  error
)

// TestMain removes the vws binary the tests built (about 40 MB in $TMPDIR per run).
func TestMain(m *testing.M) {
	code := m.Run()
	if vwsBin != "" {
		os.RemoveAll(filepath.Dir(vwsBin))
	}
	os.Exit(code)
}

// vws builds cmd/vws once per test run (with -race when the tests run with it) and
// returns its path.
func vws(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vws-cli-")
		if err != nil {
			buildErr = err
			return
		}
		vwsBin = filepath.Join(dir, "vws")
		args := []string{"build", "-o", vwsBin}
		if raceBuild {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../cmd/vws")...).CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build vws: %v", buildErr)
	}
	return vwsBin
}

type run struct {
	code           int
	stdout, stderr string
}

func runVWS(t *testing.T, env []string, args ...string) run {
	t.Helper()
	cmd := exec.Command(vws(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return run{code, out.String(), errb.String()}
}

func TestCLIWSRFVerbs(t *testing.T) {
	s := harness.Start(t)
	env := []string{"VWS_URL=" + s.URL}
	key := "{" + vwsns.Workspace + "}WorkspaceKey"
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) {
			k := "cli-" + d.Name
			s.SeedWorkspace(t, k, "cli-"+d.Name, nil)

			r := runVWS(t, env, "wsrf", "get-property", "--dialect", d.Name, "-k", key, k, "vw:state")
			if r.code != 0 || !strings.Contains(r.stdout, ">shutdown</") {
				t.Fatalf("get-property: %+v", r)
			}
			r = runVWS(t, env, "wsrf", "get-properties", "--dialect", d.Name, "-k", key, k, "vw:name", "{"+vwsns.Workspace+"}deployment")
			if r.code != 0 || !strings.Contains(r.stdout, ">cli-"+d.Name+"<") || !strings.Contains(r.stdout, ">in-repository<") {
				t.Fatalf("get-properties: %+v", r)
			}
			r = runVWS(t, env, "wsrf", "query", "--dialect", d.Name, "-k", key, k, "string(/*/vw:name)")
			if r.code != 0 || strings.TrimSpace(r.stdout) != "cli-"+d.Name {
				t.Fatalf("query: %+v", r)
			}

			// An EPR file in the dialect, as GT tools read and write them.
			epr := &wsa.EPR{Version: d.WSA, Address: s.ServiceURL(vwsns.WorkspaceService)}
			kel := etree.NewElement("vw:WorkspaceKey")
			kel.CreateAttr("xmlns:vw", vwsns.Workspace)
			kel.SetText(k)
			epr.References = append(epr.References, kel)
			data, err := epr.Document().WriteToBytes()
			if err != nil {
				t.Fatal(err)
			}
			eprFile := filepath.Join(t.TempDir(), "epr.xml")
			if err := os.WriteFile(eprFile, data, 0o644); err != nil {
				t.Fatal(err)
			}
			r = runVWS(t, env, "wsrf", "set-termination-time", "-e", eprFile, "3600")
			if r.code != 0 || !strings.Contains(r.stdout, "termination time: ") {
				t.Fatalf("set-termination-time: %+v", r)
			}
			term := runVWS(t, env, "wsrf", "get-property", "-e", eprFile, "{"+d.RL+"}TerminationTime")
			if term.code != 0 || !strings.Contains(term.stdout, time.Now().Add(time.Hour).UTC().Format("2006-01-02T15")) {
				t.Fatalf("termination time not set: %+v", term)
			}
			// The site has a maximum lifetime, so "never" is refused, and nothing changes.
			r = runVWS(t, env, "wsrf", "set-termination-time", "-e", eprFile, "infinity")
			if r.code != 2 || !strings.Contains(r.stderr, "TerminationTimeChangeRejectedFault") || !strings.Contains(r.stderr, "P30D") {
				t.Fatalf("set-termination-time infinity: %+v", r)
			}
			if again := runVWS(t, env, "wsrf", "get-property", "-e", eprFile, "{"+d.RL+"}TerminationTime"); again.stdout != term.stdout {
				t.Fatalf("a refused change changed the termination time: %q → %q", term.stdout, again.stdout)
			}
			// wsrl:, as vws status and query write it, in the EPR's dialect.
			if byPrefix := runVWS(t, env, "wsrf", "get-property", "-e", eprFile, "wsrl:TerminationTime"); byPrefix.code != 0 || byPrefix.stdout != term.stdout {
				t.Fatalf("get-property wsrl:TerminationTime: %+v", byPrefix)
			}
			// -k without the key's value: said so, not "give exactly one property name".
			if r := runVWS(t, env, "wsrf", "get-property", "-k", "{"+vwsns.Workspace+"}WorkspaceKey", "vw:state"); r.code != 1 || !strings.Contains(r.stderr, "takes the key's value, then the property") {
				t.Fatalf("get-property -k NAME PROPERTY: %+v", r)
			}
			r = runVWS(t, env, "wsrf", "destroy", "-e", eprFile)
			if r.code != 0 {
				t.Fatalf("destroy: %+v", r)
			}
			// A fault: exit status 2 and the description on stderr.
			r = runVWS(t, env, "wsrf", "get-property", "-e", eprFile, "vw:state")
			if r.code != 2 || !strings.Contains(r.stderr, "ResourceUnknownFault") || !strings.Contains(r.stderr, k) {
				t.Fatalf("after destroy: %+v", r)
			}
		})
	}
	// Local mistakes: exit status 1 with a message that says what to do.
	r := runVWS(t, env, "wsrf", "get-property", "-k", key)
	if r.code != 1 || !strings.Contains(r.stderr, "needs the key's value") {
		t.Fatalf("missing key value: %+v", r)
	}
	r = runVWS(t, env, "wsrf", "get-property", "-k", key, "x", "zz:state")
	if r.code != 1 || !strings.Contains(r.stderr, `unknown prefix "zz"`) {
		t.Fatalf("unknown prefix: %+v", r)
	}
	r = runVWS(t, []string{"VWS_URL=http://127.0.0.1:1"}, "wsrf", "get-property", "-k", key, "x", "vw:state")
	if r.code != 1 || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Fatalf("unreachable service: %+v", r)
	}
}

func TestServeRefusesPlainHTTPUnlessAsked(t *testing.T) {
	r := runVWS(t, nil, "serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	if r.code != 1 || !strings.Contains(r.stderr, "--insecure") {
		t.Fatalf("%+v", r)
	}
}

// Ctrl-C during a long deploy: the real binary cancels the call, says what becomes
// of the deploy on one line, and exits 130 (as a shell reports SIGINT); it is not
// killed mid-line by the signal.
func TestCLICtrlCDuringDeploy(t *testing.T) {
	arrived := make(chan struct{}, 1)
	mgr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		arrived <- struct{}{}
		<-r.Context().Done() // staging a large image
	}))
	defer mgr.Close()
	cmd := exec.Command(vws(t), "deploy", "0123abcd", "--host", mgr.URL)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the deploy never reached the manager; stderr: %s", errb.String())
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	want := "vws: interrupted: the deploy was cancelled, and the manager undoes a deploy cut short; vws status 0123abcd shows where the workspace is\n"
	if code != 130 || out.Len() != 0 || errb.String() != want {
		t.Fatalf("want exit 130, no stdout and stderr %q; got exit %d (%v)\nstdout: %q\nstderr: %q", want, code, cmd.ProcessState, out.String(), errb.String())
	}
}

// Refused imports (a taken name, an empty file, a directory, a missing file, no
// --name) each say why on one line and leave the pool as it was.
func TestCLIImageImportRefusalsChangeNothing(t *testing.T) {
	s := StartMgrServer(t, MgrServerOptions{Roles: []string{"repository"}})
	dir := t.TempDir()
	img, other, empty := filepath.Join(dir, "a.raw"), filepath.Join(dir, "b.raw"), filepath.Join(dir, "empty.raw")
	os.WriteFile(img, bytes.Repeat([]byte{7}, 64<<10), 0o644)
	os.WriteFile(other, bytes.Repeat([]byte{8}, 64<<10), 0o644) // same size, other content
	os.WriteFile(empty, nil, 0o644)
	s.MustCLI(t, "image", "import", img, "--name", "taken")
	pool := func() string {
		var names []string
		filepath.Walk(filepath.Join(s.Dir, "images"), func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				names = append(names, p)
			}
			return nil
		})
		return strings.Join(names, "\n") + "\n" + s.MustCLI(t, "image", "list").stdout
	}
	before := pool()
	for _, tc := range []struct {
		args []string
		code int // 2: the pool refused; 1: the CLI did
		says string
	}{
		{[]string{"image", "import", filepath.Join(dir, "missing.raw"), "--name", "x"}, 1, "no such file; give the path of a qcow2 or raw image"},
		{[]string{"image", "import", dir, "--name", "x"}, 1, "is not a regular file"},
		{[]string{"image", "import", empty, "--name", "x"}, 2, "vws: refused: bad request: the image is empty"},
		{[]string{"image", "import", other, "--name", "taken"}, 2, `vws: refused: image name "taken" is already taken`},
		{[]string{"image", "import", img}, 1, "--name NAME"},
		{[]string{"image", "import"}, 1, "missing argument; usage: vws image import FILE"},
	} {
		r := s.CLI(t, tc.args...)
		if r.code != tc.code || r.stdout != "" || !strings.Contains(r.stderr, tc.says) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("vws %s: exit %d\nstdout: %q\nstderr: %q\nwant exit %d and one line saying %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.code, tc.says)
		}
	}
	if after := pool(); after != before {
		t.Errorf("refused imports changed the pool:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Operations in the wrong state are SOAP faults: type, description and advice once,
// on stderr, exit status 2, nothing on stdout. (Deploys to shutdown: no guest boots.)
func TestCLIWrongStateFaultsOnStderrOnly(t *testing.T) {
	s := StartMgrServer(t, MgrServerOptions{HostName: "errs"})
	ImportGuest(t, s)
	w := CreateWorkspace(t, s, TickerDescription(t))
	s.MustCLI(t, "deploy", w.EPRFile)
	for _, tc := range []struct {
		args     []string
		typ, say string
	}{
		{[]string{"deploy", w.EPRFile}, "WorkspaceStateFault", "already deployed"},
		{[]string{"pause", w.EPRFile}, "WorkspaceStateFault", "cannot go to paused"},
		{[]string{"unpause", w.Key}, "WorkspaceStateFault", "bring the workspace into a state"},
		{[]string{"status", "0123456789abcdef"}, "ResourceUnknownFault", "check the EPR or key you sent"},
	} {
		r := s.CLI(t, tc.args...)
		WantFault(t, r, tc.typ, tc.say)
		if r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || strings.Count(r.stderr, tc.typ) != 1 {
			t.Errorf("vws %s: want the fault once on one stderr line and nothing on stdout\nstdout: %q\nstderr: %q", strings.Join(tc.args, " "), r.stdout, r.stderr)
		}
	}
	s.MustCLI(t, "undeploy", w.EPRFile)

	// An -o the CLI cannot write fails before any workspace is made: one that nobody
	// was told the key of would live on unseen. The same for a clone.
	before := s.MustCLI(t, "list").stdout
	for _, args := range [][]string{{"create", "-f", TickerDescription(t)}, {"clone", w.EPRFile}} {
		r := s.CLI(t, append(args, "-o", "/nonexistent/dir/ws.xml")...)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "-o /nonexistent/dir/ws.xml") || !strings.Contains(r.stderr, "nothing was created") {
			t.Errorf("vws %s -o into a missing directory: exit %d\nstdout: %q\nstderr: %q", args[0], r.code, r.stdout, r.stderr)
		}
	}
	if after := s.MustCLI(t, "list").stdout; after != before {
		t.Errorf("a refused -o left a workspace behind:\nbefore %s\nafter  %s", before, after)
	}
}
