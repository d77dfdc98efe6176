package test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/test/guest"
)

// virshNet runs virsh on a network, failing the test on error.
func virshNet(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("virsh", append([]string{"-c", "qemu:///system"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// TestManagerNetworks: a NIC joins the libvirt network its description names. A guest
// on a started network gets the described MAC and reaches the host's bridge; a
// network the host lacks is refused at once naming those it has, nothing staged; one
// defined but not started is refused before any bytes move when the guest is to run
// now, and its Start says what the administrator must do.
func TestManagerNetworks(t *testing.T) {
	t.Parallel()
	guest.Ensure(t)
	b := make([]byte, 3)
	rand.Read(b)
	suffix := hex.EncodeToString(b)
	n, _ := rand.Int(rand.Reader, big.NewInt(250))
	subnet := fmt.Sprintf("10.231.%d", n.Int64()+2)
	on, off, none := "vwstest-on-"+suffix, "vwstest-off-"+suffix, "vwstest-none-"+suffix
	dir := t.TempDir()
	write := func(name, xml string) string {
		p := filepath.Join(dir, name+".xml")
		if err := os.WriteFile(p, []byte(xml), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	virshNet(t, "net-create", write(on, fmt.Sprintf(`<network><name>%s</name><bridge name="vwsbr%s"/><ip address="%s.1" netmask="255.255.255.0"/></network>`, on, suffix, subnet)))
	t.Cleanup(func() { exec.Command("virsh", "-c", "qemu:///system", "net-destroy", on).Run() })
	virshNet(t, "net-define", write(off, fmt.Sprintf(`<network><name>%s</name><bridge name="vwsbo%s"/></network>`, off, suffix)))
	t.Cleanup(func() { exec.Command("virsh", "-c", "qemu:///system", "net-undefine", off).Run() })
	// Started after the networks exist: its manager announces them to the Repository
	// at start, and placement decides on what the host announced.
	s := StartMgrServer(t, MgrServerOptions{HostName: "net-host"})
	ImportGuest(t, s)

	const mac = "52:54:00:5e:0a:17"
	desc := func(network string) string {
		return TickerDescription(t,
			`while :; do echo "tick $i"; i=$((i+1)); sleep 1; done`,
			fmt.Sprintf(`echo "mac $(cat /sys/class/net/eth0/address)"; ip link set eth0 up; ip addr add %s.2/24 dev eth0; if ping -c 3 -W 3 %s.1 >/dev/null; then echo "ping ok"; else echo "ping failed"; fi; while :; do echo "tick $i"; i=$((i+1)); sleep 1; done`, subnet, subnet),
			`  <sw:software>`,
			`  <net:network xmlns:net="http://vws.dev/ns/2026/workspace/network"><net:nic><net:name>eth0</net:name><net:mac>`+mac+`</net:mac>`+
				`<net:association><net:name>`+network+`</net:name></net:association></net:nic></net:network>
  <sw:software>`)
	}
	cached := func() []string {
		ents, _ := os.ReadDir(filepath.Join(s.ManagerDir(), "cache"))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	// The host's properties list its networks, started or not.
	status := s.MustCLI(t, "host", "status").stdout
	for _, want := range []string{on + "  started", off + "  not started (virsh net-start " + off + ")"} {
		if !strings.Contains(status, want) {
			t.Errorf("vws host status does not say %q:\n%s", want, status)
		}
	}

	// A network the host lacks: refused before anything happens, naming those it has;
	// by placement, which finds no host for it, and by the manager named with --host.
	w := CreateWorkspace(t, s, desc(none))
	wantUnplaced(t, s.CLI(t, "deploy", w.EPRFile, "--state", "running"), fmt.Sprintf("joins network %q", none), on, off+" (not started)")
	WantFault(t, s.CLI(t, "deploy", w.EPRFile, "--host", s.URL, "--state", "running"), "WorkspaceMetadataFault",
		"net:nic[1]/net:association/net:name", fmt.Sprintf("joins network %q", none), on, off+" (not started)")
	WantWSProps(t, w, "deployment", "in-repository", "lockHolder", "")
	if c := cached(); len(c) != 0 || DomainDefined(w.Domain()) {
		t.Fatalf("a refused deploy staged %v or defined its domain", c)
	}

	// A network not started: a deploy to run now is refused before any bytes move; a
	// deploy to shut down goes ahead, and its Start says what to do.
	w = CreateWorkspace(t, s, desc(off))
	wantUnplaced(t, s.CLI(t, "deploy", w.EPRFile, "--state", "running"), fmt.Sprintf("network %q", off), "defined there but not started")
	WantFault(t, s.CLI(t, "deploy", w.EPRFile, "--host", s.URL, "--state", "running"), "HypervisorFault",
		fmt.Sprintf("network %q", off), "virsh net-start "+off)
	WantWSProps(t, w, "deployment", "in-repository", "lockHolder", "")
	if c := cached(); len(c) != 0 {
		t.Fatalf("a refused deploy staged %v", c)
	}
	s.MustCLI(t, "deploy", w.EPRFile)
	WantFault(t, s.CLI(t, "start", w.EPRFile), "HypervisorFault", "not active", "virsh net-start "+off)
	WantWSProps(t, w, "state", "shutdown", "deployment", "deployed")
	s.MustCLI(t, "undeploy", w.EPRFile)

	// A started network: the guest has the described MAC and reaches the bridge.
	w = CreateWorkspace(t, s, desc(on))
	s.MustCLI(t, "deploy", w.EPRFile, "--state", "running")
	c := WaitConsole(t, s, w, 120*time.Second, "the network check", func(c string) bool { return strings.Contains(c, "ping ") })
	if !strings.Contains(c, "mac "+mac) || !strings.Contains(c, "ping ok") {
		t.Errorf("the guest on network %s: %s", on, c)
	}
	out, err := exec.Command("virsh", "-c", "qemu:///system", "domiflist", w.Domain()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), on) || !strings.Contains(string(out), mac) {
		t.Errorf("virsh domiflist: %v\n%s", err, out)
	}
	s.MustCLI(t, "shutdown", w.EPRFile, "--mode", "trash")
}

// wantUnplaced fails unless the CLI run was a deploy refused because no host the
// Repository knows fits the workspace, for a reason that mentions each of mentions.
func wantUnplaced(t *testing.T, r run, mentions ...string) {
	t.Helper()
	if r.code != 2 || !strings.Contains(r.stderr, "vws: refused: no host the repository knows can deploy this workspace now") {
		t.Fatalf("want exit 2, refused by placement; got exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, m := range mentions {
		if !strings.Contains(r.stderr, m) {
			t.Fatalf("the refusal does not mention %q: %s", m, r.stderr)
		}
	}
}
