package test

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestReclaim: a workspace on a host that went silent (its manager killed, its
// announcements expired) is taken back into the repository, and deploys on another
// host; the silent host's manager, back, finds it no longer its own and removes its
// domain and files. While the host is heard from, a reclaim is refused.
func TestReclaim(t *testing.T) {
	t.Parallel()
	a, b, bOpts := announcingHosts(t, "reclaim")
	w := CreateWorkspace(t, a, TickerDescription(t))
	waitHosts(t, a, 10*time.Second, "reclaimB", func(h map[string]string) bool { return h["reclaimB"] != "" })

	done := Step(t, "deploy on B, running, to tick 1")
	a.MustCLI(t, "deploy", w.EPRFile, "--host", "reclaimB", "--state", "running")
	WaitConsole(t, a, w, bootTimeout, "tick 1", hasTicks(1))
	done()
	WantFault(t, a.CLI(t, "reclaim", w.EPRFile), "WorkspaceStateFault", "reclaimB, which is not silent")
	WantWSProps(t, w, "state", "running", "deployment", "deployed", "host", "reclaimB")

	// B's manager dies (its guest runs on, as after a network cut); once its
	// announcement expires, the workspace is reclaimed.
	done = Step(t, "B's manager killed; B silent; reclaim")
	b.Kill()
	waitHosts(t, a, 20*time.Second, "reclaimB silent", func(h map[string]string) bool { return h["reclaimB"] == "" })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.MustCLI(t, "status", w.EPRFile).stdout, "hostSilentSince") && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	out := a.MustCLI(t, "reclaim", w.EPRFile).stdout
	done()
	if !strings.Contains(out, "reclaimed from silent host reclaimB: in the repository, shutdown") {
		t.Fatalf("vws reclaim:\n%s", out)
	}
	WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "")

	// B comes back: its manager finds the workspace back in the repository and
	// removes its copy, running guest included.
	done = Step(t, "B's manager restarts and removes its copy")
	b = StartMgrServer(t, bOpts)
	for deadline := time.Now().Add(60 * time.Second); DomainDefined(w.Domain()) || b.HasWorkspaceDir(w.Key); {
		if time.Now().After(deadline) {
			t.Fatalf("60 s after B came back, its copy is still there: domain defined %v, files %v", DomainDefined(w.Domain()), b.WorkspaceFiles(w.Key))
		}
		time.Sleep(500 * time.Millisecond)
	}
	done()
	if !strings.Contains(b.Logs(), "the repository took the workspace back (reclaimed from this host while it was silent") {
		t.Errorf("B's log does not say why it removed the workspace")
	}

	done = Step(t, "deploy on A: boots from where it was checked out")
	a.MustCLI(t, "deploy", w.EPRFile, "--host", a.URL, "--state", "running")
	WaitConsole(t, a, w, bootTimeout, "the job again", func(c string) bool { return strings.Contains(c, "hello from the grid job") })
	done()
	WantWSProps(t, w, "state", "running", "deployment", "deployed", "host", "reclaimA")
	a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	a.MustCLI(t, "undeploy", w.EPRFile)
}

// TestReinstalledHostGivesItsWorkspacesBack: a host reinstalled after a workspace was
// deployed on it (its domain and its manager's data gone) comes back at the same
// address and announces itself: the Repository names the workspace it has checked
// out there, the manager finds no record of it and disowns it, and the workspace is
// back in the repository, deployable elsewhere — no reclaim needed, and none
// possible while the host is heard from.
func TestReinstalledHostGivesItsWorkspacesBack(t *testing.T) {
	t.Parallel()
	a, b, bOpts := announcingHosts(t, "reinst")
	w := CreateWorkspace(t, a, TickerDescription(t))
	waitHosts(t, a, 10*time.Second, "reinstB", func(h map[string]string) bool { return h["reinstB"] != "" })
	a.MustCLI(t, "deploy", w.EPRFile, "--host", "reinstB")
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed", "host", "reinstB")

	done := Step(t, "B reinstalled: its domain and data gone; back at the same address")
	u, err := url.Parse(b.URL)
	if err != nil {
		t.Fatal(err)
	}
	b.Kill()
	CleanupDomain(t, w.Domain())
	bOpts.Dir = t.TempDir()
	bOpts.Args = append(bOpts.Args, "--listen", u.Host)
	b = StartMgrServer(t, bOpts)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(a.MustCLI(t, "status", w.EPRFile).stdout, "in-repository"); {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the reinstalled B came back, the workspace is still out:\n%s\nB's log:\n%s", a.MustCLI(t, "status", w.EPRFile).stdout, b.Logs())
		}
		time.Sleep(300 * time.Millisecond)
	}
	done()
	WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "", "host", "")
	if st := a.MustCLI(t, "status", w.EPRFile).stdout; !strings.Contains(st, "whose manager at "+b.URL) || !strings.Contains(st, "no longer holds a record of it") {
		t.Errorf("the workspace's status does not say why it came back:\n%s", st)
	}
	if !strings.Contains(b.Logs(), "holds no record of it") {
		t.Errorf("B's log does not say it disowned the workspace:\n%s", b.Logs())
	}

	done = Step(t, "deploy on A")
	a.MustCLI(t, "deploy", w.EPRFile, "--host", a.URL)
	done()
	WantWSProps(t, w, "deployment", "deployed", "host", "reinstA")
	a.MustCLI(t, "undeploy", w.EPRFile)
}
