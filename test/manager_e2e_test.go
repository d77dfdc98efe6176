package test

// End-to-end tests of the VW Manager: the real vws binary serving over loopback HTTP,
// the CLI, and real QEMU guests (TCG) through libvirt — no mocks. They boot the test
// guest (test/guest), so `go test -short` skips them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"

	"github.com/vws-grid/vws/test/guest"
	"github.com/vws-grid/vws/test/sockproxy"
)

const (
	bootTimeout = 60 * time.Second // boot to "tick 2" on TCG takes about 7-9 s
	tickTimeout = 20 * time.Second
)

func hasTicks(min int) func(string) bool {
	return func(c string) bool { return guest.LastTick(c) >= min }
}

// shortDigest is how `vws host status` prints a digest.
func shortDigestOf(d string) string { return d[:len("sha256:")+12] }

func TestManagerLifecycle(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "lifecycle-host"})
	imgs := ImportGuest(t, s)
	w := CreateWorkspace(t, s, TickerDescription(t))
	mgrAddr := s.URL + "/wsrf/services/" + vwsns.ManagerService
	// Two grid users follow the workspace's changes, one in each dialect.
	subs := map[string]*Subscriber{
		"wsrf12": StartSubscriber(t, []string{"VWS_URL=" + s.URL}, "-e", w.EPRFile, "--dialect", "wsrf12"),
		"gt4":    StartSubscriber(t, []string{"VWS_URL=" + s.URL}, "-e", w.EPRFile, "--dialect", "gt4"),
	}

	done := Step(t, "deploy")
	s.MustCLI(t, "deploy", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed", "host", "lifecycle-host", "managerReference", mgrAddr)
	if !DomainDefined(w.Domain()) {
		t.Fatalf("after deploy, libvirt has no domain %s", w.Domain())
	}

	done = Step(t, "start")
	if out := s.MustCLI(t, "start", w.EPRFile).stdout; !strings.HasPrefix(out, "start: running (") {
		t.Fatalf("vws start printed %q", out)
	}
	done()
	WantWSProps(t, w, "state", "running", "deployment", "deployed")

	done = Step(t, "boot to tick 2")
	c := WaitConsole(t, s, w, bootTimeout, "the job's greeting and tick 2", func(c string) bool {
		return strings.Contains(c, "hello from the grid job") && guest.LastTick(c) >= 2
	})
	done()
	if ts := guest.Ticks(c); ts[0] != 0 {
		t.Fatalf("a fresh boot should count from 0: %v", ts)
	}

	// The host: the workspace runs, its console tail shows the job, the images are cached.
	h := ReadHost(t, s)
	hw, ok := h.Workspaces[w.Key]
	if !ok || hw.State != "running" || hw.Deployment != "deployed" || !strings.Contains(hw.ConsoleTail, "tick") || hw.Domain != w.Domain() {
		t.Fatalf("host properties: workspace %+v (present %v)", hw, ok)
	}
	for _, d := range []string{imgs.Disk, imgs.Kernel, imgs.Initrd} {
		if _, ok := h.Cached[d]; !ok {
			t.Fatalf("host properties: %s is not among the cached images %v", d, h.Cached)
		}
	}
	hs := s.MustCLI(t, "host", "status", s.URL).stdout
	if !strings.Contains(hs, w.Key) || !strings.Contains(hs, "running") || !regexp.MustCompile(`DomainType: +qemu\n`).MatchString(hs) ||
		ReadHost(t, s).Arch == "" || !regexp.MustCompile(`Architecture: +`+regexp.QuoteMeta(ReadHost(t, s).Arch)+`\n`).MatchString(hs) {
		t.Fatalf("vws host status:\n%s", hs)
	}
	for _, d := range []string{imgs.Disk, imgs.Kernel, imgs.Initrd} {
		if !strings.Contains(hs, shortDigestOf(d)) {
			t.Fatalf("vws host status does not list cached image %s:\n%s", d, hs)
		}
	}

	// Pause: the guest's clock stops, so the console does not advance.
	done = Step(t, "pause")
	s.MustCLI(t, "pause", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "paused")
	if st := DomainState(w.Domain()); st != "paused" {
		t.Fatalf("virsh domstate after pause: %q", st)
	}
	before := Console(t, s, w)
	time.Sleep(3 * time.Second)
	after := Console(t, s, w)
	if guest.LastTick(after) != guest.LastTick(before) || after != before {
		t.Fatalf("the console advanced while paused: tick %d → %d", guest.LastTick(before), guest.LastTick(after))
	}
	done = Step(t, "unpause")
	s.MustCLI(t, "unpause", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "running")
	c = WaitConsole(t, s, w, tickTimeout, fmt.Sprintf("a tick after %d", guest.LastTick(before)), hasTicks(guest.LastTick(before)+1))

	// Serialize: RAM saved, the workspace paused (hot).
	done = Step(t, "shutdown serialize")
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "serialize")
	done()
	WantWSProps(t, w, "state", "paused", "deployment", "deployed")
	lastBefore := guest.LastTick(Console(t, s, w))
	t.Logf("last tick before undeploy: %d", lastBefore)

	done = Step(t, "undeploy (serialized)")
	s.MustCLI(t, "undeploy", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "paused", "deployment", "in-repository", "lockHolder", "", "managerReference", "")
	if roles := imageRoles(t, w); !slices.Contains(roles, "memory") {
		t.Fatalf("the serialized workspace was checked in without its memory image: %v", roles)
	}
	if DomainDefined(w.Domain()) {
		t.Fatalf("after undeploy, libvirt still has domain %s", w.Domain())
	}
	if s.HasWorkspaceDir(w.Key) {
		t.Fatalf("after undeploy, the manager still has files for the workspace: %v", s.WorkspaceFiles(w.Key))
	}
	if _, ok := ReadHost(t, s).Workspaces[w.Key]; ok {
		t.Fatal("after undeploy, the host still lists the workspace")
	}

	// Deploy it running again: it resumes where it stopped.
	done = Step(t, "deploy --state running (restore)")
	s.MustCLI(t, "deploy", w.EPRFile, "--state", "running")
	done()
	WantWSProps(t, w, "state", "running", "deployment", "deployed")
	done = Step(t, "ticks after restore")
	c = WaitConsole(t, s, w, tickTimeout, fmt.Sprintf("ticks after %d", lastBefore), hasTicks(lastBefore+2))
	done()
	if ts := guest.Ticks(c); ts[0] <= lastBefore || strings.Contains(c, "hello from the grid job") {
		t.Fatalf("the restored guest should continue after tick %d, not boot anew; its console:\n%s", lastBefore, c)
	}

	// Normal shutdown: the guest's acpid powers it off within the grace period.
	done = Step(t, "shutdown normal (ACPI)")
	start := time.Now()
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "normal", "--grace", "20s")
	took := time.Since(start)
	done()
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed")
	hw = ReadHost(t, s).Workspaces[w.Key]
	if hw.State != "shutdown" || strings.Contains(hw.Detail, "forced") || took >= 20*time.Second {
		t.Fatalf("the guest should have powered off on ACPI within the grace period; took %s, host says %+v", took, hw)
	}
	if st := DomainState(w.Domain()); st != "shut off" {
		t.Fatalf("virsh domstate after shutdown: %q", st)
	}

	done = Step(t, "shutdown trash (already shut down)")
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	done()
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed")

	done = Step(t, "undeploy")
	s.MustCLI(t, "undeploy", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "")
	if DomainDefined(w.Domain()) || s.HasWorkspaceDir(w.Key) {
		t.Fatalf("after undeploy: domain defined %v, manager files %v", DomainDefined(w.Domain()), s.WorkspaceFiles(w.Key))
	}
	if roles := imageRoles(t, w); slices.Contains(roles, "memory") {
		t.Fatalf("a shut-down workspace still carries a memory image: %v", roles)
	}
	// It deploys again, cold (its saved RAM is spent).
	done = Step(t, "deploy again, undeploy")
	s.MustCLI(t, "deploy", w.EPRFile)
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed")
	s.MustCLI(t, "undeploy", w.EPRFile)
	done()

	done = Step(t, "destroy")
	s.MustCLI(t, "destroy", w.EPRFile)
	done()
	WantFault(t, s.CLI(t, "status", w.EPRFile), "ResourceUnknownFault", w.Key)

	// Each subscriber was told every change, in order, and ended with the workspace.
	for name, sub := range subs {
		if code := sub.Wait(t, 30*time.Second); code != 0 {
			t.Fatalf("%s subscriber: exit %d after the workspace's end", name, code)
		}
		chains, ended := sub.Changes(t)
		WantChain(t, name+" subscriber: state", chains["state"], []string{"shutdown", "running", "paused", "running", "paused", "running", "shutdown"})
		WantChain(t, name+" subscriber: deployment", chains["deployment"],
			[]string{"in-repository", "deployed", "in-repository", "deployed", "in-repository", "deployed", "in-repository"})
		if ended != "destroyed at a client's request" {
			t.Errorf("%s subscriber: the workspace ended with %q", name, ended)
		}
	}
}

func TestColdMigration(t *testing.T) {
	t.Parallel()
	a := StartMgrServer(t, MgrServerOptions{HostName: "hostA"})
	b := StartMgrServer(t, MgrServerOptions{HostName: "hostB", Roles: []string{"manager"}, Repository: a.URL})
	ImportGuest(t, a)
	w := CreateWorkspace(t, a, TickerDescription(t))

	done := Step(t, "deploy on A, running")
	a.MustCLI(t, "deploy", w.EPRFile, "--host", a.URL, "--state", "running")
	done()
	WantWSProps(t, w, "state", "running", "host", "hostA")
	done = Step(t, "boot on A to tick 2")
	WaitConsole(t, a, w, bootTimeout, "tick 2", hasTicks(2))
	done()

	done = Step(t, "serialize on A")
	a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "serialize")
	done()
	lastA := guest.LastTick(Console(t, a, w))
	done = Step(t, "undeploy from A")
	a.MustCLI(t, "undeploy", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "paused", "deployment", "in-repository", "lockHolder", "")
	if DomainDefined(w.Domain()) || a.HasWorkspaceDir(w.Key) {
		t.Fatalf("after undeploy from A: domain defined %v, A's files %v", DomainDefined(w.Domain()), a.WorkspaceFiles(w.Key))
	}
	t.Logf("last tick on A: %d", lastA)

	done = Step(t, "deploy on B, paused (restored into memory, vCPUs stopped), then unpause")
	a.MustCLI(t, "deploy", w.EPRFile, "--host", b.URL, "--state", "paused")
	WantWSProps(t, w, "state", "paused", "deployment", "deployed", "host", "hostB",
		"managerReference", b.URL+"/wsrf/services/"+vwsns.ManagerService)
	if st := DomainState(w.Domain()); st != "paused" {
		t.Fatalf("deployed paused from a hot image, the domain is %q, want paused (restored, not running)", st)
	}
	a.MustCLI(t, "unpause", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "running", "deployment", "deployed")
	done = Step(t, "ticks on B")
	// `vws console` finds B through the workspace's vw:managerReference.
	c := WaitConsole(t, a, w, tickTimeout, fmt.Sprintf("ticks after %d", lastA), hasTicks(lastA+2))
	done()
	if ts := guest.Ticks(c); ts[0] <= lastA || strings.Contains(c, "hello from the grid job") {
		t.Fatalf("on B the job should continue after tick %d; B's console:\n%s", lastA, c)
	}
	hb := ReadHost(t, b)
	if hw, ok := hb.Workspaces[w.Key]; !ok || hw.State != "running" {
		t.Fatalf("B's host properties: %+v", hb.Workspaces)
	}
	if hs := b.MustCLI(t, "host", "status", b.URL).stdout; !strings.Contains(hs, w.Key) || !strings.Contains(hs, "running") {
		t.Fatalf("vws host status of B:\n%s", hs)
	}
	if _, ok := ReadHost(t, a).Workspaces[w.Key]; ok {
		t.Fatal("A still lists the workspace")
	}

	done = Step(t, "shutdown trash on B")
	a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
	done()
	done = Step(t, "undeploy from B")
	a.MustCLI(t, "undeploy", w.EPRFile)
	done()
	WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "")
	if DomainDefined(w.Domain()) || b.HasWorkspaceDir(w.Key) {
		t.Fatalf("after undeploy from B: domain defined %v, B's files %v", DomainDefined(w.Domain()), b.WorkspaceFiles(w.Key))
	}
	a.MustCLI(t, "destroy", w.EPRFile)
}

func TestManagerFaults(t *testing.T) {
	t.Parallel()
	a := StartMgrServer(t, MgrServerOptions{HostName: "faults-a"})
	b := StartMgrServer(t, MgrServerOptions{HostName: "faults-b", Roles: []string{"manager"}, Repository: a.URL})
	imgs := ImportGuest(t, a)
	w := CreateWorkspace(t, a, TickerDescription(t))

	// nothingOnB: a refused deploy on B leaves no journal record, no file, no domain.
	nothingOnB := func(what string) {
		t.Helper()
		if e := b.ManagerEntries(); len(e) > 0 {
			t.Fatalf("%s: B's manager kept %v", what, e)
		}
	}

	t.Run("locked", func(t *testing.T) {
		a.MustCLI(t, "deploy", w.EPRFile, "--host", a.URL)
		// A's Repository is in the same process: the base came from its pool by a
		// hard link, checked, and counted as staged from the pool.
		pooled := filepath.Join(a.Dir, "images", strings.Replace(imgs.Disk, ":", "-", 1))
		cached := filepath.Join(a.ManagerDir(), "cache", strings.TrimPrefix(imgs.Disk, "sha256:"))
		if !sameFile(t, pooled, cached) {
			t.Fatal("A staged its own pool's base image by copying it, not by a hard link")
		}
		if v := metricValue(t, a, `vws_manager_staged_bytes_total{source="pool"}`); v <= 0 {
			t.Fatalf("A counts %v bytes staged from its pool", v)
		}
		r := a.CLI(t, "deploy", w.EPRFile, "--host", b.URL)
		WantFault(t, r, "WorkspaceLockedFault", "faults-a")
		WantWSProps(t, w, "state", "shutdown", "deployment", "deployed", "host", "faults-a", "lockHolder", "faults-a")
		nothingOnB("locked")
		if !DomainDefined(w.Domain()) {
			t.Fatal("the refused deploy on B removed A's domain")
		}
		// The same over SOAP: the fault's type is in its BaseFault detail.
		body := mgrDeployBody(w.EPR)
		_, err := mgrSOAP.Invoke(context.Background(), &wsa.EPR{Version: w.EPR.Version, Address: b.URL + "/wsrf/services/" + vwsns.ManagerService}, "Deploy", body)
		var fe *client.FaultError
		if !errors.As(err, &fe) || fe.Type != "WorkspaceLockedFault" || !strings.Contains(fe.Description, "faults-a") {
			t.Fatalf("SOAP Deploy on B: %v", err)
		}
	})

	t.Run("a repository the host does not serve", func(t *testing.T) {
		// The workspace's reference, pointed at another server: neither manager calls
		// it, whatever it is, and each says which repositories it serves.
		var calls atomic.Int32
		foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			http.Error(w, "internal service", http.StatusOK)
		}))
		defer foreign.Close()
		aBefore := a.ManagerEntries()
		// Another server, and addresses on A's that are no WorkspaceService (a made-up
		// reference to one of them once left a deploy journaled for good).
		for _, address := range []string{foreign.URL + "/wsrf/services/" + vwsns.WorkspaceService, a.URL + "/healthz",
			a.URL + "/wsrf/services/" + vwsns.ManagerService} {
			elsewhere := *w.EPR
			elsewhere.Address = address
			for _, srv := range []*MgrServer{b, a} {
				_, err := mgrSOAP.Invoke(context.Background(), &wsa.EPR{Version: w.EPR.Version, Address: srv.URL + "/wsrf/services/" + vwsns.ManagerService},
					"Deploy", mgrDeployBody(&elsewhere))
				var fe *client.FaultError
				if !errors.As(err, &fe) || fe.Type != "WorkspaceAuthorizationFault" || !strings.Contains(fe.Description, a.URL) ||
					!strings.Contains(fe.Description, address) || !strings.Contains(fe.Description, "--repository") {
					t.Fatalf("Deploy on %s of a workspace at %s: %v", srv.HostName, address, err)
				}
			}
		}
		if n := calls.Load(); n != 0 {
			t.Fatalf("a refused deploy sent %d requests to the address its reference named", n)
		}
		nothingOnB("a repository B does not serve")
		if got := a.ManagerEntries(); !slices.Equal(got, aBefore) {
			t.Fatalf("refused deploys changed A's manager: %v, before %v", got, aBefore)
		}
	})

	t.Run("reference parameters of the caller's own", func(t *testing.T) {
		// A header smuggled in as a reference parameter of the workspace's EPR does not
		// reach the Repository in the manager's request: the check-out happens (and is
		// refused, A holding the workspace) rather than failing on that header.
		injected := etree.NewElement("x:Injected")
		injected.CreateAttr("xmlns:x", "urn:example:injected")
		injected.CreateAttr("xmlns:soapenv", "http://schemas.xmlsoap.org/soap/envelope/")
		injected.CreateAttr("soapenv:mustUnderstand", "1")
		injected.SetText("1")
		smuggling := *w.EPR
		smuggling.References = append(slices.Clone(w.EPR.References), injected)
		_, err := mgrSOAP.Invoke(context.Background(), &wsa.EPR{Version: w.EPR.Version, Address: b.URL + "/wsrf/services/" + vwsns.ManagerService},
			"Deploy", mgrDeployBody(&smuggling))
		var fe *client.FaultError
		if !errors.As(err, &fe) || fe.Type != "WorkspaceLockedFault" || !strings.Contains(fe.Description, "faults-a") {
			t.Fatalf("Deploy on B with a smuggled header: %v", err)
		}
		nothingOnB("a smuggled header")
	})

	t.Run("wrong state", func(t *testing.T) {
		// Deployed and shut down on A (from "locked").
		r := a.CLI(t, "pause", w.EPRFile)
		WantFault(t, r, "WorkspaceStateFault", "shutdown", "paused")
		WantWSProps(t, w, "state", "shutdown", "deployment", "deployed")
		if st := DomainState(w.Domain()); st != "shut off" {
			t.Fatalf("domain after a refused pause: %q", st)
		}

		a.MustCLI(t, "start", w.EPRFile)
		r = a.CLI(t, "undeploy", w.EPRFile)
		WantFault(t, r, "WorkspaceStateFault", "running")
		WantWSProps(t, w, "state", "running", "deployment", "deployed", "lockHolder", "faults-a")
		if st := DomainState(w.Domain()); st != "running" {
			t.Fatalf("domain after a refused undeploy: %q", st)
		}
		if !slices.Contains(a.WorkspaceFiles(w.Key), "run.qcow2") {
			t.Fatalf("a refused undeploy touched the workspace's files: %v", a.WorkspaceFiles(w.Key))
		}

		a.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
		a.MustCLI(t, "undeploy", w.EPRFile)
		r = a.CLI(t, "start", w.EPRFile, "--host", a.URL)
		WantFault(t, r, "ResourceUnknownFault", w.Key)
		WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "")
		if DomainDefined(w.Domain()) || a.HasWorkspaceDir(w.Key) {
			t.Fatalf("a refused start defined a domain (%v) or made files (%v)", DomainDefined(w.Domain()), a.WorkspaceFiles(w.Key))
		}
	})

	t.Run("metadata", func(t *testing.T) {
		// An aarch64 workspace needs aarch64 images (the Factory refuses the x86_64
		// test guest's): an empty disk, booted from itself (no x86_64 kernel).
		armDisk := filepath.Join(t.TempDir(), "arm.qcow2")
		if out, err := exec.Command("qemu-img", "create", "-f", "qcow2", armDisk, "64M").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img create: %v: %s", err, out)
		}
		a.MustCLI(t, "image", "import", armDisk, "--name", "arm-disk", "--os", "linux/busybox/1", "--arch", "aarch64")
		for _, tc := range []struct {
			name    string
			replace []string
			mention string
		}{
			{"vmm kvm", []string{`vmm="qemu"`, `vmm="kvm"`}, "@vmm"},
			{"aarch64", []string{`<hw:architecture>x86_64<`, `<hw:architecture>aarch64<`, `<hw:name>guest-disk<`, `<hw:name>arm-disk<`,
				`<sw:kernel>`, `<!--<sw:kernel>`, `</sw:kernel>`, `</sw:kernel>-->`}, "hw:architecture"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ws := CreateWorkspace(t, a, TickerDescription(t, tc.replace...))
				r := a.CLI(t, "deploy", ws.EPRFile, "--host", a.URL)
				WantFault(t, r, "WorkspaceMetadataFault", tc.mention)
				WantWSProps(t, ws, "state", "shutdown", "deployment", "in-repository", "lockHolder", "", "managerReference", "")
				if DomainDefined(ws.Domain()) || a.HasWorkspaceDir(ws.Key) {
					t.Fatalf("a refused deploy defined a domain (%v) or made files (%v)", DomainDefined(ws.Domain()), a.WorkspaceFiles(ws.Key))
				}
				if _, ok := ReadHost(t, a).Workspaces[ws.Key]; ok {
					t.Fatal("the host lists a workspace whose deploy was refused")
				}
				a.MustCLI(t, "destroy", ws.EPRFile)
			})
		}
	})

	t.Run("image integrity", func(t *testing.T) {
		// Damage the repository's stored base image; B has a clean cache, so it must
		// transfer the base and find the damage before defining anything.
		base := filepath.Join(a.Dir, "images", strings.Replace(imgs.Disk, ":", "-", 1))
		data, err := os.ReadFile(base)
		if err != nil {
			t.Fatalf("the repository's base image: %v", err)
		}
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(base, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if len(ReadHost(t, b).Cached) != 0 {
			t.Fatal("B's cache is not clean")
		}
		r := a.CLI(t, "deploy", w.EPRFile, "--host", b.URL, "--state", "running")
		WantFault(t, r, "ImageIntegrityFault", imgs.Disk)
		WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "", "managerReference", "")
		nothingOnB("image integrity")
		if DomainDefined(w.Domain()) {
			t.Fatal("a deploy with a damaged image defined a domain")
		}
		if _, ok := ReadHost(t, b).Cached[imgs.Disk]; ok {
			t.Fatal("B cached the damaged base image")
		}
		ents, _ := os.ReadDir(filepath.Join(b.ManagerDir(), "cache"))
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".part") {
				t.Fatalf("B kept a partial transfer: %s", e.Name())
			}
		}

		// A's cache shares the damaged file's inode (a hard link from the pool): the
		// entry changed since it was checked, so A checks it again and refuses too.
		r = a.CLI(t, "deploy", w.EPRFile, "--host", a.URL, "--state", "running")
		WantFault(t, r, "ImageIntegrityFault", imgs.Disk)
		WantWSProps(t, w, "state", "shutdown", "deployment", "in-repository", "lockHolder", "")
		if DomainDefined(w.Domain()) || a.HasWorkspaceDir(w.Key) {
			t.Fatal("a deploy of a damaged pool image on its own host defined a domain or made files")
		}
		if _, ok := ReadHost(t, a).Cached[imgs.Disk]; ok {
			t.Fatal("A still lists the damaged base image as cached")
		}
	})

	a.MustCLI(t, "destroy", w.EPRFile)
}

// imageRoles lists the roles of the workspace's vw:imageDigest properties.
func imageRoles(t *testing.T, w *MgrWorkspace) []string {
	t.Helper()
	return slices.Sorted(maps.Keys(imageDigests(t, w)))
}

// imageDigests is the workspace's vw:imageDigest properties, digest by role; a role
// published twice fails the test.
func imageDigests(t *testing.T, w *MgrWorkspace) map[string]string {
	t.Helper()
	els, err := mgrSOAP.GetResourceProperty(context.Background(), w.EPR, wsa.QName{Space: vwsns.Workspace, Local: "imageDigest"})
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, e := range els {
		r, d := e.SelectElement("role"), e.SelectElement("digest")
		if r == nil || d == nil {
			t.Fatalf("a vw:imageDigest without role or digest: %v", els)
		}
		role := strings.TrimSpace(r.Text())
		if _, twice := digests[role]; twice {
			t.Fatalf("the workspace publishes two %s digests", role)
		}
		digests[role] = strings.TrimSpace(d.Text())
	}
	return digests
}

// mgrDeployBody is a Deploy request for workspace ws.
func mgrDeployBody(ws *wsa.EPR) *etree.Element {
	body := etree.NewElement("mgr:Deploy")
	body.CreateAttr("xmlns:mgr", vwsns.Manager)
	ws.ChildElement(body, "mgr:WorkspaceReference", "wsa")
	return body
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

// metricValue reads one sample of a server's /metrics (0 when absent).
func metricValue(t *testing.T, s *MgrServer, sample string) float64 {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestManagerRepositoryDown: the Repository goes away under a manager on another
// host. The guests there run on and answer operations addressed to that manager; a
// Deploy that cannot reach the Repository fails saying nothing was changed, and
// leaves no record behind (it used to leave a "staging" workspace the reconciler
// tried to undo for as long as the Repository stayed away). Once the Repository is
// back, it is told what changed meanwhile and deploys work again.
func TestManagerRepositoryDown(t *testing.T) {
	t.Parallel()
	holdGuests(t, 1)
	a := StartMgrServer(t, MgrServerOptions{HostName: "repo-a"})
	b := StartMgrServer(t, MgrServerOptions{HostName: "host-b", Roles: []string{"manager"}, Repository: a.URL})
	ImportGuest(t, a)
	w1, w2 := CreateWorkspace(t, a, TickerDescription(t)), CreateWorkspace(t, a, TickerDescription(t))
	a.MustCLI(t, "deploy", w1.EPRFile, "--host", b.URL)
	WantWSProps(t, w1, "state", "shutdown", "deployment", "deployed", "host", "host-b")

	a.Kill()
	r := b.CLI(t, "deploy", w2.EPRFile, "--host", b.URL)
	WantFault(t, r, "ServiceFault", "cannot reach the repository", "nothing was changed", "retry when the workspace's Repository answers again")
	if _, ok := ReadHost(t, b).Workspaces[w2.Key]; ok || b.HasWorkspaceDir(w2.Key) {
		t.Errorf("the deploy that could not reach the Repository left a record or files on the host")
	}
	// The manager needs the Repository only to be told: a start goes ahead.
	b.MustCLI(t, "start", w1.EPRFile, "--host", b.URL)
	if hw := ReadHost(t, b).Workspaces[w1.Key]; hw.State != "running" {
		t.Errorf("host B says %s is %q after the start, want running", w1.Key, hw.State)
	}

	port := a.URL[strings.LastIndex(a.URL, ":")+1:]
	StartMgrServer(t, MgrServerOptions{Dir: a.Dir, HostName: "repo-a", Args: []string{"--listen", "127.0.0.1:" + port}})
	WantWSProps(t, w1, "state", "running", "deployment", "deployed") // the report B kept retrying
	b.MustCLI(t, "deploy", w2.EPRFile, "--host", b.URL)
	WantWSProps(t, w2, "state", "shutdown", "deployment", "deployed", "host", "host-b")
	b.MustCLI(t, "shutdown", w1.EPRFile, "--mode", "trash")
	b.MustCLI(t, "undeploy", w1.EPRFile)
	b.MustCLI(t, "undeploy", w2.EPRFile)
	WantWSProps(t, w1, "deployment", "in-repository")
}

// TestManagerRepositoryHangs: the Repository accepts connections but answers nothing
// (a stopped or hung server; a frozen proxy here). A manager on another host gives up
// on each call after --repository-timeout instead of holding a Deploy or Undeploy
// for the HTTP client's 30 minutes; once the Repository answers again, the
// reconciler settles what those calls left open.
func TestManagerRepositoryHangs(t *testing.T) {
	t.Parallel()
	proxy := sockproxy.StartTCP(t, "")
	a := StartMgrServer(t, MgrServerOptions{HostName: "repo-a", Args: []string{"--public-url", "http://" + proxy.Path}})
	proxy.SetTarget(strings.TrimPrefix(a.URL, "http://"))
	const timeout = 3 * time.Second
	b := StartMgrServer(t, MgrServerOptions{HostName: "host-b", Roles: []string{"manager"}, Repository: "http://" + proxy.Path, Args: []string{"--repository-timeout", timeout.String()}})
	ImportGuest(t, a)
	w1, w2 := CreateWorkspace(t, a, TickerDescription(t)), CreateWorkspace(t, a, TickerDescription(t))
	a.MustCLI(t, "deploy", w1.EPRFile, "--host", b.URL)
	WantWSProps(t, w1, "state", "shutdown", "deployment", "deployed", "host", "host-b")

	proxy.Freeze()
	bounded := func(args ...string) run {
		t.Helper()
		t0 := time.Now()
		r := b.CLI(t, args...)
		if d := time.Since(t0); d > 4*timeout {
			t.Errorf("%v took %s with --repository-timeout %s", args, d.Round(time.Millisecond), timeout)
		}
		return r
	}
	r := bounded("deploy", w2.EPRFile, "--host", b.URL)
	t.Logf("deploy with the Repository silent: %s", strings.TrimSpace(r.stderr))
	WantFault(t, r, "ServiceFault", "cannot reach the repository to check the workspace out", "did not answer within 3s", "gives the lock back by itself")
	r = bounded("undeploy", w1.EPRFile, "--host", b.URL)
	WantFault(t, r, "ServiceFault", "did not answer within 3s", "the manager retries the hand-back by itself")

	// The Repository answers again, but the requests B gave up on stay held: B's
	// reconciler undoes the deploy (asking for the lock under the same check-out ID
	// and giving it back) and finishes the Undeploy before they arrive.
	proxy.ThawNew()
	for deadline := time.Now().Add(settleTimeout); ; time.Sleep(200 * time.Millisecond) {
		h := ReadHost(t, b)
		_, has1 := h.Workspaces[w1.Key]
		_, has2 := h.Workspaces[w2.Key]
		if !has1 && !has2 && !b.HasWorkspaceDir(w1.Key) && !b.HasWorkspaceDir(w2.Key) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host B still holds records or files: %+v", h.Workspaces)
		}
	}
	// Then the held CheckOut arrives, late: it must lock nothing, since B, which sent
	// it, has forgotten the deploy. Read once the held connections are done, and again
	// a little later.
	checkOuts := strings.Count(a.Logs(), "operation=CheckOut")
	proxy.ReleaseHeld()
	for deadline := time.Now().Add(settleTimeout); strings.Count(a.Logs(), "operation=CheckOut") == checkOuts; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the held CheckOut never reached the Repository")
		}
	}
	for range 2 {
		for _, w := range []*MgrWorkspace{w1, w2} {
			if p := WSProps(t, w, "deployment", "lockHolder"); p["deployment"] != "in-repository" || p["lockHolder"] != "" {
				t.Fatalf("after host B let go of %s the Repository says %v", w.Key, p)
			}
		}
		time.Sleep(time.Second)
	}
	b.MustCLI(t, "deploy", w2.EPRFile, "--host", b.URL)
	WantWSProps(t, w2, "deployment", "deployed", "host", "host-b")
	b.MustCLI(t, "undeploy", w2.EPRFile, "--host", b.URL)
}
