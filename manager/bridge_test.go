package manager

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/vmm"
)

// defineRecorder is hostInfoHV noting every domain it is asked to define.
type defineRecorder struct {
	hostInfoHV
	defined []vmm.Spec
}

func (h *defineRecorder) Define(_ context.Context, s vmm.Spec) error {
	h.defined = append(h.defined, s)
	return nil
}

// TestDeployRefusesAnUnpublishedBridge: a checked-out workspace whose NIC joins a host
// bridge the site did not publish (--bridge) is refused at the deploy-time check,
// before any byte is staged or any domain defined — whatever the Repository's
// placement decided (an announcement of an older manager lists no bridges, and an
// older Repository does not look at them). A bridge the site publishes deploys.
func TestDeployRefusesAnUnpublishedBridge(t *testing.T) {
	const key = "ws-bridged"
	describeXML(t, vmXML{}.String()) // the validator, for the manager's check of the manifest
	for _, tc := range []struct {
		name          string
		networksKnown bool
	}{
		{"the host's libvirt networks listed", true},
		{"the host's libvirt networks not known", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, chv, _ := crashManager(t, "ws-other", stateShutdown, false)
			info := vmm.HostInfo{DomainType: "qemu", Arch: "x86_64", CPUs: 2, MemoryMiB: 8192, FreeMiB: 4096}
			if tc.networksKnown {
				info.Networks, info.NetworksKnown = []vmm.Network{{Name: "default", Active: true}}, true
			}
			hv := &defineRecorder{hostInfoHV: hostInfoHV{crashHV: chv, info: info}}
			m.hv, m.valid, m.cfg.Bridges = hv, descValidator, []string{"br-grid"}
			m.repo = &repoClient{soap: client.New(http.DefaultClient), http: http.DefaultClient, timeout: time.Second}
			for _, bridge := range []string{"br-mgmt", "virbr0"} {
				doc := etree.NewDocument()
				if err := doc.ReadFromString(vmXML{Network: nicOn("eth0", bridge, "bridge")}.String()); err != nil {
					t.Fatal(err)
				}
				rec := &record{Key: key, Phase: phaseStaging, State: stateShutdown}
				// Nothing to fetch it from: a deploy let through fails staging, not the check.
				man := &manifest{Key: key, Description: doc.Root(), State: stateShutdown,
					Images: []manifestImage{{Role: "overlay", Digest: mfOverlay, Backing: mfBase, Format: "qcow2", Size: 1, Location: "http://127.0.0.1:1/overlay"}}}
				_, err := m.stageAndDefine(context.Background(), rec, man, info, stateRunning)
				var me *errdefs.MetadataError
				if !errors.As(err, &me) || me.Path != "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name" ||
					!strings.Contains(err.Error(), `joins host bridge "`+bridge+`", which this host does not publish: it publishes only bridges br-grid`) {
					t.Fatalf("bridge %s: %v; want a WorkspaceMetadataFault at the NIC's association naming the published bridges", bridge, err)
				}
				if len(hv.defined) != 0 {
					t.Fatalf("bridge %s: a domain was defined: %+v", bridge, hv.defined)
				}
				if _, err := os.Stat(m.workspaceDir(key)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("bridge %s: the deploy staged files: %v", bridge, err)
				}
				if len(m.memory.booting) != 0 {
					t.Fatalf("bridge %s: memory still held for the refused guest: %v", bridge, m.memory.booting)
				}
			}
			d := describeXML(t, vmXML{Network: nicOn("eth0", "br-grid", "bridge")}.String())
			spec, err := buildSpec(key, d, m.offer(info), stagedFiles{Disk: "/d", CIData: "/c"})
			if err != nil || len(spec.NICs) != 1 || spec.NICs[0].Kind != "bridge" || spec.NICs[0].Source != "br-grid" {
				t.Fatalf("the published bridge: %+v, %v", spec.NICs, err)
			}
		})
	}
}

// TestOfferListsPublishedBridges: the announcement a Repository places by, and the
// host's mgr:Networks property, list the published bridges with Kind bridge (absent
// for a libvirt network, as older peers read it), also when the libvirt networks
// could not be listed — said then, so that no reader takes them for none.
func TestOfferListsPublishedBridges(t *testing.T) {
	type listed struct{ name, kind string }
	read := func(nets *etree.Element) (got []listed, attr string) {
		if nets == nil {
			return nil, "no Networks"
		}
		for _, n := range nets.SelectElements("Network") {
			kind := ""
			if k := n.SelectElement("Kind"); k != nil {
				kind = k.Text()
			}
			got = append(got, listed{n.SelectElement("Name").Text(), kind})
		}
		return got, nets.SelectAttrValue("libvirtNetworksUnknown", "")
	}
	for _, tc := range []struct {
		name          string
		networksKnown bool
		bridges       []string
		want          []listed
		attr          string
	}{
		{"networks and bridges", true, []string{"br1", "br0", "br1"}, []listed{{"default", ""}, {"br0", "bridge"}, {"br1", "bridge"}}, ""},
		{"bridges, networks not known", false, []string{"br0"}, []listed{{"br0", "bridge"}}, "true"},
		{"nothing known, nothing published", false, nil, nil, "no Networks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, chv, _ := crashManager(t, "ws-other", stateShutdown, false)
			info := vmm.HostInfo{DomainType: "qemu", Arch: "x86_64", CPUs: 2, MemoryMiB: 8192, FreeMiB: 4096}
			if tc.networksKnown {
				info.Networks, info.NetworksKnown = []vmm.Network{{Name: "default", Active: true}}, true
			}
			m.hv = hostInfoHV{crashHV: chv, info: info}
			bridges, err := publishedBridges(tc.bridges)
			if err != nil {
				t.Fatal(err)
			}
			m.cfg.Bridges = bridges
			self := &wsa.EPR{Version: wsa.V200508, Address: "http://h:8080/wsrf/services/WorkspaceManagerService"}
			body, _, err := m.announcement(context.Background(), self)
			if err != nil {
				t.Fatal(err)
			}
			got, attr := read(body.FindElement("Host/Networks"))
			if !slices.Equal(got, tc.want) || attr != tc.attr {
				t.Errorf("announced %v (%s), want %v (%s)", got, attr, tc.want, tc.attr)
			}
			props, err := m.hostProperties(context.Background(), dialect.WSRF12)
			if err != nil {
				t.Fatal(err)
			}
			var nets *etree.Element
			for _, p := range props {
				if p.Tag == "Networks" && p.NamespaceURI() == vwsns.Manager {
					nets = p
				}
			}
			if got, attr := read(nets); !slices.Equal(got, tc.want) || attr != tc.attr {
				t.Errorf("mgr:Networks %v (%s), want %v (%s)", got, attr, tc.want, tc.attr)
			}
		})
	}
}

// TestNewRefusesABridgeNameNoInterfaceHas: a published bridge is a Linux interface
// name; another is refused at start rather than published to no avail, or as a path.
func TestNewRefusesABridgeNameNoInterfaceHas(t *testing.T) {
	for _, bad := range []string{"../br0", "a-bridge-name-too-long", ""} {
		_, err := New(Config{Dir: t.TempDir(), Host: "h", Repositories: []string{"http://repo.example.org:8080"}, Bridges: []string{bad}}, hostInfoHV{}, descValidator)
		if err == nil || !strings.Contains(err.Error(), "not a network interface name") {
			t.Errorf("bridge %q: %v", bad, err)
		}
	}
}

// TestStartRefusesAWithdrawnBridge: a workspace deployed on a bridge this host no
// longer publishes (deployed before bridges had to be published, or withdrawn since)
// is not booted onto it; published again, it starts.
func TestStartRefusesAWithdrawnBridge(t *testing.T) {
	const key = "ws-withdrawn"
	m, hv, rec := crashManager(t, key, stateShutdown, false)
	rec.Spec.NICs = []vmm.NIC{{MAC: "52:54:00:00:00:01", Kind: "network", Source: "default"}, {MAC: "52:54:00:00:00:02", Kind: "bridge", Source: "br-old"}}
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	_, err := m.Start(context.Background(), workspaceEPR(rec))
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || !strings.HasSuffix(me.Path, "net:nic[2]/net:association/net:name") || !strings.Contains(err.Error(), `host bridge "br-old", which this host no longer publishes`) {
		t.Fatalf("Start on a withdrawn bridge: %v", err)
	}
	if hv.dom.State != vmm.StateShutOff {
		t.Fatalf("the guest was booted: %v", hv.dom.State)
	}
	m.cfg.Bridges = []string{"br-old"}
	if res, err := m.Start(context.Background(), workspaceEPR(rec)); err != nil || res.State != stateRunning {
		t.Fatalf("Start on a published bridge: %+v, %v", res, err)
	}
}
