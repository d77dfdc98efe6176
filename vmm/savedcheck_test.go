package vmm

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"
)

// TestSavedDomainHeldToTheSpec: the domain XML inside a save image comes from the host
// that last ran the workspace; restoring it here takes only what the spec describes
// (plus what a hypervisor adds by itself), so a host taken over cannot have other
// hosts run QEMU arguments, host devices, sockets or another memory size of its
// choosing when the workspace moves.
func TestSavedDomainHeldToTheSpec(t *testing.T) {
	here := goldenSpecs["qemu-kernel-boot"]
	saved := func(t *testing.T, mut func(*libvirtxml.Domain)) string { return savedXML(t, here, mut) }
	out, changed, err := rewriteSaved(saved(t, nil), here)
	if err != nil {
		t.Fatalf("a saved domain as libvirt writes it: %v", err)
	}
	if !changed || strings.Contains(out, "vnet7") {
		t.Errorf("the tap device it had on the other host is kept (changed %v):\n%s", changed, out)
	}
	for name, tc := range map[string]struct {
		mut  func(*libvirtxml.Domain)
		says string
	}{
		"more memory than granted": {func(d *libvirtxml.Domain) { d.Memory = &libvirtxml.DomainMemory{Value: 4096, Unit: "MiB"} }, "a guest of 4096 MiB; the spec gives it 128 MiB"},
		"other vCPUs":              {func(d *libvirtxml.Domain) { d.VCPU.Value = 8 }, "8 vCPUs"},
		"QEMU command line": {func(d *libvirtxml.Domain) {
			d.QEMUCommandline = &libvirtxml.DomainQEMUCommandline{Args: []libvirtxml.DomainQEMUCommandlineArg{{Value: "-chardev"}, {Value: "socket,id=x,path=/run/libvirt/libvirt-sock"}}}
		}, "passes arguments through"},
		"a host block device": {func(d *libvirtxml.Domain) {
			d.Devices.Disks = append(d.Devices.Disks, libvirtxml.DomainDisk{Device: "disk",
				Source: &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: "/dev/sda"}},
				Target: &libvirtxml.DomainDiskTarget{Dev: "vdz", Bus: "virtio"}})
		}, "vdz is not a file"},
		"a host bridge": {func(d *libvirtxml.Domain) {
			d.Devices.Interfaces = append(d.Devices.Interfaces, libvirtxml.DomainInterface{
				Source: &libvirtxml.DomainInterfaceSource{Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: "br-mgmt"}}})
		}, "2 network interfaces"},
		"its interface on another network": {func(d *libvirtxml.Domain) { d.Devices.Interfaces[0].Source.Network.Network = "mgmt" }, "not attached as the spec's"},
		"an interface script": {func(d *libvirtxml.Domain) {
			d.Devices.Interfaces[0].Script = &libvirtxml.DomainInterfaceScript{Path: "/tmp/x.sh"}
		}, "runs scripts"},
		"a serial port on a socket": {func(d *libvirtxml.Domain) {
			d.Devices.Serials[0].Source = &libvirtxml.DomainChardevSource{UNIX: &libvirtxml.DomainChardevSourceUNIX{Mode: "connect", Path: "/run/x.sock"}}
		}, "connected to something else"},
		"a host filesystem": {func(d *libvirtxml.Domain) {
			d.Devices.Filesystems = []libvirtxml.DomainFilesystem{{Source: &libvirtxml.DomainFilesystemSource{Mount: &libvirtxml.DomainFilesystemSourceMount{Dir: "/"}}}}
		}, "filesystems devices"},
		"a host device": {func(d *libvirtxml.Domain) {
			d.Devices.Hostdevs = []libvirtxml.DomainHostdev{{SubsysUSB: &libvirtxml.DomainHostdevSubsysUSB{
				Source: &libvirtxml.DomainHostdevSubsysUSBSource{Address: &libvirtxml.DomainAddressUSB{}}}}}
		}, "hostdevs devices"},
		"another emulator": {func(d *libvirtxml.Domain) { d.Devices.Emulator = "/tmp/evil" }, "emulator"},
		"no confinement":   {func(d *libvirtxml.Domain) { d.SecLabel = []libvirtxml.DomainSecLabel{{Type: "none"}} }, "security label"},
		"firmware":         {func(d *libvirtxml.Domain) { d.OS.Loader = &libvirtxml.DomainLoader{Path: "/tmp/fw.bin"} }, "firmware"},
		// Each crash would write the guest's RAM to this host's disk, and boot it to crash again.
		"a core dump on crash": {func(d *libvirtxml.Domain) { d.OnCrash = "coredump-restart" }, "on_crash"},
		// libvirt labels the file for QEMU, which hands its bytes to the guest.
		"a host file through fw_cfg": {func(d *libvirtxml.Domain) {
			d.SysInfo = []libvirtxml.DomainSysInfo{{FWCfg: &libvirtxml.DomainSysInfoFWCfg{
				Entry: []libvirtxml.DomainSysInfoEntry{{Name: "opt/x", File: "/etc/shadow"}}}}}
		}, "sysinfo"},
	} {
		if _, _, err := rewriteSaved(saved(t, tc.mut), here); !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want a refusal saying %q", name, err, tc.says)
		}
	}
}

// TestRestoreRefusesAnotherMemorySize: on libvirt's test driver, a guest saved with
// 256 MiB is not restored under a spec that grants 64 MiB (it would run with the
// 256 MiB this host did not grant).
func TestRestoreRefusesAnotherMemorySize(t *testing.T) {
	l, err := Open(t.Context(), Config{URI: "test:///default"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := t.Context()
	there := newTestSpec(t, l, "qemu", func(t *testing.T) string { return filepath.Join(t.TempDir(), "root.qcow2") })
	there.MemoryMiB = 256
	defineAndStart(t, l, there)
	img := filepath.Join(t.TempDir(), "memory.save")
	if err := l.Save(ctx, there.Name, img); err != nil {
		t.Fatal(err)
	}
	if got, err := l.SavedMemoryMiB(ctx, img); err != nil || got != 256 {
		t.Fatalf("SavedMemoryMiB = %d, %v; want 256", got, err)
	}
	here := there
	here.MemoryMiB = 64
	if err := l.Define(ctx, here); err != nil {
		t.Fatal(err)
	}
	if err := l.Restore(ctx, img, here, false); !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), "256 MiB") {
		t.Fatalf("Restore under a spec of 64 MiB: %v", err)
	}
}

// savedXML is the domain XML a save image of a domain made from spec holds, with
// what libvirt adds on its own, changed by mut.
func savedXML(t *testing.T, spec Spec, mut func(*libvirtxml.Domain)) string {
	t.Helper()
	x, err := DomainXML(spec)
	if err != nil {
		t.Fatal(err)
	}
	var d libvirtxml.Domain
	if err := d.Unmarshal(x); err != nil {
		t.Fatal(err)
	}
	// What libvirt adds on its own is accepted.
	d.Devices.Emulator = "/usr/bin/qemu-system-x86_64"
	d.Devices.Controllers = append(d.Devices.Controllers, libvirtxml.DomainController{Type: "usb", Model: "piix3-uhci"})
	d.Devices.Inputs = append(d.Devices.Inputs, libvirtxml.DomainInput{Type: "mouse", Bus: "ps2"})
	d.Devices.Interfaces[0].Target = &libvirtxml.DomainInterfaceTarget{Dev: "vnet7"}
	d.SecLabel = []libvirtxml.DomainSecLabel{{Type: "dynamic", Model: "apparmor"}}
	d.Memory = &libvirtxml.DomainMemory{Value: uint(spec.MemoryMiB) << 10, Unit: "KiB"}
	if mut != nil {
		mut(&d)
	}
	out, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSavedDiskWithoutFormatTakesTheSpecs: a save image from a host taken over whose
// disk has no <driver type> (libvirt then opens the file as raw) must not restore the
// spec's qcow2 overlay as raw: the guest could write a qcow2 header naming any host
// file as backing store, which the next qcow2 open follows.
func TestSavedDiskWithoutFormatTakesTheSpecs(t *testing.T) {
	here := goldenSpecs["qemu-kernel-boot"]
	saved := savedXML(t, here, func(d *libvirtxml.Domain) {
		for i := range d.Devices.Disks {
			d.Devices.Disks[i].Driver = nil // no format: libvirt's QEMU driver takes it as raw
		}
	})
	out, _, err := rewriteSaved(saved, here)
	if err != nil {
		t.Fatalf("a saved disk without a format, the spec saying which: %v", err)
	}
	var got libvirtxml.Domain
	if err := got.Unmarshal(out); err != nil {
		t.Fatal(err)
	}
	for _, disk := range got.Devices.Disks {
		if disk.Target.Dev == "vda" && (disk.Driver == nil || disk.Driver.Type != "qcow2") {
			t.Errorf("saved disk vda without <driver type>: restored XML keeps it without format qcow2 (driver %+v); libvirt opens the qcow2 overlay %s as raw", disk.Driver, disk.Source.File.File)
		}
	}
}

// TestSavedDiskDataStoreIsRefused: a save image's disk whose file source names an
// external data file (<dataStore>) on a host block device is refused: the restored
// guest's disk data would be read and written on /dev/sda of every host the workspace
// moves to.
func TestSavedDiskDataStoreIsRefused(t *testing.T) {
	here := goldenSpecs["qemu-kernel-boot"]
	saved := savedXML(t, here, func(d *libvirtxml.Domain) {
		for i := range d.Devices.Disks {
			if d.Devices.Disks[i].Target.Dev == "vda" {
				d.Devices.Disks[i].Source.DataStore = &libvirtxml.DomainDiskDataStore{
					Format: &libvirtxml.DomainDiskFormat{Type: "raw"},
					Source: &libvirtxml.DomainDiskSource{Block: &libvirtxml.DomainDiskSourceBlock{Dev: "/dev/sda"}},
				}
			}
		}
	})
	if out, _, err := rewriteSaved(saved, here); err == nil {
		t.Errorf("a saved disk whose data store is the host's /dev/sda is accepted for restore; the XML libvirt gets:\n%s", out)
	}
}

// TestSavedBaseLabelIsRefused: a dynamic security label is the restoring host's own,
// unless the saved domain names the base it is made from: libvirt's SELinux driver
// then runs QEMU in that context (unconfined_t, say) on every host the workspace
// moves to.
func TestSavedBaseLabelIsRefused(t *testing.T) {
	here := goldenSpecs["qemu-kernel-boot"]
	saved := savedXML(t, here, func(d *libvirtxml.Domain) {
		d.SecLabel = []libvirtxml.DomainSecLabel{{Type: "dynamic", Model: "selinux", BaseLabel: "unconfined_u:unconfined_r:unconfined_t:s0"}}
	})
	if out, _, err := rewriteSaved(saved, here); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("a saved domain whose QEMU runs as unconfined_t is accepted for restore (%v); the XML libvirt gets:\n%s", err, out)
	}
}

// TestSavedHostTuningIsRefused: vws defines no host-side tuning, so a saved domain's
// scheduling, pinning, cgroup placement, block I/O device limits, memory or NUMA
// policy, I/O threads or perf counters came from whoever wrote the image; restored,
// they would act on the restoring host's CPUs, devices and cgroups. A saved domain is
// held to what vws defines (and libvirt adds: <resource><partition>/machine), not to
// a list of what is known to be harmful.
func TestSavedHostTuningIsRefused(t *testing.T) {
	here := goldenSpecs["qemu-kernel-boot"]
	prio := 99
	if _, _, err := rewriteSaved(savedXML(t, here, func(d *libvirtxml.Domain) {
		d.Resource = &libvirtxml.DomainResource{Partition: "/machine"}
	}), here); err != nil {
		t.Fatalf("a saved domain in libvirt's own cgroup partition: %v", err)
	}
	for name, mut := range map[string]func(*libvirtxml.Domain){
		// SCHED_FIFO at 99: a guest's busy vCPU starves everything else on its host CPU.
		"real-time vCPUs": func(d *libvirtxml.Domain) {
			d.CPUTune = &libvirtxml.DomainCPUTune{VCPUSched: []libvirtxml.DomainCPUTuneVCPUSched{{VCPUs: "0", Scheduler: "fifo", Priority: &prio}}}
		},
		"emulator pinned to host CPU 0": func(d *libvirtxml.Domain) {
			d.CPUTune = &libvirtxml.DomainCPUTune{EmulatorPin: &libvirtxml.DomainCPUTuneEmulatorPin{CPUSet: "0"}}
		},
		"a cgroup outside /machine": func(d *libvirtxml.Domain) {
			d.Resource = &libvirtxml.DomainResource{Partition: "/system.slice"}
		},
		"limits on the host's /dev/sda": func(d *libvirtxml.Domain) {
			d.BlockIOTune = &libvirtxml.DomainBlockIOTune{Device: []libvirtxml.DomainBlockIOTuneDevice{{Path: "/dev/sda", ReadIopsSec: 1}}}
		},
		"memory limits": func(d *libvirtxml.Domain) {
			d.MemoryTune = &libvirtxml.DomainMemoryTune{SoftLimit: &libvirtxml.DomainMemoryTuneLimit{Value: 1}}
		},
		"memory bound to a host NUMA node": func(d *libvirtxml.Domain) {
			d.NUMATune = &libvirtxml.DomainNUMATune{Memory: &libvirtxml.DomainNUMATuneMemory{Mode: "strict", Nodeset: "0"}}
		},
		"100000 I/O threads": func(d *libvirtxml.Domain) { d.IOThreads = 100000 },
		"host perf counters": func(d *libvirtxml.Domain) {
			d.Perf = &libvirtxml.DomainPerf{Events: []libvirtxml.DomainPerfEvent{{Name: "cmt", Enabled: "yes"}}}
		},
	} {
		if out, _, err := rewriteSaved(savedXML(t, here, mut), here); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: accepted for restore (%v); the XML libvirt gets:\n%s", name, err, out)
		}
	}
}

// TestSavedXMLTheCheckCannotSeeIsRefused: checkSaved sees a saved domain through
// libvirtxml, so whatever libvirtxml does not model (an element of a libvirt newer
// than it, one in a namespace of its own, another attribute) is invisible to the
// check; and when the spec changes nothing in the XML (the same host, the same paths)
// libvirt restores the image's own, with it. Such XML is refused.
func TestSavedXMLTheCheckCannotSeeIsRefused(t *testing.T) {
	here := goldenSpecs["qemu-kernel-boot"]
	saved, err := DomainXML(here)
	if err != nil {
		t.Fatal(err)
	}
	if _, changed, err := rewriteSaved(saved, here); err != nil || changed {
		t.Fatalf("the domain as vws defines it: changed %v, %v", changed, err)
	}
	for name, tc := range map[string]struct{ old, new, says string }{
		"an unknown device":                            {"</devices>", `<frobnicator path="/dev/sda"/></devices>`, "frobnicator"},
		"an element in a namespace of its own":         {"</devices>", `<x:hook xmlns:x="urn:made-up" run="/tmp/x.sh"/></devices>`, "{urn:made-up}hook"},
		"an unknown attribute":                         {"<devices>", `<devices frob="1">`, "attribute frob"},
		"a second on_crash, which libvirt reads first": {"<on_crash>", `<on_crash>coredump-restart</on_crash><on_crash>`, "<domain/on_crash>"},
	} {
		if !strings.Contains(saved, tc.old) {
			t.Fatalf("%s: no %s in %s", name, tc.old, saved)
		}
		out, _, err := rewriteSaved(strings.Replace(saved, tc.old, tc.new, 1), here)
		if !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want a refusal naming %s; the XML libvirt gets:\n%s", name, err, tc.says, out)
		}
	}
}
