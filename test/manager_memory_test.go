package test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/vws-grid/vws/test/guest"
)

// hostMemoryMiB is the host's memory as libvirt reports it (virsh nodeinfo), which
// the manager accounts against: on a VM with hot-added memory it may be less than
// /proc/meminfo's MemTotal.
func hostMemoryMiB(t *testing.T) int64 {
	t.Helper()
	out, err := exec.Command("virsh", "-c", "qemu:///system", "nodeinfo").Output()
	if err != nil {
		t.Fatalf("virsh nodeinfo: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Memory size:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " KiB"), 10, 64)
			if err != nil {
				t.Fatalf("virsh nodeinfo: %q: %v", line, err)
			}
			return kib / 1024
		}
	}
	t.Fatalf("virsh nodeinfo names no memory size:\n%s", out)
	return 0
}

// TestManagerMemoryAccount: a manager whose --memory-reserve leaves its guests 200
// MiB deploys two 128 MiB workspaces shut down (each fits alone), starts the first,
// and refuses to start the second while the first holds its RAM — a metadata fault
// that says how much is held and what to do, no domain running — and starts it once
// the first is serialized.
func TestManagerMemoryAccount(t *testing.T) {
	t.Parallel()
	guest.Ensure(t)
	reserve := hostMemoryMiB(t) - 200
	s := StartMgrServer(t, MgrServerOptions{HostName: "memory-a", Args: []string{"--memory-reserve", strconv.FormatInt(reserve, 10) + "MiB"}})
	ImportGuest(t, s)
	w1 := CreateWorkspace(t, s, TickerDescription(t))
	w2 := CreateWorkspace(t, s, TickerDescription(t))

	done := Step(t, "deploy two workspaces, start one")
	s.MustCLI(t, "deploy", w1.EPRFile, "--host", s.URL)
	s.MustCLI(t, "deploy", w2.EPRFile, "--host", s.URL)
	s.MustCLI(t, "start", w1.EPRFile)
	done()

	done = Step(t, "start the second: refused")
	r := s.CLI(t, "start", w2.EPRFile)
	done()
	WantFault(t, r, "WorkspaceMetadataFault", "the guest needs 128 MiB", "128 MiB its running and paused guests hold",
		"nothing was started", "shut down or serialize a guest on this host first")
	if st := DomainState(w2.Domain()); st == "running" || st == "paused" {
		t.Fatalf("the refused guest's domain is %s", st)
	}
	WantWSProps(t, w2, "state", "shutdown", "deployment", "deployed")

	done = Step(t, "serialize the first, start the second")
	s.MustCLI(t, "shutdown", w1.EPRFile, "--mode", "serialize")
	s.MustCLI(t, "start", w2.EPRFile)
	done()
	WantWSProps(t, w2, "state", "running")
	// And the serialized one, now without room, is not restored.
	WantFault(t, s.CLI(t, "start", w1.EPRFile), "WorkspaceMetadataFault", "the guest needs 128 MiB")
	s.MustCLI(t, "shutdown", w2.EPRFile, "--mode", "trash")
	s.MustCLI(t, "undeploy", w2.EPRFile)
	s.MustCLI(t, "undeploy", w1.EPRFile)
}
