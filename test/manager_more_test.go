// Further manager end-to-end tests: Destroy while deployed, the GT 4.0 dialect.
package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDestroyWhileDeployed: a grid client's Destroy, or the end of the workspace's
// lifetime, ends a workspace that runs on a host: the Repository forgets it at once,
// and the Manager, finding it unknown, stops the guest and removes its files.
func TestDestroyWhileDeployed(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "destroy-host"})
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
