package test

import (
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
