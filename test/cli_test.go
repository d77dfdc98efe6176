package test

import (
	"bytes"
	"errors"
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

// vws builds cmd/vws once per test run and returns its path.
func vws(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vws-cli-")
		if err != nil {
			buildErr = err
			return
		}
		vwsBin = filepath.Join(dir, "vws")
		out, err := exec.Command("go", "build", "-o", vwsBin, "../cmd/vws").CombinedOutput()
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
