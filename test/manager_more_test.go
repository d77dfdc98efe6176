// Further manager end-to-end tests: Destroy while deployed, the GT 4.0 dialect.
package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDestroyWhileDeployed: a grid client's Destroy, or the end of the workspace's
// lifetime, ends a workspace that runs on a host: the Repository forgets it at once,
// and the Manager, finding it unknown, stops the guest and removes its files. The
// Repository in the same process tells the Manager: no periodic round (an hour
// apart here) is needed for it.
func TestDestroyWhileDeployed(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "destroy-host", Args: []string{"--reconcile-every", "1h"}})
	ImportGuest(t, s)

	running := CreateWorkspace(t, s, TickerDescription(t))
	s.MustCLI(t, "deploy", running.EPRFile, "--state", "running")
	expiring := CreateWorkspace(t, s, TickerDescription(t))
	s.MustCLI(t, "deploy", expiring.EPRFile)
	if !DomainDefined(running.Domain()) || !DomainDefined(expiring.Domain()) {
		t.Fatal("deployed workspaces have no domain")
	}

	s.MustCLI(t, "destroy", running.EPRFile)
	WantFault(t, s.CLI(t, "status", running.EPRFile), "ResourceUnknownFault")
	// The lifetime runs out while the workspace sits deployed and shut down.
	s.MustCLI(t, "wsrf", "set-termination-time", "-e", expiring.EPRFile, "1")

	for _, w := range []*MgrWorkspace{running, expiring} {
		deadline := time.Now().Add(20 * time.Second)
		for DomainDefined(w.Domain()) || s.HasWorkspaceDir(w.Key) {
			if time.Now().After(deadline) {
				t.Fatalf("workspace %s: 20 s after it was destroyed, domain defined=%v, files=%v",
					w.Key, DomainDefined(w.Domain()), s.WorkspaceFiles(w.Key))
			}
			time.Sleep(200 * time.Millisecond)
		}
		WantFault(t, s.CLI(t, "status", w.EPRFile), "ResourceUnknownFault")
	}
	if host := ReadHost(t, s); len(host.Workspaces) != 0 {
		t.Fatalf("the host still lists %v", host.Workspaces)
	}
}

// TestManagerGT4Dialect drives a workspace through the Manager with a GT 4.0 EPR
// (WS-Addressing 2004/03, the key as a reference property): the Manager checks it out,
// reports to the Repository and names itself in that dialect.
func TestManagerGT4Dialect(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "gt4-host"})
	ImportGuest(t, s)
	w := CreateWorkspace(t, s, TickerDescription(t))
	gt4 := filepath.Join(t.TempDir(), "gt4-epr.xml")
	epr := fmt.Sprintf(`<wsa:EndpointReference xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/03/addressing">
  <wsa:Address>%s/wsrf/services/WorkspaceService</wsa:Address>
  <wsa:ReferenceProperties><vw:WorkspaceKey xmlns:vw="http://vws.dev/ns/2026/workspace">%s</vw:WorkspaceKey></wsa:ReferenceProperties>
</wsa:EndpointReference>`, s.URL, w.Key)
	if err := os.WriteFile(gt4, []byte(epr), 0o644); err != nil {
		t.Fatal(err)
	}
	s.MustCLI(t, "deploy", gt4, "--state", "running")
	s.MustCLI(t, "pause", gt4) // finds the manager through vw:managerReference, in GT4
	WantWSProps(t, w, "state", "paused", "deployment", "deployed", "host", "gt4-host")
	ref := s.MustCLI(t, "wsrf", "get-property", "-e", gt4, "vw:managerReference").stdout
	if !strings.Contains(ref, "http://schemas.xmlsoap.org/ws/2004/03/addressing") || !strings.Contains(ref, "WorkspaceManagerService") {
		t.Fatalf("the manager reference is not a GT4 EPR of the manager: %s", ref)
	}
	s.MustCLI(t, "shutdown", gt4, "--mode", "trash")
	s.MustCLI(t, "undeploy", gt4)
	WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository")
	if DomainDefined(w.Domain()) {
		t.Fatal("the domain outlived the undeploy")
	}
}

// TestShutdownGraceOutlastsTheHandlerTimeout: a Normal shutdown of a guest that does
// not answer the ACPI power button waits the grace period the client asked for —
// longer than the container's 30 s bound on an operation — and then forces the guest
// off, as the contract says, rather than failing at 30 s with the guest still running.
func TestShutdownGraceOutlastsTheHandlerTimeout(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "grace-host"})
	ImportGuest(t, s)
	// The job stops the guest's acpid first: the power button then does nothing.
	w := CreateWorkspace(t, s, TickerDescription(t, `echo "hello from the $1 job"`, `killall acpid; echo "hello from the $1 job"`))
	s.MustCLI(t, "deploy", w.EPRFile, "--state", "running")
	WaitConsole(t, s, w, 90*time.Second, "the job's greeting", func(c string) bool { return strings.Contains(c, "hello from the grid job") })
	t0 := time.Now()
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "normal", "--grace", "33s")
	took := time.Since(t0)
	if took < 33*time.Second {
		t.Fatalf("the shutdown returned after %v, before its 33 s grace: the guest answered the power button after all", took.Round(time.Millisecond))
	}
	if hw := ReadHost(t, s).Workspaces[w.Key]; hw.State != "shutdown" || !strings.Contains(hw.Detail, "forced off") {
		t.Fatalf("after the grace: %+v; want shutdown, forced off", hw)
	}
	if st := DomainState(w.Domain()); st != "shut off" {
		t.Fatalf("the domain is %q", st)
	}
	t.Logf("forced off after %v", took.Round(time.Millisecond))
}

// TestConsoleAcrossLogRotation: virtlogd rotates a console log at 2 MiB (console.log
// becomes console.log.0 …). A job that writes about 4 MiB is followed by `vws console
// --follow` from its start: the follower sees every line once, in order, across the
// rotations, and a plain `vws console` still shows the greeting from before them.
func TestConsoleAcrossLogRotation(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "rotate-host"})
	ImportGuest(t, s)
	const lines = 70000 // ~67 bytes each: two rotations of 2 MiB
	desc := TickerDescription(t, `while :; do echo "tick $i"; i=$((i+1)); sleep 1; done`,
		fmt.Sprintf(`while [ $i -lt %d ]; do echo "flood line $i ................................................"; i=$((i+1)); done; echo "flood done"; while :; do echo "tick $i"; i=$((i+1)); sleep 1; done`, lines))
	w := CreateWorkspace(t, s, desc)
	s.MustCLI(t, "deploy", w.EPRFile, "--state", "running")

	follow := exec.Command(vws(t), "console", "--follow", w.EPRFile)
	follow.Env = append(os.Environ(), "VWS_URL="+s.URL)
	var followed, followErr strings.Builder
	follow.Stdout, follow.Stderr = &followed, &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	defer follow.Process.Kill()
	WaitConsole(t, s, w, 180*time.Second, "the flood's end", func(c string) bool { return strings.Contains(c, "flood done") })
	if _, err := os.Stat(filepath.Join(s.ManagerDir(), "workspaces", w.Key, "console.log.1")); err != nil {
		t.Fatalf("the console log did not rotate twice (is virtlogd's max_size 2 MiB?): %v", err)
	}
	time.Sleep(2 * time.Second) // a poll or two of the follower after the end
	follow.Process.Signal(os.Interrupt)
	if err := follow.Wait(); follow.ProcessState.ExitCode() != 130 {
		t.Errorf("the follower ended by Ctrl-C with %v, want exit status 130", err)
	}

	check := func(what, out string) {
		t.Helper()
		if n := strings.Count(out, "hello from the grid job"); n != 1 {
			t.Errorf("%s: %d greetings, want 1", what, n)
		}
		next := 0
		for _, l := range strings.Split(out, "\n") {
			var i int
			if _, err := fmt.Sscanf(l, "flood line %d", &i); err != nil {
				continue
			}
			if i != next {
				t.Fatalf("%s: flood line %d where %d was due", what, i, next)
			}
			next++
		}
		if next != lines || !strings.Contains(out, "flood done") {
			t.Errorf("%s: %d of %d flood lines, end seen %v", what, next, lines, strings.Contains(out, "flood done"))
		}
	}
	check("vws console --follow", followed.String())
	// Besides its output, the follower says only that it stopped (and, if it began
	// before the guest printed anything, that there was nothing yet).
	for _, l := range strings.Split(strings.TrimSpace(followErr.String()), "\n") {
		if l != "vws: interrupted: stopped following the console; the workspace runs on" && l != "(no console output yet)" {
			t.Errorf("the follower said: %s", l)
		}
	}
	check("vws console", Console(t, s, w))
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
}

// TestDeployPaused: Deploy with initial state paused boots the guest with its vCPUs
// stopped before its first instruction: nothing of it runs, so its job has not begun
// (and a manager killed meanwhile finds it paused, not running), until Unpause.
func TestDeployPaused(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "paused-host"})
	ImportGuest(t, s)
	w := CreateWorkspace(t, s, TickerDescription(t))
	s.MustCLI(t, "deploy", w.EPRFile, "--state", "paused")
	WantWSProps(t, w, "state", "paused", "deployment", "deployed")
	if got := DomainState(w.Domain()); got != "paused" {
		t.Fatalf("after a deploy paused the domain is %q", got)
	}
	// Not a single instruction ran: a start followed by a pause, however quick,
	// leaves the vCPU somewhere in the firmware.
	if !VCPUsAtResetVector(t, w.Domain()) {
		t.Fatal("the guest deployed paused ran before it was paused: its vCPU left the reset vector")
	}
	if c := Console(t, s, w); c != "" {
		t.Fatalf("a guest deployed paused printed on its console:\n%s", c)
	}
	if ws, ok := ReadHost(t, s).Workspaces[w.Key]; !ok || ws.State != "paused" {
		t.Fatalf("the host lists the workspace as %+v", ws)
	}
	s.MustCLI(t, "unpause", w.EPRFile)
	WaitConsole(t, s, w, 60*time.Second, "the job's output after the unpause", func(c string) bool { return strings.Contains(c, "hello from the grid job") })
	WantWSProps(t, w, "state", "running")
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	s.MustCLI(t, "undeploy", w.EPRFile)
}
