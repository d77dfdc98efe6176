package vmm

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenSpecs are the specs whose domain XML is kept in testdata/<name>.xml.
var goldenSpecs = map[string]Spec{
	"qemu-kernel-boot": {
		Name: "vws-ws-0001", UUID: "6f1c2a3e-8d4b-4c5a-9e7f-0a1b2c3d4e5f",
		Type: "qemu", MemoryMiB: 128, CPUs: 1, CPUModel: "host-passthrough",
		Kernel:  "/var/lib/vws/images/vmlinuz-6.1.0-28-amd64",
		Initrd:  "/var/lib/vws/images/initrd.img",
		Cmdline: "console=ttyS0 root=/dev/vda rw quiet vws.job=\"echo hi\"",
		Disks: []Disk{
			{Path: "/var/lib/vws/ws/0001/root.qcow2", Format: "qcow2", Target: "vda"},
			{Path: "/var/lib/vws/ws/0001/cidata.iso", Format: "raw", Target: "sdc", Device: "cdrom"},
		},
		NICs:       []NIC{{MAC: "52:54:00:AB:cd:01", Kind: "network", Source: "default"}},
		ConsoleLog: "/var/lib/vws/ws/0001/console.log",
	},
	"kvm-disk-boot": {
		Name: "vws-ws-0002", UUID: "0d5e8a9b-1c2d-4e3f-8a4b-5c6d7e8f9a0b",
		Type: "kvm", Arch: "x86_64", MemoryMiB: 2048, CPUs: 2, CPUModel: "host-passthrough",
		Disks: []Disk{
			{Path: "/srv/vws/ws/0002/root.raw", Format: "raw", Target: "vda", Boot: true},
			{Path: "/srv/vws/images/data@v2.qcow2", Format: "qcow2", Target: "vdb", ReadOnly: true},
		},
		NICs: []NIC{
			{MAC: "52:54:00:00:00:02", Kind: "bridge", Source: "br0", Model: "e1000"},
			{MAC: "52:54:00:00:00:03", Kind: "user"},
		},
		ConsoleLog: "/srv/vws/ws/0002/console.log",
	},
	"xen-named-cpu": {
		Name: "vws-ws-0003", UUID: "11111111-2222-4333-8444-555555555555",
		Type: "xen", MemoryMiB: 512, CPUs: 4, CPUModel: "Haswell-noTSX",
		Disks: []Disk{{Path: "/srv/xen/ws3.qcow2", Format: "qcow2", Target: "xvda", Boot: true}},
	},
}

func TestDomainXMLGolden(t *testing.T) {
	for name, spec := range goldenSpecs {
		t.Run(name, func(t *testing.T) {
			got, err := DomainXML(spec)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", name+".xml")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./vmm -run Golden -update)", err)
			}
			if got != string(want) {
				t.Errorf("DomainXML differs from %s (rerun with -update if intended):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestGoldenRoundTrip parses every golden file with libvirtxml and marshals it again.
func TestGoldenRoundTrip(t *testing.T) {
	files, err := filepath.Glob("testdata/*.xml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dom libvirtxml.Domain
		if err := dom.Unmarshal(string(raw)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		again, err := dom.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if strings.TrimSpace(again) != strings.TrimSpace(string(raw)) {
			t.Errorf("%s does not round-trip:\n%s", f, again)
		}
		// libvirt's own schema, where libvirt-clients is installed.
		if _, err := exec.LookPath("virt-xml-validate"); err == nil {
			if out, err := exec.Command("virt-xml-validate", f, "domain").CombinedOutput(); err != nil {
				t.Errorf("%s fails libvirt's domain schema: %v: %s", f, err, out)
			}
		}
	}
}

func TestDomainXMLDetails(t *testing.T) {
	parse := func(t *testing.T, s Spec) *libvirtxml.Domain {
		t.Helper()
		x, err := DomainXML(s)
		if err != nil {
			t.Fatal(err)
		}
		var d libvirtxml.Domain
		if err := d.Unmarshal(x); err != nil {
			t.Fatal(err)
		}
		return &d
	}
	s := goldenSpecs["qemu-kernel-boot"]
	d := parse(t, s)
	if d.Features == nil || d.Features.ACPI == nil || d.Features.APIC == nil {
		t.Error("acpi and apic features missing")
	}
	if d.CPU == nil || d.CPU.Mode != "maximum" {
		t.Errorf("qemu host-passthrough: cpu = %+v, want mode maximum", d.CPU)
	}
	if src := d.Devices.Serials[0].Source.File; src == nil || src.Path != s.ConsoleLog || src.Append != "on" {
		t.Errorf("serial source = %+v, want file %s appended", src, s.ConsoleLog)
	}
	if d.Devices.Disks[1].ReadOnly == nil || d.Devices.Disks[1].Target.Bus != "sata" {
		t.Error("cdrom must be read-only on sata")
	}
	for _, disk := range d.Devices.Disks {
		if disk.Boot != nil {
			t.Error("no per-disk boot order with a kernel")
		}
	}
	if d.Devices.Interfaces[0].MAC.Address != "52:54:00:ab:cd:01" {
		t.Errorf("mac not lower-cased: %s", d.Devices.Interfaces[0].MAC.Address)
	}

	s.Type = ""
	if _, err := DomainXML(s); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("empty type: err = %v, want ErrInvalidSpec", err)
	}
	s = goldenSpecs["kvm-disk-boot"]
	s.ConsoleLog = ""
	d = parse(t, s)
	if d.Devices.Serials[0].Source.Pty == nil {
		t.Error("no console log: want a pty serial")
	}
}

func TestRewriteSaved(t *testing.T) {
	old := goldenSpecs["qemu-kernel-boot"]
	saved, err := DomainXML(old)
	if err != nil {
		t.Fatal(err)
	}
	moved := old
	moved.Kernel = "/other/vmlinuz"
	moved.Initrd = "/other/initrd"
	moved.ConsoleLog = "/other/console.log"
	moved.Disks = []Disk{
		{Path: "/other/cidata.iso", Format: "raw", Target: "sdc", Device: "cdrom"},
		{Path: "/other/root.qcow2", Format: "qcow2", Target: "vda"},
	}
	out, changed, err := rewriteSaved(saved, moved)
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	if d.Devices.Disks[0].Source.File.File != "/other/root.qcow2" || d.Devices.Disks[1].Source.File.File != "/other/cidata.iso" {
		t.Errorf("disks not rewritten by target: %s", out)
	}
	if d.OS.Kernel != moved.Kernel || d.OS.Initrd != moved.Initrd || d.Devices.Serials[0].Source.File.Path != moved.ConsoleLog {
		t.Errorf("kernel/initrd/console not rewritten: %s", out)
	}
	if _, changed, err := rewriteSaved(saved, old); err != nil || changed {
		t.Errorf("same spec: changed=%v err=%v, want unchanged", changed, err)
	}

	for name, mut := range map[string]func(*Spec){
		"other name":     func(s *Spec) { s.Name = "vws-other" },
		"other uuid":     func(s *Spec) { s.UUID = "00000000-0000-4000-8000-000000000000" },
		"missing target": func(s *Spec) { s.Disks = s.Disks[:1] },
		"extra target":   func(s *Spec) { s.Disks = append(s.Disks, Disk{Path: "/x/y.raw", Format: "raw", Target: "vdz"}) },
		"other format":   func(s *Spec) { s.Disks = []Disk{{Path: "/x/r.raw", Format: "raw", Target: "vda"}, s.Disks[1]} },
	} {
		s := old
		s.Disks = append([]Disk(nil), old.Disks...)
		mut(&s)
		if _, _, err := rewriteSaved(saved, s); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: err = %v, want ErrInvalidSpec", name, err)
		}
	}
}

// TestScratchDiskXML: a scratch disk reaches the domain as a writable, unshared
// qcow2 disk at its target; one that is not that never reaches XML.
func TestScratchDiskXML(t *testing.T) {
	s := validSpec()
	s.Disks = append(s.Disks, Disk{Path: "/d/scratch-vdb.qcow2", Format: "qcow2", Target: "vdb", Bus: "virtio", Scratch: true, SizeMiB: 4096})
	x, err := DomainXML(s)
	if err != nil {
		t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	disk := d.Devices.Disks[1]
	if disk.Device != "disk" || disk.Driver == nil || disk.Driver.Type != "qcow2" || disk.Source.File.File != "/d/scratch-vdb.qcow2" ||
		disk.Target.Dev != "vdb" || disk.Target.Bus != "virtio" || disk.ReadOnly != nil || disk.Shareable != nil {
		t.Errorf("scratch disk XML: %+v\n%s", disk, x)
	}
	s.Disks[1].Format = "raw"
	if _, err := DomainXML(s); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("a raw scratch disk: %v; want ErrInvalidSpec", err)
	}
}
