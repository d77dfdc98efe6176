package manager

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/hostfit"
	"github.com/vws-grid/vws/vmm"
)

var (
	descValidatorOnce sync.Once
	descValidator     *describe.Validator
	descValidatorErr  error
)

// describeXML validates a description with the real validator (the schema and its
// prose rules), as the Manager does with a manifest's.
func describeXML(t *testing.T, xml string) *describe.Description {
	t.Helper()
	d, err := describeXMLErr(t, xml)
	if err != nil {
		t.Fatalf("the test's description is invalid: %v\n%s", err, xml)
	}
	return d
}

// describeXMLErr validates xml as the Factory does, returning its refusal.
func describeXMLErr(t *testing.T, xml string) (*describe.Description, error) {
	t.Helper()
	descValidatorOnce.Do(func() { descValidator, descValidatorErr = describe.NewValidator() })
	if descValidatorErr != nil {
		t.Fatal(descValidatorErr)
	}
	return descValidator.Validate([]byte(xml))
}

// vmXML is a vm description; the parts are the category's vmm attribute, the contents
// of hw:hardware after hw:RAM, hw:RAM's contents, and what follows hw:hardware.
type vmXML struct {
	VMM      string // "" → no attribute
	RAM      string // "" → <hw:size>128</hw:size>
	CPU      string // "" → <hw:count>1</hw:count>
	Disks    string
	Network  string // net:network's contents; "" → none
	Software string // sw:software's contents; "" → an image by name
}

func (x vmXML) String() string {
	vmm := ""
	if x.VMM != "" {
		vmm = ` vmm="` + x.VMM + `"`
	}
	ram := x.RAM
	if ram == "" {
		ram = `<hw:size>128</hw:size>`
	}
	cpu := x.CPU
	if cpu == "" {
		cpu = `<hw:count>1</hw:count>`
	}
	net := ""
	if x.Network != "" {
		net = `<net:network>` + x.Network + `</net:network>`
	}
	sw := x.Software
	if sw == "" && !strings.Contains(x.Disks, "<hw:image>") {
		sw = `<sw:image><sw:name>base</sw:name></sw:image>`
	}
	if sw != "" {
		sw = `<sw:software>` + sw + `</sw:software>`
	}
	return `<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace"
  xmlns:hw="http://vws.dev/ns/2026/workspace/hardware"
  xmlns:net="http://vws.dev/ns/2026/workspace/network"
  xmlns:sw="http://vws.dev/ns/2026/workspace/software">
  <vw:category` + vmm + `>vm</vw:category>
  <hw:hardware><hw:RAM>` + ram + `</hw:RAM><hw:CPU>` + cpu + `</hw:CPU>` + x.Disks + `</hw:hardware>` + net + sw + `
</vw:virtualWorkspace>`
}

const (
	rootVDA  = `<hw:disk><hw:target>vda</hw:target><hw:bus>virtio</hw:bus><hw:image><hw:name>base</hw:name></hw:image><hw:boot>true</hw:boot></hw:disk>`
	cdSDA    = `<hw:disk><hw:target>sda</hw:target><hw:bus>sata</hw:bus><hw:device>cdrom</hw:device><hw:readOnly>true</hw:readOnly></hw:disk>`
	cdHDC    = `<hw:disk><hw:target>hdc</hw:target><hw:bus>ide</hw:bus><hw:device>cdrom</hw:device></hw:disk>`
	scratchB = `<hw:disk><hw:target>vdb</hw:target><hw:bus>virtio</hw:bus><hw:size>64</hw:size></hw:disk>`
	kernelSW = `<sw:kernel><sw:image><sw:name>k</sw:name></sw:image><sw:initrd><sw:name>i</sw:name></sw:initrd>%s</sw:kernel><sw:image><sw:name>base</sw:name></sw:image>`
)

func TestBuildSpec(t *testing.T) {
	const key = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
	files := stagedFiles{Disk: "/m/ws/run.qcow2", CIData: "/m/ws/cidata.iso", Console: "/m/ws/console.log",
		Kernel: "/m/cache/kernel", Initrd: "/m/cache/initrd", Dir: "/m/ws"}
	tcg := hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 4096}
	kvm := hostOffer{DomainType: "kvm", Arch: "x86_64", CPUs: 8, FreeMiB: 4096}
	root := vmm.Disk{Path: files.Disk, Format: "qcow2", Target: "vda", Bus: "virtio", Boot: true}
	cd := func(target, bus string) vmm.Disk {
		return vmm.Disk{Path: files.CIData, Format: "raw", Target: target, Bus: bus, Device: "cdrom", ReadOnly: true}
	}
	base := func(mut func(*vmm.Spec)) vmm.Spec {
		s := vmm.Spec{Name: "vws-" + key, UUID: domainUUID(key), Type: "qemu", Arch: "x86_64", MemoryMiB: 128, CPUs: 1,
			ConsoleLog: files.Console, Disks: []vmm.Disk{root, cd("sda", "sata")}}
		if mut != nil {
			mut(&s)
		}
		return s
	}
	cases := []struct {
		name  string
		desc  vmXML
		host  hostOffer
		files *stagedFiles
		want  vmm.Spec
		// refused: the MetadataError's path must contain this.
		refused string
		reason  string
	}{
		{name: "root disk of the description, configuration CD added", desc: vmXML{Disks: rootVDA}, host: tcg, want: base(nil)},
		{name: "no disk described: the root disk is added first", desc: vmXML{}, host: tcg, want: base(nil)},
		{name: "root disk on sda: the added CD takes the next free target",
			desc: vmXML{Disks: `<hw:disk><hw:target>sda</hw:target><hw:bus>sata</hw:bus><hw:image><hw:name>base</hw:name></hw:image></hw:disk>`}, host: tcg,
			want: base(func(s *vmm.Spec) {
				s.Disks = []vmm.Disk{{Path: files.Disk, Format: "qcow2", Target: "sda", Bus: "sata", Boot: true}, cd("sdb", "sata")}
			})},
		{name: "the description's empty CD-ROM carries the configuration CD", desc: vmXML{Disks: rootVDA + cdSDA}, host: tcg, want: base(nil)},
		{name: "an empty IDE CD-ROM, listed before the root disk", desc: vmXML{Disks: cdHDC + rootVDA}, host: tcg,
			want: base(func(s *vmm.Spec) { s.Disks = []vmm.Disk{cd("hdc", "ide"), root} })},
		{name: "only the first empty CD-ROM is used; a second is refused", desc: vmXML{Disks: rootVDA + cdSDA + cdHDC}, host: tcg,
			refused: "hw:disk[3]"},
		{name: "an empty scratch disk: a writable qcow2 of its size in the deployment's directory", desc: vmXML{Disks: rootVDA + scratchB}, host: tcg,
			want: base(func(s *vmm.Spec) {
				s.Disks = []vmm.Disk{root, {Path: "/m/ws/scratch-vdb.qcow2", Format: "qcow2", Target: "vdb", Bus: "virtio", Scratch: true, SizeMiB: 64}, cd("sda", "sata")}
			})},
		// libvirt orders virtio disks by target and the guest names them in that
		// order: the root disk the manager adds behind a scratch disk at vda would be
		// the guest's vdb, and root=/dev/vda would find the empty scratch disk.
		{name: "a scratch disk at vda, the root disk left to the manager, is refused", host: tcg,
			desc:    vmXML{Disks: `<hw:disk><hw:target>vda</hw:target><hw:bus>virtio</hw:bus><hw:size>64</hw:size></hw:disk>`},
			refused: "hw:disk[1]/hw:target", reason: "vda"},
		{name: "a scratch disk at vdb, the root disk left to the manager: the root disk is vda", desc: vmXML{Disks: scratchB}, host: tcg,
			want: base(func(s *vmm.Spec) {
				s.Disks = []vmm.Disk{root, {Path: "/m/ws/scratch-vdb.qcow2", Format: "qcow2", Target: "vdb", Bus: "virtio", Scratch: true, SizeMiB: 64}, cd("sda", "sata")}
			})},
		{name: "a disk of partitions without images is refused", host: tcg,
			desc:    vmXML{Disks: rootVDA + `<hw:disk><hw:target>vdb</hw:target><hw:size>64</hw:size><hw:partition><hw:number>1</hw:number></hw:partition></hw:disk>`},
			refused: "hw:disk[2]", reason: "partitions without images"},
		{name: "a second image-backed disk is refused", host: tcg,
			desc:    vmXML{Disks: rootVDA + `<hw:disk><hw:target>vdb</hw:target><hw:image><hw:name>data</hw:name></hw:image></hw:disk>`},
			refused: "hw:disk[2]"},
		{name: "NICs: given MAC lower-cased, missing MAC derived, kinds kept", host: publishing(tcg, "br0"),
			desc: vmXML{Network: `<net:nic><net:name>eth0</net:name><net:mac>52:54:00:AB:CD:EF</net:mac><net:model>e1000</net:model>` +
				`<net:association><net:name>default</net:name></net:association></net:nic>` +
				`<net:nic><net:name>eth1</net:name><net:association><net:name>br0</net:name><net:kind>bridge</net:kind></net:association></net:nic>` +
				`<net:nic><net:name>eth2</net:name><net:association><net:name>lab</net:name><net:kind>network</net:kind></net:association></net:nic>`},
			want: base(func(s *vmm.Spec) {
				s.NICs = []vmm.NIC{
					{MAC: "52:54:00:ab:cd:ef", Model: "e1000", Kind: "network", Source: "default"},
					{MAC: derivedMAC(key, 1), Kind: "bridge", Source: "br0"},
					{MAC: derivedMAC(key, 2), Kind: "network", Source: "lab"},
				}
			})},
		{name: "kernel command line gets console=ttyS0", host: tcg,
			desc: vmXML{Software: fmt.Sprintf(kernelSW, `<sw:cmdline>panic=-1 quiet</sw:cmdline>`)},
			want: base(func(s *vmm.Spec) {
				s.Kernel, s.Initrd, s.Cmdline = files.Kernel, files.Initrd, "panic=-1 quiet console=ttyS0"
			})},
		{name: "kernel command line without any: console=ttyS0", host: tcg,
			desc: vmXML{Software: fmt.Sprintf(kernelSW, ``)},
			want: base(func(s *vmm.Spec) { s.Kernel, s.Initrd, s.Cmdline = files.Kernel, files.Initrd, "console=ttyS0" })},
		{name: "a console the description chose is kept", host: tcg,
			desc: vmXML{Software: fmt.Sprintf(kernelSW, `<sw:cmdline>console=hvc0 ro</sw:cmdline>`)},
			want: base(func(s *vmm.Spec) { s.Kernel, s.Initrd, s.Cmdline = files.Kernel, files.Initrd, "console=hvc0 ro" })},
		{name: "a kernel not staged (the planning pass) boots from disk", host: tcg,
			desc:  vmXML{Software: fmt.Sprintf(kernelSW, `<sw:cmdline>quiet</sw:cmdline>`)},
			files: &stagedFiles{Disk: files.Disk, CIData: files.CIData, Console: files.Console},
			want:  base(nil)},
		{name: "memory granted as asked", host: tcg, desc: vmXML{RAM: `<hw:size>1024</hw:size><hw:minimum>512</hw:minimum>`},
			want: base(func(s *vmm.Spec) { s.MemoryMiB = 1024 })},
		{name: "memory reduced to what is free, above the minimum", host: hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 700},
			desc: vmXML{RAM: `<hw:size>1024</hw:size><hw:minimum>512</hw:minimum>`},
			want: base(func(s *vmm.Spec) { s.MemoryMiB = 700 })},
		{name: "memory exactly the minimum", host: hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 512},
			desc: vmXML{RAM: `<hw:size>1024</hw:size><hw:minimum>512</hw:minimum>`},
			want: base(func(s *vmm.Spec) { s.MemoryMiB = 512 })},
		{name: "memory refused below the minimum", host: hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 300},
			desc: vmXML{RAM: `<hw:size>1024</hw:size><hw:minimum>512</hw:minimum>`}, refused: "hw:RAM", reason: "at least 512 MiB"},
		{name: "memory refused without a minimum", host: hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 1000},
			desc: vmXML{RAM: `<hw:size>1024</hw:size>`}, refused: "hw:RAM", reason: "1000 MiB free"},
		{name: "vmm kvm refused on a TCG host", host: tcg, desc: vmXML{VMM: "kvm"}, refused: "@vmm", reason: `"kvm"`},
		{name: "vmm xen refused on a KVM host", host: kvm, desc: vmXML{VMM: "xen"}, refused: "@vmm"},
		{name: "vmm qemu runs on a TCG host", host: tcg, desc: vmXML{VMM: "qemu"}, want: base(nil)},
		{name: "vmm kvm runs on a KVM host", host: kvm, desc: vmXML{VMM: "kvm"}, want: base(func(s *vmm.Spec) { s.Type = "kvm" })},
		{name: "vmm qemu also runs on a KVM host", host: kvm, desc: vmXML{VMM: "qemu"}, want: base(func(s *vmm.Spec) { s.Type = "kvm" })},
		{name: "architecture mismatch", host: tcg, desc: vmXML{CPU: `<hw:count>1</hw:count><hw:architecture>aarch64</hw:architecture>`},
			refused: "hw:architecture", reason: "aarch64"},
		{name: "i686 on an x86_64 host", host: tcg, desc: vmXML{CPU: `<hw:count>1</hw:count><hw:architecture>i686</hw:architecture>`},
			want: base(func(s *vmm.Spec) { s.Arch = "i686" })},
		{name: "CPU model passed on", host: tcg, desc: vmXML{CPU: `<hw:count>2</hw:count><hw:model>host-passthrough</hw:model>`},
			want: base(func(s *vmm.Spec) { s.CPUs, s.CPUModel = 2, "host-passthrough" })},
		{name: "too many CPUs", host: tcg, desc: vmXML{CPU: `<hw:count>4</hw:count>`}, refused: "hw:CPU/hw:count", reason: "4 CPUs"},
		{name: "a network the host lacks is refused, naming those it has", host: withNets(tcg, vmm.Network{Name: "default"}, vmm.Network{Name: "lab", Active: true}),
			desc:    vmXML{Network: nicOn("eth0", "default", "") + nicOn("eth1", "grid", "")},
			refused: "net:nic[2]/net:association/net:name", reason: `NIC eth1 joins network "grid"; this host's networks are: default (not started), lab`},
		{name: "a bridge the site publishes", host: publishing(withNets(tcg), "br0"),
			desc: vmXML{Network: nicOn("eth0", "br0", "bridge")},
			want: base(func(s *vmm.Spec) { s.NICs = []vmm.NIC{{MAC: derivedMAC(key, 0), Kind: "bridge", Source: "br0"}} })},
		{name: "a published bridge, the libvirt networks not known", host: publishing(tcg, "br0"),
			desc: vmXML{Network: nicOn("eth0", "br0", "bridge")},
			want: base(func(s *vmm.Spec) { s.NICs = []vmm.NIC{{MAC: derivedMAC(key, 0), Kind: "bridge", Source: "br0"}} })},
		{name: "a bridge the site does not publish is refused", host: withNets(tcg, vmm.Network{Name: "default", Active: true}),
			desc:    vmXML{Network: nicOn("eth0", "default", "") + nicOn("eth1", "br-mgmt", "bridge")},
			refused: "net:nic[2]/net:association/net:name", reason: `NIC eth1 joins host bridge "br-mgmt", which this host does not publish: it publishes no bridge`},
		{name: "an unpublished bridge is refused, the libvirt networks not known", host: publishing(tcg, "br0"),
			desc:    vmXML{Network: nicOn("eth0", "virbr0", "bridge")},
			refused: "net:nic[1]/net:association/net:name", reason: "it publishes only bridges br0"},
		{name: "networks not known (a driver without them): not checked", host: tcg,
			desc: vmXML{Network: nicOn("eth0", "grid", "")},
			want: base(func(s *vmm.Spec) { s.NICs = []vmm.NIC{{MAC: derivedMAC(key, 0), Kind: "network", Source: "grid"}} })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := describeXML(t, tc.desc.String())
			f := files
			if tc.files != nil {
				f = *tc.files
			}
			got, err := buildSpec(key, d, tc.host, f)
			if tc.refused != "" {
				var me *errdefs.MetadataError
				if !errors.As(err, &me) || !errors.Is(err, errdefs.ErrMetadata) {
					t.Fatalf("want a refusal naming %s (a WorkspaceMetadataFault), got %+v, %v", tc.refused, got, err)
				}
				if !strings.Contains(me.Path, tc.refused) || !strings.HasPrefix(me.Path, "/vw:virtualWorkspace/") {
					t.Errorf("refusal names %q, want a path with %q", me.Path, tc.refused)
				}
				if !strings.Contains(err.Error(), tc.reason) {
					t.Errorf("refusal %q does not say %q", err, tc.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("spec:\n got %+v\nwant %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("the spec does not validate: %v", err)
			}
		})
	}
}

func withNets(h hostOffer, nets ...vmm.Network) hostOffer {
	return offerOf(vmm.HostInfo{DomainType: h.DomainType, Arch: h.Arch, CPUs: h.CPUs, FreeMiB: h.FreeMiB, Networks: nets, NetworksKnown: true}, nil)
}

// publishing is h with bridges published, as vws serve --bridge does.
func publishing(h hostOffer, bridges ...string) hostOffer {
	for _, b := range bridges {
		h.Networks = append(h.Networks, hostfit.Network{Name: b, Kind: hostfit.KindBridge, Active: true})
	}
	return h
}

func nicOn(name, network, kind string) string {
	if kind != "" {
		kind = "<net:kind>" + kind + "</net:kind>"
	}
	return "<net:nic><net:name>" + name + "</net:name><net:association><net:name>" + network + "</net:name>" + kind + "</net:association></net:nic>"
}

// TestStartableNetworks: a guest to run now on a network the host has not started is
// refused before its bytes move, with what the administrator must do.
func TestStartableNetworks(t *testing.T) {
	host := withNets(hostOffer{}, vmm.Network{Name: "default"}, vmm.Network{Name: "lab", Active: true})
	ok := vmm.Spec{NICs: []vmm.NIC{{Kind: "network", Source: "lab"}, {Kind: "bridge", Source: "default"}, {Kind: "user"}}}
	if err := startableNetworks(ok, host); err != nil {
		t.Errorf("started network, a bridge and user networking: %v", err)
	}
	err := startableNetworks(vmm.Spec{NICs: []vmm.NIC{{Kind: "network", Source: "default", MAC: "52:54:00:00:00:01"}}}, host)
	if !errors.Is(err, errdefs.ErrHypervisor) || !strings.Contains(err.Error(), `network "default"`) || !strings.Contains(errdefs.Advice(err), "virsh net-start default") {
		t.Errorf("a network not started: %v (advice %q)", err, errdefs.Advice(err))
	}
}

// TestBuildSpecNotVM: a dynamic account is not the Manager's to deploy.
func TestBuildSpecNotVM(t *testing.T) {
	d := describeXML(t, `<vw:virtualWorkspace xmlns:vw="http://vws.dev/ns/2026/workspace"><vw:category>dynamic account</vw:category></vw:virtualWorkspace>`)
	_, err := buildSpec("k", d, hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 1024}, stagedFiles{Disk: "/d", CIData: "/c"})
	var me *errdefs.MetadataError
	if !errors.As(err, &me) || !strings.Contains(me.Path, "vw:category") {
		t.Fatalf("dynamic account: %v", err)
	}
}

func TestDomainIdentity(t *testing.T) {
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	macRE := regexp.MustCompile(`^52:54:00(:[0-9a-f]{2}){3}$`)
	uuids, macs := map[string]string{}, map[string]string{}
	for i := range 200 {
		key := fmt.Sprintf("ws-%03d", i)
		if domainName(key) != "vws-"+key || !strings.HasPrefix(domainName(key), domainPrefix) {
			t.Fatalf("domainName(%q) = %q", key, domainName(key))
		}
		u := domainUUID(key)
		if !uuidRE.MatchString(u) {
			t.Fatalf("domainUUID(%q) = %q is not a canonical name-based UUID", key, u)
		}
		if u != domainUUID(key) {
			t.Fatalf("domainUUID(%q) is not stable", key)
		}
		if prev, dup := uuids[u]; dup {
			t.Fatalf("keys %s and %s share UUID %s", prev, key, u)
		}
		uuids[u] = key
		for n := range 3 {
			m := derivedMAC(key, n)
			if !macRE.MatchString(m) {
				t.Fatalf("derivedMAC(%q, %d) = %q is not in QEMU's local range", key, n, m)
			}
			if m != derivedMAC(key, n) {
				t.Fatalf("derivedMAC(%q, %d) is not stable", key, n)
			}
			if prev, dup := macs[m]; dup {
				t.Fatalf("%s and %s/%d share MAC %s", prev, key, n, m)
			}
			macs[m] = fmt.Sprintf("%s/%d", key, n)
			// What libvirt and vmm accept: a unicast MAC.
			spec := vmm.Spec{Name: domainName(key), UUID: u, MemoryMiB: 16, CPUs: 1, NICs: []vmm.NIC{{MAC: m, Kind: "user"}}}
			if err := spec.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Known values: a change would re-identify every deployed guest (a hot image
	// restores only under the name and UUID it was saved with).
	if got, want := domainUUID("ws-000"), "ea21172d-643f-5878-96de-e69f9c6f5f09"; got != want {
		t.Errorf("domainUUID(ws-000) = %s, was %s", got, want)
	}
	if got, want := derivedMAC("ws-000", 1), "52:54:00:12:74:07"; got != want {
		t.Errorf("derivedMAC(ws-000, 1) = %s, was %s", got, want)
	}
}

// TestRestorableMemory: a serialized guest resumes with the memory it was saved with,
// which must be within its description and free on this host.
func TestRestorableMemory(t *testing.T) {
	desc := describe.Memory{SizeMiB: 512, MinMiB: 256}
	for _, tc := range []struct {
		saved, free int64
		fault       error // nil: restorable
		says        string
	}{
		{512, 4096, nil, ""},
		{300, 300, nil, ""}, // granted less than asked on the host it was saved on
		{4096, 8192, errdefs.ErrImageIntegrity, "a guest of 4096 MiB, outside what its description allows (hw:RAM 512 MiB, at least 256)"},
		{128, 8192, errdefs.ErrImageIntegrity, "outside what its description allows"},
		{512, 400, errdefs.ErrMetadata, "serialized with 512 MiB of RAM, which it resumes with; this host has 400 MiB free"},
	} {
		err := restorableMemory(desc, tc.saved, tc.free)
		switch {
		case tc.fault == nil && err != nil:
			t.Errorf("saved %d, free %d: %v", tc.saved, tc.free, err)
		case tc.fault != nil && (!errors.Is(err, tc.fault) || !strings.Contains(err.Error(), tc.says)):
			t.Errorf("saved %d, free %d: %v, want %v saying %q", tc.saved, tc.free, err, tc.fault, tc.says)
		}
	}
}
