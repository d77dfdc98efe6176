package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/test/guest"
)

// TestMove: `vws move` takes a running workspace to a host the Repository picks
// (serialize, undeploy, deploy there, restore), and the guest runs on where it
// stopped; a move whose deploy fails puts it back where it was, running; a move to
// a manager that is down, or that no other host can take, stops nothing.
func TestMove(t *testing.T) {
	t.Parallel()
	// A (all roles) never announces itself, so that once B or C is gone the other is
	// the only host placement knows.
	a := StartMgrServer(t, MgrServerOptions{HostName: "moveA", Args: []string{"--announce-every", "0"}})
	mgr := func(name string) *MgrServer {
		return StartMgrServer(t, MgrServerOptions{HostName: name, Roles: []string{"manager"}, Repository: a.URL, Args: []string{"--announce-every", "4s"}})
	}
	servers := map[string]*MgrServer{"moveB": mgr("moveB"), "moveC": mgr("moveC")}
	ImportGuest(t, a)
	waitHosts(t, a, 10*time.Second, "moveB and moveC", func(h map[string]string) bool { return h["moveB"] != "" && h["moveC"] != "" && h["moveA"] == "" })
	w := CreateWorkspace(t, a, TickerDescription(t))

	r := a.CLI(t, "move", w.EPRFile)
	if r.code != 1 || !strings.Contains(r.stderr, "is in the repository, on no host: vws deploy") {
		t.Fatalf("vws move of a workspace in the repository: exit %d\n%s", r.code, r.stderr)
	}
	if r := a.CLI(t, "place", w.EPRFile, "--move"); r.code != 1 || !strings.Contains(r.stderr, "is in the repository, on no host: vws deploy") {
		t.Fatalf("vws place --move of a workspace in the repository: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	done := Step(t, "deploy on A, running, to tick 2")
	a.MustCLI(t, "deploy", w.EPRFile, "--host", a.URL, "--state", "running")
	WaitConsole(t, a, w, bootTimeout, "tick 2", hasTicks(2))
	done()

	ranking := a.MustCLI(t, "place", w.EPRFile, "--move").stdout
	if !regexp.MustCompile(`(?m)^1 +move[BC] `).MatchString(ranking) || !regexp.MustCompile(`(?m)^2 +move[BC] `).MatchString(ranking) ||
		strings.Contains(ranking, "moveA") {
		t.Fatalf("vws place --move of a workspace on A (which never announced itself):\n%s", ranking)
	}

	done = Step(t, "vws move: placed, serialized, undeployed, deployed and restored there")
	lastA := guest.LastTick(Console(t, a, w))
	out := a.MustCLI(t, "move", w.EPRFile).stdout
	done()
	t.Logf("vws move:\n%s", out)
	m := regexp.MustCompile(`moving to (moveB|moveC): `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("vws move without --host does not say where it goes:\n%s", out)
	}
	to, other := m[1], "moveB"
	if to == "moveB" {
		other = "moveC"
	}
	for _, want := range []string{"serialized on moveA: paused, RAM saved", "undeployed from moveA", "deployed on " + to + ": running", "moved from moveA to " + to} {
		if !strings.Contains(out, want) {
			t.Fatalf("vws move says nothing of %q:\n%s", want, out)
		}
	}
	WantWSProps(t, w, "state", "running", "deployment", "deployed", "host", to, "lockHolder", to)
	if a.HasWorkspaceDir(w.Key) {
		t.Fatalf("A kept the workspace's files after the move: %v", a.WorkspaceFiles(w.Key))
	}
	c := WaitConsole(t, a, w, tickTimeout, fmt.Sprintf("ticks after %d on %s", lastA, to), hasTicks(lastA+2))
	if ts := guest.Ticks(c); ts[0] <= lastA || strings.Contains(c, "hello from the grid job") {
		t.Fatalf("on %s the job should continue after tick %d, not boot again:\n%s", to, lastA, c)
	}

	// --host takes a manager's URL or a host's name, as vws host list shows it.
	for _, here := range []string{servers[to].URL, to} {
		r = a.CLI(t, "move", w.EPRFile, "--host", here)
		if r.code != 1 || !strings.Contains(r.stderr, "is already deployed on "+to) {
			t.Fatalf("vws move --host %s, the host it is on: exit %d\n%s", here, r.code, r.stderr)
		}
	}
	r = a.CLI(t, "move", w.EPRFile, "--host", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, `no host named "nosuch" has announced itself to the repository`) {
		t.Fatalf("vws move --host of an unknown host name: exit %d\n%s", r.code, r.stderr)
	}

	// A manager serving another Repository refuses the deploy once the workspace has
	// left its host: it is deployed back there, running on from where it stopped.
	d := StartMgrServer(t, MgrServerOptions{HostName: "moveD", Roles: []string{"manager"}, Repository: "http://127.0.0.1:9", Args: []string{"--announce-every", "0"}})
	done = Step(t, "vws move to a manager that refuses the deploy: back where it was")
	last := guest.LastTick(Console(t, a, w))
	r = a.CLI(t, "move", w.EPRFile, "--host", d.URL)
	done()
	t.Logf("vws move to a manager that refuses it:\n%s%s", r.stdout, r.stderr)
	if r.code != 2 || !strings.Contains(r.stdout, "serialized on "+to) || !strings.Contains(r.stderr, "deploying workspace "+w.EPRFile+" back on "+to) ||
		!strings.Contains(r.stderr, "is back on "+to+", running") || !strings.Contains(r.stderr, "WorkspaceAuthorizationFault") {
		t.Fatalf("vws move to a manager of another repository: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	WantWSProps(t, w, "state", "running", "deployment", "deployed", "host", to)
	WaitConsole(t, a, w, tickTimeout, fmt.Sprintf("ticks after %d, back on %s", last, to), hasTicks(last+2))
	if e := d.ManagerEntries(); len(e) > 0 {
		t.Fatalf("the refusing manager kept %v", e)
	}

	// A manager that is down is found out before anything stops.
	servers[other].Kill()
	r = a.CLI(t, "move", w.EPRFile, "--host", servers[other].URL)
	if r.code != 1 || !strings.Contains(r.stderr, "does not answer; nothing was stopped") || r.stdout != "" {
		t.Fatalf("vws move to a stopped manager: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if st := DomainState(w.Domain()); st != "running" {
		t.Fatalf("after a move to a stopped manager the domain is %q, want running", st)
	}

	// With the other host's announcement expired, no host but its own is known: the
	// move is refused before anything stops.
	waitHosts(t, a, 20*time.Second, to+" alone", func(h map[string]string) bool { return h[to] != "" && h[other] == "" })
	r = a.CLI(t, "move", w.EPRFile)
	wantUnplaced(t, r, to+": the workspace is deployed there now")
	if strings.Contains(r.stdout, "serialized") {
		t.Fatalf("a refused move serialized the workspace:\n%s", r.stdout)
	}
	if st := DomainState(w.Domain()); st != "running" {
		t.Fatalf("after a refused move the domain is %q, want running", st)
	}
	WantWSProps(t, w, "state", "running", "deployment", "deployed", "host", to)

	// A paused workspace moves paused (serialized, restored into memory with its vCPUs
	// stopped), and runs on where it stopped once unpaused.
	a.MustCLI(t, "pause", w.EPRFile)
	last = guest.LastTick(Console(t, a, w))
	done = Step(t, "vws move --host A of a paused workspace")
	out = a.MustCLI(t, "move", w.EPRFile, "--host", a.URL).stdout
	done()
	if !strings.Contains(out, "serialized on "+to) || !strings.Contains(out, "deployed on moveA: paused") {
		t.Fatalf("vws move of a paused workspace:\n%s", out)
	}
	WantWSProps(t, w, "state", "paused", "deployment", "deployed", "host", "moveA")
	if st := DomainState(w.Domain()); st != "paused" {
		t.Fatalf("moved paused, the domain is %q", st)
	}
	a.MustCLI(t, "unpause", w.EPRFile)
	WaitConsole(t, a, w, tickTimeout, fmt.Sprintf("ticks after %d on A", last), hasTicks(last+2))

	a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	a.MustCLI(t, "undeploy", w.EPRFile)
	a.MustCLI(t, "destroy", w.EPRFile)
}
