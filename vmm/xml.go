package vmm

import (
	"fmt"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// DomainXML builds the libvirt domain XML for a valid Spec whose Type is set.
//
// The guest gets ACPI and APIC (x86), so a guest's poweroff ends the domain;
// on_poweroff destroy, on_reboot restart, on_crash destroy; no ACPI S3/S4 sleep
// states (x86 qemu/kvm); machine "pc" on x86
// qemu/kvm ("virt" on aarch64, libvirt's choice on Xen); no memory balloon; the
// serial console (ttyS0) appended to ConsoleLog, with <console> on that serial.
func DomainXML(s Spec) (string, error) {
	dom, err := buildDomain(s)
	if err != nil {
		return "", err
	}
	out, err := dom.Marshal()
	if err != nil {
		return "", fmt.Errorf("domain XML for %s: %w", s.Name, err)
	}
	return out + "\n", nil
}

// The lifecycle actions of every domain (checkSaved holds saved ones to them too).
const (
	onPoweroff = "destroy"
	onReboot   = "restart"
	onCrash    = "destroy"
)

func buildDomain(s Spec) (*libvirtxml.Domain, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if s.Type == "" {
		return nil, invalid("type", "required to build domain XML: one of %s", strings.Join(domainTypes, ", "))
	}
	arch := s.Arch
	if arch == "" {
		arch = "x86_64"
	}
	x86 := arch == "x86_64" || arch == "i686"

	osType := &libvirtxml.DomainOSType{Type: "hvm", Arch: arch}
	switch {
	case s.Type == "xen":
	case x86:
		osType.Machine = "pc"
	case arch == "aarch64":
		osType.Machine = "virt"
	}
	dom := &libvirtxml.Domain{
		Type:   s.Type,
		Name:   s.Name,
		UUID:   s.UUID,
		Memory: &libvirtxml.DomainMemory{Value: uint(s.MemoryMiB), Unit: "MiB"},
		VCPU:   &libvirtxml.DomainVCPU{Placement: "static", Value: uint(s.CPUs)},
		OS: &libvirtxml.DomainOS{
			Type:    osType,
			Kernel:  s.Kernel,
			Initrd:  s.Initrd,
			Cmdline: s.Cmdline,
		},
		CPU:        cpuFor(s),
		Clock:      &libvirtxml.DomainClock{Offset: "utc"},
		OnPoweroff: onPoweroff,
		OnReboot:   onReboot,
		OnCrash:    onCrash,
		Devices:    &libvirtxml.DomainDeviceList{MemBalloon: &libvirtxml.DomainMemBalloon{Model: "none"}},
	}
	if x86 {
		dom.Features = &libvirtxml.DomainFeatureList{
			ACPI: &libvirtxml.DomainFeature{},
			APIC: &libvirtxml.DomainFeatureAPIC{},
		}
	}
	if x86 && s.Type != "xen" {
		// A guest that suspends itself (S3) is pmsuspended, which Resume cannot wake
		// (it would need a wakeup call), and S4 ends QEMU as a power-off would: vws's
		// pause and serialize are how a workspace sleeps, so the guest is not offered
		// either (QEMU's PIIX4 disable_s3/disable_s4).
		dom.PM = &libvirtxml.DomainPM{SuspendToMem: &libvirtxml.DomainPMPolicy{Enabled: "no"},
			SuspendToDisk: &libvirtxml.DomainPMPolicy{Enabled: "no"}}
	}

	boot := uint(0)
	for _, d := range s.Disks {
		disk := libvirtxml.DomainDisk{
			Device: "disk",
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: d.Format},
			Source: &libvirtxml.DomainDiskSource{File: &libvirtxml.DomainDiskSourceFile{File: d.Path}},
			Target: &libvirtxml.DomainDiskTarget{Dev: d.Target, Bus: d.bus()},
		}
		if d.Device == "cdrom" {
			disk.Device = "cdrom"
		}
		if d.ReadOnly || d.Device == "cdrom" {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		if d.Boot && s.Kernel == "" {
			boot++
			disk.Boot = &libvirtxml.DomainDeviceBoot{Order: boot}
		}
		dom.Devices.Disks = append(dom.Devices.Disks, disk)
	}
	for _, n := range s.NICs {
		model := n.Model
		if model == "" {
			model = "virtio"
		}
		src := &libvirtxml.DomainInterfaceSource{}
		switch n.Kind {
		case "network":
			src.Network = &libvirtxml.DomainInterfaceSourceNetwork{Network: n.Source}
		case "bridge":
			src.Bridge = &libvirtxml.DomainInterfaceSourceBridge{Bridge: n.Source}
		case "user":
			src.User = &libvirtxml.DomainInterfaceSourceUser{}
		}
		dom.Devices.Interfaces = append(dom.Devices.Interfaces, libvirtxml.DomainInterface{
			MAC:    &libvirtxml.DomainInterfaceMAC{Address: strings.ToLower(n.MAC)},
			Source: src,
			Model:  &libvirtxml.DomainInterfaceModel{Type: model},
		})
	}

	// The serial port (ttyS0) and the console on it share one character device.
	chardev := func() *libvirtxml.DomainChardevSource {
		if s.ConsoleLog == "" {
			return &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}}
		}
		return &libvirtxml.DomainChardevSource{File: &libvirtxml.DomainChardevSourceFile{Path: s.ConsoleLog, Append: "on"}}
	}
	port := uint(0)
	dom.Devices.Serials = []libvirtxml.DomainSerial{{Source: chardev(), Target: &libvirtxml.DomainSerialTarget{Port: &port}}}
	dom.Devices.Consoles = []libvirtxml.DomainConsole{{Source: chardev(), Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &port}}}
	return dom, nil
}

// cpuFor maps Spec.CPUModel to a <cpu> element (nil: hypervisor default).
func cpuFor(s Spec) *libvirtxml.DomainCPU {
	switch s.CPUModel {
	case "":
		return nil
	case "host-passthrough":
		if s.Type == "qemu" {
			// TCG cannot pass the host CPU through; "maximum" is QEMU's -cpu max.
			return &libvirtxml.DomainCPU{Mode: "maximum"}
		}
		return &libvirtxml.DomainCPU{Mode: "host-passthrough"}
	case "host-model":
		return &libvirtxml.DomainCPU{Mode: "host-model"}
	default:
		return &libvirtxml.DomainCPU{
			Mode:  "custom",
			Match: "exact",
			Model: &libvirtxml.DomainCPUModel{Value: s.CPUModel, Fallback: "allow"},
		}
	}
}

// rewriteSaved takes the domain XML embedded in a save image, holds it to s
// (checkSaved: the name, UUID, memory, vCPUs and devices must be s's), and replaces its
// host-side paths (disk sources by target, kernel, initrd, file-backed serial/console)
// with those of s. It reports whether anything changed.
func rewriteSaved(saved string, s Spec) (string, bool, error) {
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(saved); err != nil {
		return "", false, fmt.Errorf("parse domain XML of the save image: %w", err)
	}
	if dom.Name != s.Name {
		return "", false, invalid("name", "%q differs from the saved domain's name %q", s.Name, dom.Name)
	}
	if dom.UUID != s.UUID {
		return "", false, invalid("uuid", "%q differs from the saved domain's UUID %q", s.UUID, dom.UUID)
	}
	if err := checkSaved(&dom, s); err != nil {
		return "", false, err
	}
	// Unchanged, the image's own XML is restored (some drivers take no other), so it
	// must hold nothing the check did not see.
	if err := checkModeled(saved, &dom); err != nil {
		return "", false, err
	}
	changed := sanitizeSaved(&dom)
	set := func(dst *string, v string) {
		if *dst != v {
			*dst, changed = v, true
		}
	}
	if dom.OS != nil {
		if dom.OS.Kernel != "" || s.Kernel != "" {
			set(&dom.OS.Kernel, s.Kernel)
		}
		if dom.OS.Initrd != "" || s.Initrd != "" {
			set(&dom.OS.Initrd, s.Initrd)
		}
	}
	byTarget := map[string]Disk{}
	for _, d := range s.Disks {
		byTarget[d.Target] = d
	}
	if dom.Devices != nil {
		seen := map[string]bool{}
		for i := range dom.Devices.Disks {
			disk := &dom.Devices.Disks[i]
			if disk.Target == nil || disk.Source == nil || disk.Source.File == nil {
				continue // not a file-backed disk (e.g. an empty cdrom drive)
			}
			want, ok := byTarget[disk.Target.Dev]
			if !ok {
				return "", false, invalid("disks", "the saved domain has disk %s (%s), the spec has none with that target", disk.Target.Dev, disk.Source.File.File)
			}
			seen[disk.Target.Dev] = true
			set(&disk.Source.File.File, want.Path)
			if disk.Driver != nil && disk.Driver.Type != "" && disk.Driver.Type != want.Format {
				return "", false, invalid(diskFieldByTarget(want.Target), "format %q differs from the saved disk's %q", want.Format, disk.Driver.Type)
			}
			// A disk without a format would be opened as raw: the guest could then
			// write a qcow2 header naming any host file as its backing store.
			if disk.Driver == nil {
				disk.Driver, changed = &libvirtxml.DomainDiskDriver{Name: "qemu"}, true
			}
			set(&disk.Driver.Type, want.Format)
		}
		for _, d := range s.Disks {
			if !seen[d.Target] {
				return "", false, invalid(diskFieldByTarget(d.Target), "the saved domain has no file-backed disk %s", d.Target)
			}
		}
		if s.ConsoleLog != "" {
			for i := range dom.Devices.Serials {
				if src := dom.Devices.Serials[i].Source; src != nil && src.File != nil {
					set(&src.File.Path, s.ConsoleLog)
				}
			}
			for i := range dom.Devices.Consoles {
				if src := dom.Devices.Consoles[i].Source; src != nil && src.File != nil {
					set(&src.File.Path, s.ConsoleLog)
				}
			}
		}
	}
	if !changed {
		return saved, false, nil
	}
	out, err := dom.Marshal()
	if err != nil {
		return "", false, fmt.Errorf("marshal rewritten domain XML: %w", err)
	}
	return out, true, nil
}

func diskFieldByTarget(target string) string { return "disk " + target }
