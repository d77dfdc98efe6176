package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/test/guest"
)

// managedSave is what libvirt-guests does to every running guest at a host shutdown
// with ON_SHUTDOWN=suspend (upstream's default), and what an administrator may do
// by hand: libvirt saves the RAM to its own file and a later start resumes it.
func managedSave(t *testing.T, domain string) {
	t.Helper()
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "managedsave", domain).CombinedOutput(); err != nil {
		t.Fatalf("virsh managedsave %s: %v: %s", domain, err, out)
	}
}

// hasManagedSave asks libvirt whether domain has a managed-save image.
func hasManagedSave(t *testing.T, domain string) bool {
	t.Helper()
	out, err := exec.Command("virsh", "-c", "qemu:///system", "dominfo", domain).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh dominfo %s: %v: %s", domain, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Managed save" {
			return strings.TrimSpace(v) == "yes"
		}
	}
	t.Fatalf("virsh dominfo %s says nothing of a managed save:\n%s", domain, out)
	return false
}

// TestManagerManagedSave: a guest whose RAM libvirt saved by itself is a serialized
// workspace, not a corrupted one. Across a host shutdown (the manager stopped, the
// guest suspended by libvirt-guests) and while the manager runs (an administrator's
// virsh managedsave), the manager takes the RAM into the workspace's memory image:
// Start resumes the guest where it stopped, and no managed-save image is left behind
// for a later cold start to resume by surprise.
func TestManagerManagedSave(t *testing.T) {
	t.Parallel()
	h := startCrashHost(t, "host-managedsave")
	holdGuests(t, 1)
	ws := h.runningTickers(1)
	w := ws[0]
	mem := filepath.Join(h.ManagerDir(), "workspaces", w.Key, "memory.save")

	resumes := func(what string) {
		t.Helper()
		if hasManagedSave(t, w.Domain()) {
			t.Errorf("%s: the managed-save image is still there", what)
		}
		if fi, err := os.Stat(mem); err != nil || fi.Size() == 0 {
			t.Fatalf("%s: the workspace has no memory image (%v)", what, err)
		}
		saved := guest.LastTick(Console(t, h.MgrServer, w))
		h.MustCLI(t, "start", w.EPRFile)
		c := WaitConsole(t, h.MgrServer, w, 30*time.Second, "ticks after the start", func(c string) bool { return guest.LastTick(c) > saved+1 })
		if n := strings.Count(c, "hello from the grid job"); n != 1 {
			t.Fatalf("%s: the guest was rebooted instead of resumed: %d greetings on its console", what, n)
		}
		WantWSProps(t, w, "state", "running")
		if _, err := os.Stat(mem); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: the spent memory image is still there (stat: %v)", what, err)
		}
	}

	// A host shutdown: the manager stops, libvirt-guests suspends the guest.
	h.Kill()
	managedSave(t, w.Domain())
	journal := h.restartSettled(ws)
	if rec := journal[w.Key]; rec.State != "paused" || !rec.Hot || !strings.Contains(rec.Detail, "managedsave") {
		t.Fatalf("after libvirt saved the guest's RAM across a manager restart the workspace is %+v, want serialized, saying why", rec)
	}
	WantWSProps(t, w, "state", "paused", "deployment", "deployed")
	resumes("after a host shutdown")

	// An administrator's virsh managedsave of a paused guest, the manager running: the
	// stop event brings the reconciler at once.
	h.MustCLI(t, "pause", w.EPRFile)
	managedSave(t, w.Domain())
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		j, err := h.journal()
		if err != nil {
			t.Fatal(err)
		}
		if rec := j[w.Key]; rec.Hot {
			break
		}
		if time.Since(start) > settleTimeout {
			t.Fatalf("%v after a managedsave the workspace is %+v, want serialized", settleTimeout, j[w.Key])
		}
	}
	h.settle(ws)
	resumes("while the manager runs")

	// A managed save left behind on a shut-down workspace (as a Trash of one that an
	// earlier vws had called corrupted left it) is stale RAM for a disk that moved on:
	// Start boots afresh instead of resuming it.
	h.Kill()
	managedSave(t, w.Domain())
	h.editJournal(w.Key, func(rec map[string]any) { rec["state"] = "shutdown"; delete(rec, "detail") })
	h.restartSettled(ws)
	h.MustCLI(t, "start", w.EPRFile)
	WaitConsole(t, h.MgrServer, w, 90*time.Second, "a second boot", func(c string) bool { return strings.Count(c, "hello from the grid job") == 2 })
	if hasManagedSave(t, w.Domain()) {
		t.Error("the stale managed-save image is still there after a cold start")
	}
	h.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
}

// killQEMU kills the QEMU process of domain, as the OOM killer or a host crash would.
func killQEMU(t *testing.T, domain string) {
	t.Helper()
	if out, err := exec.Command("pkill", "-9", "-f", "guest="+domain+",").CombinedOutput(); err != nil {
		t.Fatalf("pkill the QEMU of %s: %v: %s", domain, err, out)
	}
}

// TestManagerGuestProcessDies: a guest's QEMU process killed (the OOM killer) while
// the manager runs, or while it is down (a host crash), makes the workspace
// corrupted at once or at the restart, saying what happened and what to do; Trash
// boots it afresh and Undeploy takes its disk back to the Repository.
func TestManagerGuestProcessDies(t *testing.T) {
	t.Parallel()
	h := startCrashHost(t, "host-qemu-dies", "--reconcile-every", "1h")
	holdGuests(t, 2)
	ws := h.runningTickers(2)
	killed, crashed := ws[0], ws[1]

	killQEMU(t, killed.Domain())
	start := time.Now()
	for h.row(killed).State != "corrupted" {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("5 s after its QEMU was killed the workspace is %+v (domain %q): the stop event did not reach the manager", h.row(killed), DomainState(killed.Domain()))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the repository said corrupted %v after the kill", time.Since(start).Round(time.Millisecond))

	h.Kill()
	killQEMU(t, crashed.Domain())
	journal := h.restartSettled(ws)
	for _, w := range ws {
		WantWSProps(t, w, "state", "corrupted", "deployment", "deployed")
		detail := WSProps(t, w, "stateDetail")["stateDetail"]
		for _, want := range []string{"QEMU process died while running", "RAM is lost", "Shutdown Trash", "Undeploy keeps them"} {
			if !strings.Contains(detail, want) {
				t.Errorf("%s: vw:stateDetail %q does not say %q", w.Key, detail, want)
			}
		}
		if journal[w.Key].State != "corrupted" {
			t.Errorf("%s: journal %+v", w.Key, journal[w.Key])
		}
	}
	WantFault(t, h.CLI(t, "start", killed.EPRFile), "WorkspaceStateFault", "corrupted")

	h.MustCLI(t, "shutdown", killed.EPRFile, "--mode", "trash")
	h.MustCLI(t, "start", killed.EPRFile)
	WaitConsole(t, h.MgrServer, killed, 90*time.Second, "a fresh boot", func(c string) bool { return strings.Count(c, "hello from the grid job") == 2 })
	h.MustCLI(t, "shutdown", killed.EPRFile, "--mode", "trash")

	h.MustCLI(t, "undeploy", crashed.EPRFile)
	WantWSProps(t, crashed, "deployment", "in-repository")
	if DomainDefined(crashed.Domain()) || h.HasWorkspaceDir(crashed.Key) {
		t.Errorf("the undeployed workspace left its domain (%v) or files (%v)", DomainDefined(crashed.Domain()), h.WorkspaceFiles(crashed.Key))
	}
}
