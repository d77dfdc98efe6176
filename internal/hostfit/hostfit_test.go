package hostfit

import (
	"errors"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
)

// host is an x86_64 TCG host with 4 CPUs, 2 GiB free and two networks, one stopped.
func host() Offer {
	return Offer{DomainType: "qemu", Arch: "x86_64", CPUs: 4, FreeMiB: 2048, NetworksKnown: true,
		Networks: []Network{{Name: "default", Active: true}, {Name: "lab", Active: false}}}
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
		{"a bridge NIC is not a libvirt network", vm(nic("bridge", "br0")), host(), "x86_64", 512},
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
	}{
		{"dynamic account", "/vw:virtualWorkspace/vw:category", `deploys vm workspaces, not "dynamic account"`, "",
			vm(func(d *describe.Description) { d.Category = describe.CategoryDynamicAccount })},
		{"kvm on a TCG host", "/vw:virtualWorkspace/vw:category/@vmm", `needs VMM "kvm"; this host offers qemu`, "host of that VMM type",
			vm(func(d *describe.Description) { d.VMM = "kvm" })},
		{"no hardware", "/vw:virtualWorkspace/hw:hardware", "needs its hardware described", "",
			vm(func(d *describe.Description) { d.Hardware = nil })},
		{"another architecture", "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture", "needs architecture aarch64; this host is x86_64", "host of that architecture",
			vm(func(d *describe.Description) { d.Hardware.CPU.Architecture = "aarch64" })},
		{"too many CPUs", "/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count", "asks for 5 CPUs; this host has 4", "fewer CPUs",
			vm(func(d *describe.Description) { d.Hardware.CPU.Count = 5 })},
		{"more memory than free", "/vw:virtualWorkspace/hw:hardware/hw:RAM", "needs at least 4096 MiB; this host has 2048 MiB free", "more free memory",
			vm(func(d *describe.Description) { d.Hardware.Memory.SizeMiB = 4096 })},
		{"a minimum above what is free", "/vw:virtualWorkspace/hw:hardware/hw:RAM", "needs at least 3072 MiB", "lower hw:RAM/hw:minimum",
			vm(func(d *describe.Description) { d.Hardware.Memory = describe.Memory{SizeMiB: 4096, MinMiB: 3072} })},
		{"a network the host lacks", "/vw:virtualWorkspace/net:network/net:nic[1]/net:association/net:name",
			`joins network "elsewhere"; this host's networks are: default, lab (not started)`, `host that has network "elsewhere"`,
			vm(nic("", "elsewhere"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(tc.d, host())
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
