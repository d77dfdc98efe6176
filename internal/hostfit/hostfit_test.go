package hostfit

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
)

// host is an x86_64 TCG host with 4 CPUs, 2 GiB free and two networks, one stopped;
// its site publishes no bridge.
func host() Offer {
	return Offer{DomainType: "qemu", Arch: "x86_64", CPUs: 4, FreeMiB: 2048, NetworksKnown: true,
		Networks: []Network{{Name: "default", Active: true}, {Name: "lab", Active: false}}}
}

// bridged is host with bridges published, its libvirt networks known or not.
func bridged(networksKnown bool, bridges ...string) Offer {
	o := host()
	o.NetworksKnown = networksKnown
	if !networksKnown {
		o.Networks = nil
	}
	for _, b := range bridges {
		o.Networks = append(o.Networks, Network{Name: b, Kind: KindBridge, Active: true})
	}
	return o
}

// vm is a 1-CPU, 512 MiB VM description changed by each of edits.
func vm(edits ...func(*describe.Description)) *describe.Description {
	d := &describe.Description{Category: describe.CategoryVM,
		Hardware: &describe.Hardware{Memory: describe.Memory{SizeMiB: 512}, CPU: describe.CPU{Count: 1}}}
	for _, e := range edits {
		e(d)
	}
	return d
}

func nic(kind, network string) func(*describe.Description) {
	return func(d *describe.Description) {
		d.Network = &describe.Network{NICs: []describe.NIC{{Name: "eth0", Network: network, NetworkKind: kind}}}
	}
}

func TestCheckFits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		d         *describe.Description
		o         Offer
		arch      string
		memoryMiB int
	}{
		{"the size asked for, on the host's architecture", vm(), host(), "x86_64", 512},
		{"i686 on x86_64", vm(func(d *describe.Description) { d.Hardware.CPU.Architecture = "i686" }), host(), "i686", 512},
		{"qemu on a kvm host", vm(func(d *describe.Description) { d.VMM = "qemu" }), func() Offer { o := host(); o.DomainType = "kvm"; return o }(), "x86_64", 512},
		{"every CPU", vm(func(d *describe.Description) { d.Hardware.CPU.Count = 4 }), host(), "x86_64", 512},
		{"less than asked, down to the minimum: all that is free", vm(func(d *describe.Description) { d.Hardware.Memory = describe.Memory{SizeMiB: 4096, MinMiB: 1024} }), host(), "x86_64", 2048},
		{"a stopped network still fits (starting is Deploy's and placement's concern)", vm(nic("network", "lab")), host(), "x86_64", 512},
		{"a bridge the host publishes", vm(nic("bridge", "br-grid")), bridged(true, "br0", "br-grid"), "x86_64", 512},
		{"a published bridge, the libvirt networks unknown", vm(nic("bridge", "br0")), bridged(false, "br0"), "x86_64", 512},
		{"user-mode networking joins nothing of the host's", vm(nic("user", "slirp")), host(), "x86_64", 512},
		{"user-mode networking, nothing published, networks unknown", vm(nic("user", "slirp")), bridged(false), "x86_64", 512},
		{"an xvd target on a xen host", vm(func(d *describe.Description) {
			d.Hardware.Disks = []describe.Disk{{Target: "xvda", Image: &describe.Image{Name: "base"}}}
		}), func() Offer { o := host(); o.DomainType = "xen"; return o }(), "x86_64", 512},
		{"networks unknown: not checked", vm(nic("network", "elsewhere")), func() Offer { o := host(); o.NetworksKnown = false; return o }(), "x86_64", 512},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fit, err := Check(tc.d, tc.o)
			if err != nil || fit.Arch != tc.arch || fit.MemoryMiB != tc.memoryMiB {
				t.Fatalf("Check: %+v, %v; want arch %s, %d MiB", fit, err, tc.arch, tc.memoryMiB)
			}
		})
	}
}

func TestCheckRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, path, says, advice string
		d                        *describe.Description
		o                        *Offer // nil: host()
	}{
		{"dynamic account", "/vw:virtualWorkspace/vw:category", `deploys vm workspaces, not "dynamic account"`, "",
			vm(func(d *describe.Description) { d.Category = describe.CategoryDynamicAccount }), nil},
		{"kvm on a TCG host", "/vw:virtualWorkspace/vw:category/@vmm", `needs VMM "kvm"; this host offers qemu`, "host of that VMM type",
			vm(func(d *describe.Description) { d.VMM = "kvm" }), nil},
		{"no hardware", "/vw:virtualWorkspace/hw:hardware", "needs its hardware described", "",
			vm(func(d *describe.Description) { d.Hardware = nil }), nil},
		{"another architecture", "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture", "needs architecture aarch64; this host is x86_64", "host of that architecture",
			vm(func(d *describe.Description) { d.Hardware.CPU.Architecture = "aarch64" }), nil},
		{"too many CPUs", "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count", "asks for 5 CPUs; this host has 4", "fewer CPUs",
			vm(func(d *describe.Description) { d.Hardware.CPU.Count = 5 }), nil},
		// A host of 256 CPUs or more can still not give an x86 qemu/kvm guest all 256.
		{"256 CPUs on an x86 qemu host", "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count", "asks for 256 CPUs; an x86 qemu guest (machine pc) has at most 255", "fewer CPUs",
			vm(func(d *describe.Description) { d.Hardware.CPU.Count = 256 }), &Offer{DomainType: "qemu", Arch: "x86_64", CPUs: 512, FreeMiB: 2048}},
		{"more memory than free", "/vw:virtualWorkspace/hw:hardware/hw:RAM", "needs at least 4096 MiB; this host has 2048 MiB free", "more free memory",
			vm(func(d *describe.Description) { d.Hardware.Memory.SizeMiB = 4096 }), nil},
		{"a minimum above what is free", "/vw:virtualWorkspace/hw:hardware/hw:RAM", "needs at least 3072 MiB", "lower hw:RAM/hw:minimum",
			vm(func(d *describe.Description) { d.Hardware.Memory = describe.Memory{SizeMiB: 4096, MinMiB: 3072} }), nil},
		{"a network the host lacks", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name",
			`joins network "elsewhere"; this host's networks are: default, lab (not started)`, `host that has network "elsewhere"`,
			vm(nic("", "elsewhere")), nil},
		// A bridge no one published is the hole this closes: a guest on the host's
		// management bridge, or behind another network's filtering.
		{"a bridge on a host that publishes none", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name",
			`NIC eth0 joins host bridge "br-mgmt", which this host does not publish: it publishes no bridge`, "ask the site's administrators to publish bridge",
			vm(nic("bridge", "br-mgmt")), nil},
		{"a bridge the host does not publish", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name",
			`joins host bridge "virbr0", which this host does not publish: it publishes only bridges br0, br-grid`, "net:kind network",
			vm(nic("bridge", "virbr0")), ptr(bridged(true, "br0", "br-grid"))},
		{"a bridge named like a libvirt network of the host", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name",
			`joins host bridge "default"`, "",
			vm(nic("bridge", "default")), nil},
		{"an unpublished bridge, the libvirt networks unknown", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name",
			`joins host bridge "br1", which this host does not publish: it publishes only bridges br0`, "",
			vm(nic("bridge", "br1")), ptr(bridged(false, "br0"))},
		{"a bridge, nothing known or published", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name",
			`publishes no bridge`, "",
			vm(nic("bridge", "br0")), ptr(bridged(false))},
		{"a kind no manager knows", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:kind",
			`kind "direct"`, "kind network, bridge or user",
			vm(nic("direct", "eth0")), nil},
		// The manager's vmm.Spec refuses these on a QEMU/KVM domain; placement must
		// not choose such a host.
		{"an xvd target on a qemu host", "/vw:virtualWorkspace/hw:hardware/hw:disk[1]/hw:target",
			"xen (target xvda) is a bus only a xen domain has, not a qemu one", "host of domain type xen",
			vm(func(d *describe.Description) {
				d.Hardware.Disks = []describe.Disk{{Target: "xvda", Image: &describe.Image{Name: "base"}}}
			}), nil},
		{"bus xen on a kvm host", "/vw:virtualWorkspace/hw:hardware/hw:disk[2]/hw:bus",
			"xen (target vdb) is a bus only a xen domain has, not a kvm one", "use virtio",
			vm(func(d *describe.Description) {
				d.Hardware.Disks = []describe.Disk{{Target: "vda", Image: &describe.Image{Name: "base"}}, {Target: "vdb", Bus: "xen", SizeMiB: 64}}
			}), ptr(func() Offer { o := host(); o.DomainType = "kvm"; return o }())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := host()
			if tc.o != nil {
				o = *tc.o
			}
			_, err := Check(tc.d, o)
			var me *errdefs.MetadataError
			if !errors.As(err, &me) || me.Path != tc.path || !strings.Contains(me.Reason, tc.says) {
				t.Fatalf("Check: %v; want a metadata error at %s saying %q", err, tc.path, tc.says)
			}
			if tc.advice != "" && !strings.Contains(errdefs.Advice(err), tc.advice) {
				t.Fatalf("advice %q does not say %q", errdefs.Advice(err), tc.advice)
			}
		})
	}
}

func TestNetworkNames(t *testing.T) {
	if got := (Offer{}).NetworkNames(); got != "none" {
		t.Errorf("no networks: %q", got)
	}
	if got := host().NetworkNames(); got != "default, lab (not started)" {
		t.Errorf("two networks: %q", got)
	}
}

func ptr[T any](v T) *T { return &v }

// TestNetworkNamesLeaveOutBridges: a refusal of a libvirt network names the host's
// networks, not the bridges it publishes, and the other way round.
func TestNetworkNamesLeaveOutBridges(t *testing.T) {
	o := bridged(true, "br0")
	if got := o.NetworkNames(); got != "default, lab (not started)" {
		t.Errorf("networks: %q", got)
	}
	if got := o.Bridges(); len(got) != 1 || got[0] != "br0" {
		t.Errorf("bridges: %q", got)
	}
	if _, ok := o.Network("br0"); ok {
		t.Error("a published bridge passes for a libvirt network")
	}
	if o.PublishesBridge("default") {
		t.Error("a libvirt network passes for a published bridge")
	}
}

func TestCheckBridgeName(t *testing.T) {
	for _, ok := range []string{"br0", "virbr1", "br-grid.10", "a", "fifteen_chars_x"} {
		if err := CheckBridgeName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "sixteen_chars_xx", "../br0", "br/0", "-br", ".", "br 0", "bré"} {
		if err := CheckBridgeName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

var (
	imageDisk   = describe.Disk{Target: "vda", Image: &describe.Image{Name: "base"}, Boot: true}
	scratchDisk = describe.Disk{Target: "vdb", SizeMiB: 4096}
	// partitioned is samples/full-vm.xml's second disk: partitions, no images.
	partitioned = describe.Disk{Target: "vdb", SizeMiB: 4096, Partitions: []describe.Partition{
		{Number: 1, Label: "scratch", MountPoint: "/scratch", Filesystem: "ext4", SizeMiB: 3072}, {Number: 2, Filesystem: "swap", SizeMiB: 1024}}}
)

// TestDisksTakeScratchDisks: a disk with a size and neither image nor partitions is an
// empty scratch disk, which managers create; a disk of partitions without images is
// still refused, saying partitions need images and that a blank disk is created
// empty; a scratch disk that cannot be one is refused naming the element.
func TestDisksTakeScratchDisks(t *testing.T) {
	cd := describe.Disk{Target: "sda", Device: "cdrom"}
	for _, disks := range [][]describe.Disk{
		{imageDisk, scratchDisk},
		{scratchDisk, imageDisk, cd},
		{scratchDisk}, // the manager adds the root disk
		{imageDisk, scratchDisk, {Target: "vdc", SizeMiB: MaxScratchMiB}, {Target: "sdb", Bus: "sata", SizeMiB: 1}},
	} {
		root, err := Disks(disks)
		if err != nil {
			t.Errorf("%+v: %v", disks, err)
			continue
		}
		if want := slicesIndexRoot(disks); root != want {
			t.Errorf("%+v: root %d, want %d", disks, root, want)
		}
		if _, err := Check(vm(func(d *describe.Description) { d.Hardware.Disks = disks }), host()); err != nil {
			t.Errorf("Check (placement's, the manager's) of %+v: %v", disks, err)
		}
	}
	if !IsScratch(scratchDisk) || IsScratch(partitioned) || IsScratch(imageDisk) || IsScratch(describe.Disk{Target: "sdb", Device: "cdrom", SizeMiB: 1}) {
		t.Error("IsScratch takes the wrong disks")
	}
	for _, c := range []struct {
		name         string
		disk         describe.Disk
		path, advice string
	}{
		{"partitions without images", partitioned, "hw:disk[2]", "partitions need images"},
		{"a size beyond the schema's bound", describe.Disk{Target: "vdb", SizeMiB: MaxScratchMiB + 1}, "hw:disk[2]/hw:size", "between 1 and"},
		{"a negative size", describe.Disk{Target: "vdb", SizeMiB: -1}, "hw:disk[2]/hw:size", "between 1 and"},
		{"read-only", describe.Disk{Target: "vdb", SizeMiB: 64, ReadOnly: true}, "hw:disk[2]/hw:readOnly", "leave hw:readOnly out"},
		{"marked to boot", describe.Disk{Target: "vdb", SizeMiB: 64, Boot: true}, "hw:disk[2]/hw:boot", "image-backed disk"},
		{"no size at all", describe.Disk{Target: "vdb"}, "hw:disk[2]", "hw:size"},
		{"partition images", describe.Disk{Target: "vdb", Partitions: []describe.Partition{{Number: 1, Image: &describe.Image{Name: "p1"}}}}, "hw:disk[2]", "into the base image"},
	} {
		for _, check := range []func([]describe.Disk) error{
			func(d []describe.Disk) error { _, err := Disks(d); return err },
			func(d []describe.Disk) error {
				_, err := Check(vm(func(desc *describe.Description) { desc.Hardware.Disks = d }), host())
				return err
			},
		} {
			err := check([]describe.Disk{imageDisk, c.disk})
			var me *errdefs.MetadataError
			if !errors.As(err, &me) || !strings.HasSuffix(me.Path, c.path) || !strings.Contains(errdefs.Advice(err), c.advice) {
				t.Errorf("%s: %v (advice %q); want a metadata fault at %s advising %q", c.name, err, errdefs.Advice(err), c.path, c.advice)
			}
		}
	}
	many := []describe.Disk{imageDisk}
	for i := range MaxScratchDisks + 1 {
		many = append(many, describe.Disk{Target: fmt.Sprintf("vd%c", 'b'+i), SizeMiB: 64})
	}
	if _, err := Disks(many[:MaxScratchDisks+1]); err != nil {
		t.Errorf("%d scratch disks: %v", MaxScratchDisks, err)
	}
	var me *errdefs.MetadataError
	if _, err := Disks(many); !errors.As(err, &me) || !strings.HasSuffix(me.Path, fmt.Sprintf("hw:disk[%d]", MaxScratchDisks+2)) {
		t.Errorf("%d scratch disks: %v; want a metadata fault at the one too many", MaxScratchDisks+1, err)
	}
	if _, err := Disks([]describe.Disk{imageDisk, partitioned}); err == nil || !strings.Contains(errdefs.Advice(err), "blank disk with hw:size and no partitions") {
		t.Errorf("the partitioned disk's advice does not say a blank disk is created empty: %q", errdefs.Advice(err))
	}
}

// slicesIndexRoot is the image-backed disk's index, -1 for none.
func slicesIndexRoot(disks []describe.Disk) int {
	for i, d := range disks {
		if d.Image != nil {
			return i
		}
	}
	return -1
}

// TestCheckHostOfUndefinedArchitecture: a description that names no architecture
// takes the host's; on a host whose architecture no manager runs guests of (a ppc64le
// machine running a manager), the refusal is the host's, not a need the description
// does not have, and says which hosts would do.
func TestCheckHostOfUndefinedArchitecture(t *testing.T) {
	o := host()
	o.Arch = "ppc64le"
	_, err := Check(vm(), o)
	var me *errdefs.MetadataError
	if !errors.As(err, &me) {
		t.Fatalf("Check: %v; want a metadata error", err)
	}
	if strings.Contains(me.Reason, "workspace needs architecture ppc64le") || !strings.Contains(me.Reason, "this host is ppc64le") {
		t.Errorf("reason %q blames the description for the host's architecture", me.Reason)
	}
	if adv := errdefs.Advice(err); !strings.Contains(adv, "deploy it on") {
		t.Errorf("advice %q does not say to deploy it on another host", adv)
	}
	// A description that does name one is still refused for it.
	_, err = Check(vm(func(d *describe.Description) { d.Hardware.CPU.Architecture = "x86_64" }), o)
	if !errors.As(err, &me) || !strings.Contains(me.Reason, "needs architecture x86_64; this host is ppc64le") {
		t.Errorf("x86_64 on ppc64le: %v", err)
	}
}

// TestDisksRefuseRootDiskSettings: the root disk is the workspace's overlay on its base
// image, of the image's size, writable, unpartitioned by the manager; a size, read-only
// flag or partitions described on it would be dropped at deploy, so they are refused,
// by Disks (Create's check) and Check (placement's and Deploy's), naming the element.
func TestDisksRefuseRootDiskSettings(t *testing.T) {
	for _, c := range []struct {
		name         string
		edit         func(*describe.Disk)
		path, advice string
	}{
		{"a size", func(d *describe.Disk) { d.SizeMiB = 20480 }, "hw:disk[1]/hw:size", "scratch disk"},
		{"read-only", func(d *describe.Disk) { d.ReadOnly = true }, "hw:disk[1]/hw:readOnly", "leave hw:readOnly out"},
		{"partitions", func(d *describe.Disk) {
			d.Partitions = []describe.Partition{{Number: 1, MountPoint: "/", Filesystem: "ext4"}}
		}, "hw:disk[1]/hw:partition[1]", "partitioned base image"},
	} {
		root := imageDisk
		c.edit(&root)
		for _, check := range []func([]describe.Disk) error{
			func(d []describe.Disk) error { _, err := Disks(d); return err },
			func(d []describe.Disk) error {
				_, err := Check(vm(func(desc *describe.Description) { desc.Hardware.Disks = d }), host())
				return err
			},
		} {
			err := check([]describe.Disk{root, scratchDisk})
			var me *errdefs.MetadataError
			if !errors.As(err, &me) || !strings.HasSuffix(me.Path, c.path) || !strings.Contains(errdefs.Advice(err), c.advice) {
				t.Errorf("%s on the root disk: %v (advice %q); want a metadata fault at %s advising %q", c.name, err, errdefs.Advice(err), c.path, c.advice)
			}
		}
	}
}

// TestAddressingRefusesWhatIsIgnored: a manager hands the guest only a host name (the
// first NIC's net:hostname); a static address, prefix length, gateway, name servers,
// method none or a second host name would be silently not applied, so Addressing
// (Create's check) and Check (placement's and Deploy's) refuse them, naming the element.
func TestAddressingRefusesWhatIsIgnored(t *testing.T) {
	withIP := func(ips ...*describe.IPConfig) *describe.Network {
		n := &describe.Network{}
		for i, ip := range ips {
			n.NICs = append(n.NICs, describe.NIC{Name: fmt.Sprintf("eth%d", i), Network: "default", NetworkKind: KindNetwork, IP: ip})
		}
		return n
	}
	for _, n := range []*describe.Network{
		nil,
		withIP(nil),
		withIP(&describe.IPConfig{Method: "dhcp"}),
		withIP(&describe.IPConfig{Method: "dhcp", Hostname: "ws.example.org"}, nil),
		withIP(&describe.IPConfig{Method: "dhcp", Hostname: "ws.example.org"}, &describe.IPConfig{Method: "dhcp", Hostname: "ws.example.org"}),
	} {
		if err := Addressing(n); err != nil {
			t.Errorf("%+v: %v", n, err)
		}
		if _, err := Check(vm(func(d *describe.Description) { d.Network = n }), host()); err != nil {
			t.Errorf("Check of %+v: %v", n, err)
		}
	}
	const ip = "/vw:virtualWorkspace/net:network/net:nic[2]/net:ip/"
	for _, c := range []struct {
		name         string
		ip           describe.IPConfig
		path, advice string
	}{
		{"a static address", describe.IPConfig{Method: "static", Address: "10.20.0.17", PrefixLength: ptr(24)}, ip + "net:method", "net:method dhcp"},
		{"method none", describe.IPConfig{Method: "none"}, ip + "net:method", "net:method dhcp"},
		{"an address with dhcp", describe.IPConfig{Method: "dhcp", Address: "10.20.0.17"}, ip + "net:address", "DHCP server"},
		{"a prefix length", describe.IPConfig{Method: "dhcp", PrefixLength: ptr(24)}, ip + "net:prefixLength", "leave net:prefixLength out"},
		{"a gateway", describe.IPConfig{Method: "dhcp", Gateway: "10.20.0.1"}, ip + "net:gateway", "leave net:gateway out"},
		{"a name server", describe.IPConfig{Method: "dhcp", Nameservers: []string{"10.20.0.2"}}, ip + "net:nameserver[1]", "leave net:nameserver out"},
		{"a second host name", describe.IPConfig{Method: "dhcp", Hostname: "other.example.org"}, ip + "net:hostname", "the first NIC's"},
	} {
		n := withIP(&describe.IPConfig{Method: "dhcp", Hostname: "ws.example.org"}, &c.ip)
		for _, err := range []error{
			Addressing(n),
			func() error { _, err := Check(vm(func(d *describe.Description) { d.Network = n }), host()); return err }(),
		} {
			var me *errdefs.MetadataError
			if !errors.As(err, &me) || me.Path != c.path || !strings.Contains(me.Reason, "NIC eth1") || !strings.Contains(errdefs.Advice(err), c.advice) {
				t.Errorf("%s: %v (advice %q); want a metadata fault at %s advising %q", c.name, err, errdefs.Advice(err), c.path, c.advice)
			}
		}
	}
}
