package test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/test/guest"
)

// managerStep is one line a Manager scenario client (test/interop/zeep_manager.py,
// test/interop/axis/ManagerClient.java) prints: a step of the scenario as it saw it.
type managerStep struct {
	Step          string       `json:"step"`
	State         string       `json:"state"`
	Deployment    string       `json:"deployment"`
	Host          string       `json:"host"`
	OverlayDigest *string      `json:"overlayDigest"`
	Tail          string       `json:"tail"`
	HostState     string       `json:"hostState"`
	Key           string       `json:"key"`
	Fault         managerFault `json:"fault"`
}

// managerFault is interopFault plus the states a WorkspaceStateFault names.
type managerFault struct {
	interopFault
	CurrentState   string `json:"CurrentState"`
	RequestedState string `json:"RequestedState"`
}

// managerClient is a client program that runs the Manager scenario step by step: its
// command line, to which the scenario's arguments are appended (--wsdl, --dialect, --epr,
// --expect, --shutdown-mode, --grace, --timeout), and what it needs in its environment.
// It prints one managerStep line per step and waits for "ok" on stdin before the next.
type managerClient struct {
	name string
	argv []string
	env  []string
}

// TestInteropManagerZeep: python3-zeep, built from the Manager's live ?wsdl, drives a
// real guest through the Manager in each dialect — deploy, start, the job's output in
// the ConsoleTail property, pause, unpause, serialize, undeploy, restore, shutdown,
// undeploy — and meets three faults. After each step the test compares what zeep
// reported with the Repository's properties, libvirt and the manager's files.
//
// The workspace is created on the Go side and handed to zeep as an EPR file in the
// dialect's WS-Addressing version, as GT-style tools pass workspaces around: creating
// through the Factory with zeep is TestInteropCreateZeep's subject, and CreateWorkspace
// registers the removal of the libvirt domain however the test ends.
func TestInteropManagerZeep(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest per dialect")
	}
	if out, err := exec.Command(zeepPython, "-c", "import zeep").CombinedOutput(); err != nil {
		t.Skipf("zeep interop test needs python3-zeep for %s (apt-get install python3-zeep): %v\n%s", zeepPython, err, out)
	}
	runManagerInterop(t, "zeep-host", func(t *testing.T, s *MgrServer, d *dialect.Dialect) managerClient {
		return managerClient{
			name: "zeep_manager.py",
			argv: []string{zeepPython, "interop/zeep_manager.py"},
			env:  []string{"PYTHONDONTWRITEBYTECODE=1"},
		}
	})
}

// TestInteropManagerAxis runs the same scenario as TestInteropManagerZeep with Apache
// Axis 1.4, the SOAP stack GT 4.0 tools are built on: WSDL2Java -W generates the stubs
// from the Manager's live ?wsdl in each dialect, javac compiles them with
// test/interop/axis/ManagerClient.java, and each step is checked as zeep's are: the
// EPR travels in the generated bean's _any, the addressing headers are set with
// Stub.setHeader, and the faults must come out as the generated fault classes.
func TestInteropManagerAxis(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest per dialect")
	}
	axis := axisTools(t)
	runManagerInterop(t, "axis-host", func(t *testing.T, s *MgrServer, d *dialect.Dialect) managerClient {
		ops := "Wsrf12MgrOps.java"
		if d == dialect.GT4 {
			ops = "Gt4MgrOps.java"
		}
		// Client.java lends the dialects' namespaces, the WSDL reading and the Failure
		// type; Ops.java is its interface. Their WorkspaceService Ops are left out: the
		// Manager's WSDL does not generate that service's stub.
		classes := axis.build(t, t.TempDir(), managerWSDL(s, d),
			"Client.java", "Ops.java", "Fault.java", "Json.java", "MgrOps.java", "ManagerClient.java", ops)
		return managerClient{name: "Axis ManagerClient", argv: axis.command(classes, "vwsinterop.ManagerClient")}
	})
}

// managerWSDL is the Manager's live WSDL in the dialect.
func managerWSDL(s *MgrServer, d *dialect.Dialect) string {
	u := s.URL + "/wsrf/services/" + vwsns.ManagerService + "?wsdl"
	if d == dialect.GT4 {
		u += "&dialect=gt4"
	}
	return u
}

// runManagerInterop runs the Manager scenario with the client newClient makes for each
// dialect, one guest after the other, on a manager of its own.
func runManagerInterop(t *testing.T, hostName string, newClient func(*testing.T, *MgrServer, *dialect.Dialect) managerClient) {
	s := StartMgrServer(t, MgrServerOptions{HostName: hostName})
	ImportGuest(t, s)
	// Created by the parent test, whose clean-up stops the server before it removes
	// the domains (a running manager would define a deployed workspace's domain again).
	ws := map[*dialect.Dialect]*MgrWorkspace{}
	for _, d := range dialect.Dialects {
		ws[d] = CreateWorkspace(t, s, TickerDescription(t))
	}
	// One guest at a time: two TCG guests on two CPUs would slow each other's boot.
	for _, d := range dialect.Dialects {
		t.Run(d.Name, func(t *testing.T) { managerScenario(t, s, ws[d], d, newClient(t, s, d)) })
	}
	if t.Failed() {
		return
	}
	if e := s.ManagerEntries(); len(e) != 0 {
		t.Errorf("the manager keeps files after the workspaces were undeployed: %v", e)
	}
	if ws := ReadHost(t, s).Workspaces; len(ws) != 0 {
		t.Errorf("the host still lists workspaces: %v", ws)
	}
}

// managerScenario runs the client's scenario on the workspace and, after each step it
// reports, compares the report with the Repository's properties, libvirt and the
// manager's files before it lets the client go on.
func managerScenario(t *testing.T, s *MgrServer, w *MgrWorkspace, d *dialect.Dialect, c managerClient) {
	start := time.Now()
	mgrAddr := s.URL + "/wsrf/services/" + vwsns.ManagerService
	// What a Create in this dialect returns: a 2004/03 EPR with reference properties
	// (GT4), or a W3C one with reference parameters.
	epr := *w.EPR
	epr.Version = d.WSA
	eprFile := filepath.Join(t.TempDir(), "ws-"+d.Name+".xml")
	data, err := epr.Document().WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(eprFile, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Both shutdown modes that end shut down: Trash in one dialect, Normal (ACPI, with
	// a GracePeriod) in the other.
	mode, grace := "Trash", ""
	if d == dialect.WSRF12 {
		mode, grace = "Normal", "PT20S"
	}
	const greeting = "hello from the grid job"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.argv[0], slices.Concat(c.argv[1:], []string{
		"--wsdl", managerWSDL(s, d), "--dialect", d.Name, "--epr", eprFile, "--expect", greeting,
		"--shutdown-mode", mode, "--grace", grace, "--timeout", "60"})...)
	cmd.Env = append(os.Environ(), c.env...)
	stdin, stdout, done := startDriven(t, cmd, c.name+" ("+d.Name+")", false)
	defer done()

	wantState := func(st managerStep, want string) {
		t.Helper()
		if st.State != want {
			t.Fatalf("%s: %s reports state %q, want %q", st.Step, c.name, st.State, want)
		}
	}
	wantDomain := func(step, want string) {
		t.Helper()
		if got := DomainState(w.Domain()); got != want {
			t.Fatalf("%s: virsh domstate %s is %q, want %q", step, w.Domain(), got, want)
		}
	}
	// The OverlayDigest of an UndeployResponse is the content of a file the Repository
	// now keeps for the workspace, and the overlay digest its EPR publishes.
	wantOverlay := func(st managerStep) {
		t.Helper()
		if st.OverlayDigest == nil {
			t.Fatalf("%s: %s reports no OverlayDigest", st.Step, c.name)
		}
		if ok, files := repositoryHolds(t, s, w.Key, *st.OverlayDigest); !ok {
			t.Fatalf("%s: no file the Repository keeps for the workspace has the OverlayDigest %s %s reports: %v", st.Step, *st.OverlayDigest, c.name, files)
		}
		if got := imageDigests(t, w)["overlay"]; got != *st.OverlayDigest {
			t.Fatalf("%s: the workspace publishes overlay digest %q, %s reports %q", st.Step, got, c.name, *st.OverlayDigest)
		}
	}
	checkStateFault := func(step string, f managerFault, current, requested string) {
		t.Helper()
		checkInteropFault(t, step, d, mgrAddr, f.interopFault, "WorkspaceStateFault", vwsns.Faults, current)
		if f.CurrentState != current || f.RequestedState != requested {
			t.Errorf("%s: WorkspaceStateFault names %q → %q, want %q → %q", step, f.CurrentState, f.RequestedState, current, requested)
		}
		if !strings.Contains(f.Description, requested) {
			t.Errorf("%s: Description %q does not name the requested state %q", step, f.Description, requested)
		}
	}

	lastTick := -1 // the last tick the console showed before the workspace was serialized
	var steps []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var st managerStep
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			t.Fatalf("%s printed a line that is not a step report: %v\n%s", c.name, err, sc.Text())
		}
		steps = append(steps, st.Step)
		t.Logf("step %-14s at %5.1fs: %s", st.Step, time.Since(start).Seconds(), sc.Bytes())
		switch st.Step {
		case "deploy":
			wantState(st, "shutdown")
			if st.Deployment != "deployed" || st.Host != s.HostName {
				t.Fatalf("DeployResponse: deployment %q on host %q, want deployed on %s", st.Deployment, st.Host, s.HostName)
			}
			WantWSProps(t, w, "state", "shutdown", "deployment", "deployed", "host", s.HostName, "managerReference", mgrAddr)
			wantDomain(st.Step, "shut off")
			if !s.HasWorkspaceDir(w.Key) {
				t.Fatal("deploy: the manager has no directory for the workspace")
			}
		case "pauseFault":
			checkStateFault("Pause of a shut-down workspace", st.Fault, "shutdown", "paused")
			WantWSProps(t, w, "state", "shutdown")
			wantDomain(st.Step, "shut off")
		case "start":
			wantState(st, "running")
			WantWSProps(t, w, "state", "running", "deployment", "deployed")
			wantDomain(st.Step, "running")
		case "console":
			// The tail the client read is the end of what the guest really wrote.
			console := Console(t, s, w)
			if !strings.Contains(st.Tail, greeting) || guest.LastTick(st.Tail) < 0 || !strings.Contains(console, greeting) {
				t.Fatalf("ConsoleTail as %s read it:\n%s\nthe console:\n%s", c.name, st.Tail, console)
			}
			if n := guest.LastTick(st.Tail); !slices.Contains(guest.Ticks(console), n) {
				t.Fatalf("the ConsoleTail shows tick %d, which the console does not:\n%s", n, console)
			}
			if st.HostState != "running" {
				t.Errorf("DeployedWorkspaces says %q while the job runs", st.HostState)
			}
		case "pause":
			wantState(st, "paused")
			WantWSProps(t, w, "state", "paused")
			wantDomain(st.Step, "paused")
		case "unpause":
			wantState(st, "running")
			WantWSProps(t, w, "state", "running")
			wantDomain(st.Step, "running")
		case "serialize":
			wantState(st, "paused")
			WantWSProps(t, w, "state", "paused", "deployment", "deployed")
			// The RAM is in libvirt's managed-save image: the domain is off, not gone.
			wantDomain(st.Step, "shut off")
			lastTick = guest.LastTick(Console(t, s, w))
		case "undeploy":
			wantState(st, "paused")
			if st.Deployment != "in-repository" {
				t.Fatalf("UndeployResponse: deployment %q", st.Deployment)
			}
			WantWSProps(t, w, "state", "paused", "deployment", "in-repository", "lockHolder", "", "managerReference", "")
			if roles := imageRoles(t, w); !slices.Contains(roles, "memory") {
				t.Fatalf("the serialized workspace was checked in without its memory image: %v", roles)
			}
			wantOverlay(st)
			if DomainDefined(w.Domain()) || s.HasWorkspaceDir(w.Key) {
				t.Fatalf("after undeploy: domain defined %v, manager files %v", DomainDefined(w.Domain()), s.WorkspaceFiles(w.Key))
			}
		case "restore":
			wantState(st, "running")
			WantWSProps(t, w, "state", "running", "deployment", "deployed")
			wantDomain(st.Step, "running")
			// Restored, not booted: the job counts on from where it was saved.
			if ts := guest.Ticks(st.Tail); len(ts) == 0 || ts[0] <= lastTick || strings.Contains(st.Tail, greeting) {
				t.Fatalf("after restore the job should continue after tick %d; the ConsoleTail:\n%s", lastTick, st.Tail)
			}
		case "shutdown":
			wantState(st, "shutdown")
			WantWSProps(t, w, "state", "shutdown", "deployment", "deployed")
			wantDomain(st.Step, "shut off")
			if hw := ReadHost(t, s).Workspaces[w.Key]; mode == "Normal" && strings.Contains(hw.Detail, "forced") {
				t.Errorf("the guest should have powered off on ACPI within %s; the host says %+v", grace, hw)
			}
		case "undeployAgain":
			wantState(st, "shutdown")
			if st.Deployment != "in-repository" {
				t.Fatalf("UndeployResponse: deployment %q", st.Deployment)
			}
			WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "")
			wantOverlay(st)
			if DomainDefined(w.Domain()) || s.HasWorkspaceDir(w.Key) {
				t.Fatalf("after undeploy: domain defined %v, manager files %v", DomainDefined(w.Domain()), s.WorkspaceFiles(w.Key))
			}
		case "unknownFault":
			checkInteropFault(t, "Deploy of an unknown workspace", d, mgrAddr, st.Fault.interopFault,
				"ResourceUnknownFault", d.ResourceUnknownNS, st.Key)
			if DomainDefined("vws-" + st.Key) {
				t.Errorf("a domain was defined for the unknown workspace %s", st.Key)
			}
		case "garbledFault":
			checkInteropFault(t, "Deploy of a reference that is no EPR", d, mgrAddr, st.Fault.interopFault,
				"ServiceFault", vwsns.Faults, "WorkspaceReference")
			WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository")
		case "done":
		default:
			t.Fatalf("%s reported an unknown step %q", c.name, st.Step)
		}
		if _, err := io.WriteString(stdin, "ok\n"); err != nil && st.Step != "done" {
			t.Fatalf("answering step %s: %v", st.Step, err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s (%s): %v after steps %v (its stderr follows)", c.name, d.Name, err, steps)
	}
	want := []string{"deploy", "pauseFault", "start", "console", "pause", "unpause", "serialize", "undeploy",
		"restore", "shutdown", "undeployAgain", "unknownFault", "garbledFault", "done"}
	if !slices.Equal(steps, want) {
		t.Fatalf("%s reported steps %v, want %v", c.name, steps, want)
	}
	if DomainDefined(w.Domain()) {
		t.Errorf("domain %s is left after the scenario", w.Domain())
	}
	t.Logf("%s scenario took %.1fs", d.Name, time.Since(start).Seconds())
}

// repositoryHolds says whether one of the files the Repository keeps for the workspace
// (under its data directory) has the content digest, and lists them.
func repositoryHolds(t *testing.T, s *MgrServer, key, digest string) (bool, []string) {
	t.Helper()
	dir := filepath.Join(s.Dir, "workspaces", key)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("the Repository's files of %s: %v", key, err)
	}
	var names []string
	found := false
	for _, e := range ents {
		names = append(names, e.Name())
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("sha256:%x", sha256.Sum256(data)) == digest {
			found = true
		}
	}
	return found, names
}
