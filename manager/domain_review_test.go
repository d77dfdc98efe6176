package manager

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/vmm"
)

// TestBuildSpecUserNIC: a schema-valid NIC of kind "user" (the schema requires a
// net:association/net:name even for it) deploys, joining no network.
func TestBuildSpecUserNIC(t *testing.T) {
	const key = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
	files := stagedFiles{Disk: "/m/ws/run.qcow2", CIData: "/m/ws/cidata.iso", Console: "/m/ws/console.log"}
	host := hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 4096}
	d := describeXML(t, vmXML{Network: nicOn("eth0", "slirp", "user")}.String())
	spec, err := buildSpec(key, d, host, files)
	if err != nil {
		t.Fatalf("a schema-valid user-mode NIC cannot be deployed: %v", err)
	}
	if spec.NICs[0].Kind != "user" || spec.NICs[0].Source != "" {
		t.Fatalf("NIC = %+v", spec.NICs[0])
	}
}

// TestBuildSpecSchemaValuesTheHostRefuses: every description the schema allows either
// deploys or is refused with a WorkspaceMetadataFault, never a bare invalid-spec
// error: netfront deploys on Xen; the others are refused (and by the Factory already,
// describe.TestRefused).
func TestBuildSpecSchemaValuesTheHostRefuses(t *testing.T) {
	const key = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
	files := stagedFiles{Disk: "/m/ws/run.qcow2", CIData: "/m/ws/cidata.iso", Console: "/m/ws/console.log"}
	xen := hostOffer{DomainType: "xen", Arch: "x86_64", CPUs: 2, FreeMiB: 4096}
	tcg := hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 4096}
	for _, tc := range []struct {
		name string
		host hostOffer
		desc vmXML
	}{
		{"netfront NIC on a Xen host", publishing(xen, "br0"), vmXML{Network: `<net:nic><net:name>eth0</net:name><net:model>netfront</net:model><net:association><net:name>br0</net:name><net:kind>bridge</net:kind></net:association></net:nic>`}},
		{"multicast MAC", tcg, vmXML{Network: `<net:nic><net:name>eth0</net:name><net:mac>01:00:5e:00:00:01</net:mac><net:association><net:name>default</net:name></net:association></net:nic>`}},
		{"the same MAC on two NICs", tcg, vmXML{Network: `<net:nic><net:name>eth0</net:name><net:mac>52:54:00:00:00:01</net:mac><net:association><net:name>default</net:name></net:association></net:nic>` +
			`<net:nic><net:name>eth1</net:name><net:mac>52:54:00:00:00:01</net:mac><net:association><net:name>default</net:name></net:association></net:nic>`}},
		{"empty CD-ROM on a vd target", tcg, vmXML{Disks: rootVDA + `<hw:disk><hw:target>vdc</hw:target><hw:device>cdrom</hw:device></hw:disk>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := describeXMLErr(t, tc.desc.String())
			if err != nil {
				var me *errdefs.MetadataError
				if !errors.As(err, &me) {
					t.Fatalf("refused at validation, but not as metadata: %v", err)
				}
				return
			}
			_, err = buildSpec(key, d, tc.host, files)
			var me *errdefs.MetadataError
			if err != nil && !errors.As(err, &me) {
				t.Fatalf("schema-valid description: neither deployed nor refused as metadata: %v (ErrInvalidSpec=%v)", err, errors.Is(err, vmm.ErrInvalidSpec))
			}
		})
	}
}

// TestBuildSpecNetconsoleIsNotConsole: "netconsole=" (or "vconsole=" etc.) is not a
// console= parameter: the Manager still adds console=ttyS0 to record the guest's
// console.
func TestBuildSpecNetconsoleIsNotConsole(t *testing.T) {
	const key = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
	files := stagedFiles{Disk: "/m/ws/run.qcow2", CIData: "/m/ws/cidata.iso", Console: "/m/ws/console.log",
		Kernel: "/m/cache/kernel", Initrd: "/m/cache/initrd"}
	host := hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 4096}
	d := describeXML(t, vmXML{Software: fmt.Sprintf(kernelSW, `<sw:cmdline>netconsole=6665@10.0.0.1/eth0,6666@10.0.0.2/ quiet</sw:cmdline>`)}.String())
	spec, err := buildSpec(key, d, host, files)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+spec.Cmdline, " console=") {
		t.Fatalf("cmdline %q has no console= parameter: the guest's console never reaches ttyS0", spec.Cmdline)
	}
}
