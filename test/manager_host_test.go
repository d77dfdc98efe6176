package test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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
// workspace, not a corrupted one, and its RAM is never lost or resumed by surprise:
// across a host shutdown (the manager stopped, the guest suspended by libvirt-guests)
// Start resumes it where it stopped; libvirt-guests resuming it at boot
// (ON_BOOT=start) finds it running on; Undeploy carries the RAM to the Repository and
// a new deploy resumes it; Trash discards it; and a managed save left behind on a
// shut-down workspace does not make a cold Start resume stale RAM.
func TestManagerManagedSave(t *testing.T) {
	t.Parallel()
	h := startCrashHost(t, "host-managedsave")
	holdGuests(t, 1)
	ws := h.runningTickers(1)
	w := ws[0]
	mem := filepath.Join(h.ManagerDir(), "workspaces", w.Key, "memory.save")

	// suspended has libvirt save the guest's RAM behind the manager's back (killed
	// first, as at a host shutdown, when down) and waits until the manager records
	// the workspace serialized.
	suspended := func(what string, down bool) int {
		t.Helper()
		saved := guest.LastTick(Console(t, h.MgrServer, w))
		if down {
			h.Kill()
		}
		managedSave(t, w.Domain())
		if down {
			h.restart()
		}
		h.settle(ws)
		for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
			j, err := h.journal()
			if err != nil {
				t.Fatal(err)
			}
			if rec := j[w.Key]; rec.Hot {
				if rec.State != "paused" || !strings.Contains(rec.Detail, "managedsave") {
					t.Fatalf("%s: the workspace is %+v, want serialized, saying why", what, rec)
				}
				break
			}
			if time.Since(start) > settleTimeout {
				t.Fatalf("%s: %v after a managedsave the workspace is %+v, want serialized", what, settleTimeout, j[w.Key])
			}
		}
		WantWSProps(t, w, "state", "paused", "deployment", "deployed")
		if !hasManagedSave(t, w.Domain()) {
			t.Fatalf("%s: the managed-save image is gone while the workspace is serialized", what)
		}
		return saved
	}
	greetings := func() int { return strings.Count(Console(t, h.MgrServer, w), "hello from the grid job") }
	// continued waits for ticks past saved with the guest never rebooted (its greeting
	// count unchanged: the boot's job prints one).
	continued := func(what string, saved, greeted int) {
		t.Helper()
		c := WaitConsole(t, h.MgrServer, w, 30*time.Second, what+": ticks after "+strconv.Itoa(saved), func(c string) bool { return guest.LastTick(c) > saved+1 })
		if n := strings.Count(c, "hello from the grid job"); n != greeted {
			t.Fatalf("%s: the guest was rebooted instead of resumed: %d greetings on its console, %d before", what, n, greeted)
		}
		if hasManagedSave(t, w.Domain()) {
			t.Errorf("%s: the spent managed-save image is still there", what)
		}
	}

	// A host shutdown with libvirt-guests ON_SHUTDOWN=suspend; Start resumes.
	saved := suspended("after a host shutdown", true)
	h.MustCLI(t, "start", w.EPRFile)
	WantWSProps(t, w, "state", "running")
	continued("Start", saved, 1)

	// ... and ON_BOOT=start: libvirt-guests resumes it before anyone asks.
	saved = suspended("an administrator's managedsave", false)
	if out, err := exec.Command("virsh", "-c", "qemu:///system", "start", w.Domain()).CombinedOutput(); err != nil {
		t.Fatalf("virsh start (as libvirt-guests at boot): %v: %s", err, out)
	}
	// A start is no event the manager acts on at once: its timer's next round sees it.
	WantWSPropsWithin(t, w, settleTimeout, "state", "running")
	continued("libvirt-guests at boot", saved, 1)

	// Undeploy carries the RAM; a deploy resumes it.
	saved = suspended("before an undeploy", false)
	h.MustCLI(t, "undeploy", w.EPRFile)
	WantWSProps(t, w, "deployment", "in-repository", "state", "paused")
	if DomainDefined(w.Domain()) {
		t.Fatal("the undeployed workspace's domain is still defined")
	}
	h.MustCLI(t, "deploy", w.EPRFile, "--state", "running")
	continued("deploy of the undeployed workspace", saved, 0) // a new deployment's console
	if _, err := os.Stat(mem); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the spent memory image is still there (stat: %v)", err)
	}

	// Trash discards it.
	suspended("before a Trash", false)
	h.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	if hasManagedSave(t, w.Domain()) {
		t.Error("Trash left the managed-save image")
	}
	g := greetings()
	h.MustCLI(t, "start", w.EPRFile)
	WaitConsole(t, h.MgrServer, w, 90*time.Second, "a fresh boot after the Trash", func(c string) bool {
		return strings.Count(c, "hello from the grid job") == g+1 && guest.LastTick(c) >= 1
	})

	// A managed save left behind on a shut-down workspace (as a Trash of one that an
	// earlier vws had called corrupted left it) is stale RAM for a disk that moved on:
	// Start boots afresh instead of resuming it.
	g = greetings()
	h.Kill()
	managedSave(t, w.Domain())
	h.editJournal(w.Key, func(rec map[string]any) { rec["state"] = "shutdown"; delete(rec, "detail") })
	h.restartSettled(ws)
	h.MustCLI(t, "start", w.EPRFile)
	WaitConsole(t, h.MgrServer, w, 90*time.Second, "a fresh boot", func(c string) bool {
		return strings.Count(c, "hello from the grid job") == g+1
	})
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
	// libvirtd takes a second or so to see its QEMU gone; a manager restarted before
	// that finds the guest running, rightly, and learns of the crash from the event.
	for start := time.Now(); DomainState(crashed.Domain()) != "shut off"; time.Sleep(100 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("30 s after its QEMU was killed libvirt has the domain %q", DomainState(crashed.Domain()))
		}
	}
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

// TestManagerSerializeHoldsUpNoOne: while one guest's RAM is saved and restored
// (seconds each), the host's status and a workspace's properties, read by four
// clients at once (pollProperties), and another workspace's Pause are answered at
// once, not after the save or restore: the host status is read on a libvirt
// connection of its own. (On the one shared connection, reads waited until the
// save's end, up to 1.5 s.)
func TestManagerSerializeHoldsUpNoOne(t *testing.T) {
	t.Parallel()
	h := startCrashHost(t, "host-long-calls")
	holdGuests(t, 2)
	ws := h.runningTickers(2)
	moving, other := ws[0], ws[1]

	done := make(chan struct{})
	readErrs := make(chan error, 1)
	var slowest atomic.Int64
	readers := pollProperties(h.MgrServer, other, done, readErrs, &slowest)
	start := time.Now()
	result := h.asyncCLI("shutdown", moving.EPRFile, "--mode", "serialize")
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	h.MustCLI(t, "pause", other.EPRFile)
	paused := time.Since(t0)
	if r := <-result; r.code != 0 {
		t.Fatalf("serialize: %+v", r)
	}
	h.MustCLI(t, "start", moving.EPRFile) // a restore
	took := time.Since(start)
	close(done)
	readers.Wait()
	select {
	case err := <-readErrs:
		t.Fatalf("a property read failed: %v", err)
	default:
	}
	worst := time.Duration(slowest.Load())
	t.Logf("during a Serialize and a Start (%v): the slowest property read %v; a Pause of another workspace %v",
		took.Round(time.Millisecond), worst.Round(time.Millisecond), paused.Round(time.Millisecond))
	if worst > took/4 || paused > took/4 {
		t.Errorf("calls waited for the save or restore: the slowest property read took %v, the Pause %v, of %v",
			worst.Round(time.Millisecond), paused.Round(time.Millisecond), took.Round(time.Millisecond))
	}
	WantWSProps(t, other, "state", "paused")
	WantWSProps(t, moving, "state", "running")
	h.MustCLI(t, "shutdown", other.EPRFile, "--mode", "trash")
	h.MustCLI(t, "shutdown", moving.EPRFile, "--mode", "trash")
}
