package test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/test/guest"
)

// TestHostEvacuate: a drained host takes no new workspaces (its manager refuses,
// placement passes it over) while what runs there runs on; vws host evacuate moves
// every workspace off it, a running one continuing where it stopped; the drain
// outlives a restart of the manager until vws host drain --off.
func TestHostEvacuate(t *testing.T) {
	t.Parallel()
	a, b, bOpts := announcingHosts(t, "evac")
	running := CreateWorkspace(t, a, TickerDescription(t))
	stopped := CreateWorkspace(t, a, TickerDescription(t))
	later := CreateWorkspace(t, a, TickerDescription(t))
	waitHosts(t, a, 10*time.Second, "evacA and evacB", func(h map[string]string) bool { return h["evacA"] != "" && h["evacB"] != "" })

	done := Step(t, "two workspaces on B, one running to tick 2")
	a.MustCLI(t, "deploy", running.EPRFile, "--host", b.URL, "--state", "running")
	a.MustCLI(t, "deploy", stopped.EPRFile, "--host", b.URL)
	WaitConsole(t, a, running, bootTimeout, "tick 2", hasTicks(2))
	done()

	out := a.MustCLI(t, "host", "drain", "evacB").stdout // by name, as vws host list shows it
	if !strings.Contains(out, "takes no new workspaces; 2 deployed there run on") {
		t.Fatalf("vws host drain:\n%s", out)
	}
	if st := a.MustCLI(t, "host", "status", b.URL).stdout; !strings.Contains(st, "Draining: no new workspaces") {
		t.Fatalf("vws host status of a drained host:\n%s", st)
	}
	WantFault(t, a.CLI(t, "deploy", later.EPRFile, "--host", b.URL), "WorkspaceStateFault", "host evacB is draining for maintenance")
	WantWSProps(t, later, "deployment", "in-repository", "lockHolder", "")
	waitHosts(t, a, 10*time.Second, "evacB draining", func(h map[string]string) bool { return strings.Contains(h["evacB"], "draining") })
	if r := a.MustCLI(t, "place", later.EPRFile).stdout; !strings.Contains(r, "evacB: draining for maintenance") || !strings.Contains(r, "1     evacA") {
		t.Fatalf("vws place with B draining:\n%s", r)
	}
	if st := DomainState(running.Domain()); st != "running" {
		t.Fatalf("the drain stopped what runs on B: %s", st)
	}

	done = Step(t, "vws host evacuate B: both move to A")
	last := guest.LastTick(Console(t, a, running))
	r := a.MustCLI(t, "host", "evacuate", "evacB")
	done()
	t.Logf("vws host evacuate:\n%s", r.stdout)
	for _, want := range []string{"drained; 2 workspace(s) to move", "moved from evacB to evacA", "holds no workspaces and stays drained"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("vws host evacuate says nothing of %q:\n%s", want, r.stdout)
		}
	}
	WantWSProps(t, running, "state", "running", "deployment", "deployed", "host", "evacA")
	WantWSProps(t, stopped, "state", "shutdown", "deployment", "deployed", "host", "evacA")
	WaitConsole(t, a, running, tickTimeout, fmt.Sprintf("ticks after %d on A", last), hasTicks(last+2))
	if ws := ReadHost(t, b).Workspaces; len(ws) != 0 || b.HasWorkspaceDir(running.Key) || b.HasWorkspaceDir(stopped.Key) {
		t.Fatalf("B after the evacuation: %+v", ws)
	}

	// Restarted (the maintenance), B is still drained, until drain --off.
	b.Kill()
	b = StartMgrServer(t, bOpts)
	if st := a.MustCLI(t, "host", "status", b.URL).stdout; !strings.Contains(st, "Draining: no new workspaces") {
		t.Fatalf("vws host status of B restarted:\n%s", st)
	}
	if out := a.MustCLI(t, "host", "drain", "--off", b.URL).stdout; !strings.Contains(out, "takes new workspaces again") {
		t.Fatalf("vws host drain --off:\n%s", out)
	}
	waitHosts(t, a, 10*time.Second, "evacB no longer draining", func(h map[string]string) bool { return h["evacB"] != "" && !strings.Contains(h["evacB"], "draining") })
	a.MustCLI(t, "deploy", later.EPRFile, "--host", b.URL)
	WantWSProps(t, later, "deployment", "deployed", "host", "evacB")

	for _, w := range []*MgrWorkspace{running, stopped, later} {
		a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
		a.MustCLI(t, "undeploy", w.EPRFile)
	}
}
