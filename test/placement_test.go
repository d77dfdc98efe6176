package test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// knownHosts is `vws host list` against s, as lines by host name: the hosts that
// announced themselves, not those listed as silent after them.
func knownHosts(t *testing.T, s *MgrServer) map[string]string {
	t.Helper()
	out := s.MustCLI(t, "host", "list").stdout
	known, _, _ := strings.Cut(out, "\n\n")
	hosts := map[string]string{}
	for _, line := range strings.Split(known, "\n")[1:] {
		if f := strings.Fields(line); len(f) > 0 {
			hosts[f[0]] = line
		}
	}
	return hosts
}

// silentHosts is the silent section of `vws host list` against s, as lines by name.
func silentHosts(t *testing.T, s *MgrServer) map[string]string {
	t.Helper()
	out := s.MustCLI(t, "host", "list").stdout
	hosts := map[string]string{}
	_, silent, found := strings.Cut(out, "\nSilent ")
	if !found {
		return hosts
	}
	for _, line := range strings.Split(silent, "\n")[2:] { // after the title and the header
		if f := strings.Fields(line); len(f) > 0 {
			hosts[f[0]] = line
		}
	}
	return hosts
}

// announcingHosts starts host <prefix>A (all roles) and the manager-only host
// <prefix>B serving its Repository, both announcing themselves every 4 s, and
// imports the test guest; bOpts restart B on its directory.
func announcingHosts(t *testing.T, prefix string) (a, b *MgrServer, bOpts MgrServerOptions) {
	t.Helper()
	announce := []string{"--announce-every", "4s"}
	a = StartMgrServer(t, MgrServerOptions{HostName: prefix + "A", Args: announce})
	bOpts = MgrServerOptions{HostName: prefix + "B", Roles: []string{"manager"}, Repository: a.URL, Args: announce}
	b = StartMgrServer(t, bOpts)
	bOpts.Dir = b.Dir
	ImportGuest(t, a)
	return a, b, bOpts
}

// waitHosts waits until `vws host list` shows exactly the hosts ok accepts.
func waitHosts(t *testing.T, s *MgrServer, patience time.Duration, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		hosts := knownHosts(t, s)
		if ok(hosts) {
			return hosts
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, vws host list does not show %s:\n%v", patience, what, hosts)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestPlacement: two managers announce themselves to one Repository; `vws deploy`
// without --host deploys where the workspace's images are already cached, and a host
// that stops announcing itself drops out of the list and of placement.
func TestPlacement(t *testing.T) {
	t.Parallel()
	a := StartMgrServer(t, MgrServerOptions{HostName: "hostA"})
	b := StartMgrServer(t, MgrServerOptions{HostName: "hostB", Roles: []string{"manager"}, Repository: a.URL, Args: []string{"--announce-every", "4s"}})
	ImportGuest(t, a)

	done := Step(t, "both hosts announce themselves at start")
	hosts := waitHosts(t, a, 10*time.Second, "hostA and hostB", func(h map[string]string) bool { return h["hostA"] != "" && h["hostB"] != "" })
	done()
	if !strings.Contains(hosts["hostB"], strings.TrimPrefix(b.URL, "http://")) || !strings.Contains(hosts["hostA"], "qemu/x86_64") {
		t.Fatalf("vws host list:\n%v", hosts)
	}
	// The Factory says what the announced hosts run, not a guess: on TCG hosts no kvm.
	offer := a.MustCLI(t, "wsrf", "get-properties", "-s", a.URL+"/wsrf/services/WorkspaceFactoryService", "fac:VMMTypes", "fac:Architectures").stdout
	wantVMMs := []string{">qemu<"}
	if ReadHost(t, a).DomainType == "kvm" {
		wantVMMs = append(wantVMMs, ">kvm<")
	} else if strings.Contains(offer, ">kvm<") {
		t.Fatalf("the Factory offers kvm on hosts that run TCG:\n%s", offer)
	}
	for _, want := range append(wantVMMs, ">x86_64<", ">i686<") {
		if !strings.Contains(offer, want) {
			t.Fatalf("the Factory's offer lacks %s:\n%s", want, offer)
		}
	}

	// Neither caches the guest yet, both see the same machine's free memory: the
	// tie goes by name, to hostA. Deployed on B by hand, the images stay in B's cache.
	first := CreateWorkspace(t, a, TickerDescription(t))
	done = Step(t, "deploy on B by --host, then undeploy")
	a.MustCLI(t, "deploy", first.EPRFile, "--host", b.URL)
	a.MustCLI(t, "undeploy", first.EPRFile)
	done()
	waitHosts(t, a, 10*time.Second, "hostB caching the guest's three images", func(h map[string]string) bool {
		f := strings.Fields(h["hostB"])
		return len(f) > 6 && f[6] == "3"
	})

	second := CreateWorkspace(t, a, TickerDescription(t))
	// vws place shows the ranking without deploying: B, which caches the images, first.
	ranking := a.MustCLI(t, "place", second.EPRFile).stdout
	if lines := strings.Split(strings.TrimSpace(ranking), "\n"); len(lines) != 3 ||
		!strings.HasPrefix(lines[1], "1     hostB") || !strings.Contains(lines[1], " 0 B ") || !strings.HasPrefix(lines[2], "2     hostA") {
		t.Fatalf("vws place:\n%s", ranking)
	}
	WantWSProps(t, second, "deployment", "in-repository", "lockHolder", "")
	done = Step(t, "deploy without --host: placed on B, which caches its images")
	r := a.MustCLI(t, "deploy", second.EPRFile)
	done()
	if !strings.Contains(r.stdout, "placed on hostB:") || !strings.Contains(r.stdout, "0 B to stage") {
		t.Fatalf("vws deploy without --host:\n%s", r.stdout)
	}
	WantWSProps(t, second, "deployment", "deployed", "host", "hostB")
	a.MustCLI(t, "undeploy", second.EPRFile)
	metrics := string(fetch(t, a.URL+"/metrics")) // placed twice: vws place, then vws deploy
	for _, want := range []string{"vws_repository_known_hosts 2", `vws_repository_placements_total{result="placed"} 2`, `vws_manager_announcements_total{result="ok"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A workspace that fits no host is refused before anything is checked out.
	big := CreateWorkspace(t, a, TickerDescription(t, "<hw:CPU><hw:count>1</hw:count>", "<hw:CPU><hw:count>64</hw:count>"))
	wantUnplaced(t, a.CLI(t, "deploy", big.EPRFile), "hostA: ", "hostB: ", "asks for 64 CPUs")
	if out := a.MustCLI(t, "place", big.EPRFile).stdout; !strings.HasPrefix(out, "Cannot deploy it now:") || strings.Count(out, "asks for 64 CPUs") != 2 {
		t.Fatalf("vws place of a workspace no host fits:\n%s", out)
	}
	WantWSProps(t, big, "deployment", "in-repository", "lockHolder", "")

	// B goes quiet: once its announcement (valid 3 × 4 s) expires, it is no longer
	// listed, the workspace deployed there says since when its host is silent, and
	// the next workspace is placed on A.
	a.MustCLI(t, "deploy", first.EPRFile, "--host", "hostB")
	done = Step(t, "B stops; its announcement expires")
	b.Kill()
	waitHosts(t, a, 20*time.Second, "hostA alone", func(h map[string]string) bool { return h["hostA"] != "" && h["hostB"] == "" })
	done()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(a.MustCLI(t, "status", first.EPRFile).stdout, "hostSilentSince") {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after hostB went silent, its workspace does not say so:\n%s", a.MustCLI(t, "status", first.EPRFile).stdout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f := strings.Fields(silentHosts(t, a)["hostB"]); len(f) != 4 || f[3] != "1" {
		t.Fatalf("vws host list does not list hostB as silent with its one workspace:\n%s", a.MustCLI(t, "host", "list").stdout)
	}
	r = a.MustCLI(t, "deploy", second.EPRFile)
	if !strings.Contains(r.stdout, "placed on hostA:") {
		t.Fatalf("with B gone, vws deploy without --host:\n%s", r.stdout)
	}
	WantWSProps(t, second, "deployment", "deployed", "host", "hostA")
	a.MustCLI(t, "undeploy", second.EPRFile)
}

// TestPlacementFollowsNetworks: a network the administrator defines, then starts, after
// the manager announced its host reaches placement within seconds, not at the next
// periodic announcement (a minute): the manager re-announces when its offer changes.
func TestPlacementFollowsNetworks(t *testing.T) {
	t.Parallel()
	s := StartMgrServer(t, MgrServerOptions{HostName: "net-placer"})
	ImportGuest(t, s)
	waitHosts(t, s, 10*time.Second, "net-placer", func(h map[string]string) bool { return h["net-placer"] != "" })
	b := make([]byte, 3)
	rand.Read(b)
	name := "vwstest-place-" + hex.EncodeToString(b)
	desc := TickerDescription(t, `  <sw:software>`,
		`  <net:network xmlns:net="http://vws.dev/ns/2026/workspace/network"><net:nic><net:name>eth0</net:name>`+
			`<net:association><net:name>`+name+`</net:name></net:association></net:nic></net:network>
  <sw:software>`)
	w := CreateWorkspace(t, s, desc)
	placement := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			out := s.MustCLI(t, "place", w.EPRFile, "--state", "running").stdout
			if strings.Contains(out, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 15 s, vws place does not say %q:\n%s", want, out)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	placement(fmt.Sprintf(`joins network %q; this host's networks are`, name))

	dir := t.TempDir()
	file := filepath.Join(dir, "net.xml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(`<network><name>%s</name><bridge name="vwsbp%s"/></network>`, name, hex.EncodeToString(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	virshNet(t, "net-define", file)
	t.Cleanup(func() {
		exec.Command("virsh", "-c", "qemu:///system", "net-destroy", name).Run()
		exec.Command("virsh", "-c", "qemu:///system", "net-undefine", name).Run()
	})
	done := Step(t, "a network defined: placement knows it is not started")
	placement(fmt.Sprintf(`network %q, which NIC eth0 joins, is defined there but not started`, name))
	done()
	virshNet(t, "net-start", name)
	done = Step(t, "the network started: the host is a candidate")
	placement("1     net-placer")
	done()
}
