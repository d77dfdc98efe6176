package manager

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/vmm"
)

// domainPrefix starts the name of every libvirt domain a vws manager defines.
const domainPrefix = "vws-"

// domainName is the libvirt name of a workspace's domain. It depends on the workspace
// key alone so that a saved ("hot") image restores on any host: libvirt requires the
// restored definition to keep the saved name and UUID.
func domainName(key string) string { return domainPrefix + key }

// domainUUID derives a stable UUID from the workspace key, for the same reason.
func domainUUID(key string) string {
	h := sha256.Sum256([]byte("vws-domain:" + key))
	h[6] = h[6]&0x0f | 0x50 // version 5-style: name-based
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// derivedMAC is the MAC of NIC i when the description gives none: stable per
// workspace (a restored guest must keep its hardware), in QEMU's local range.
func derivedMAC(key string, i int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("vws-mac:%s:%d", key, i)))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
}

// hostOffer is what this host can run, for checking a description against it.
type hostOffer struct {
	DomainType string // kvm, qemu or xen
	Arch       string
	CPUs       int
	FreeMiB    int64
	// Networks are the host's libvirt networks, when known: a NIC must join one.
	Networks      []vmm.Network
	NetworksKnown bool
}

// network is the host's libvirt network named name, if it has one.
func (o hostOffer) network(name string) (vmm.Network, bool) {
	for _, n := range o.Networks {
		if n.Name == name {
			return n, true
		}
	}
	return vmm.Network{}, false
}

func (o hostOffer) networkNames() string {
	if len(o.Networks) == 0 {
		return "none"
	}
	var names []string
	for _, n := range o.Networks {
		if n.Active {
			names = append(names, n.Name)
		} else {
			names = append(names, n.Name+" (not started)")
		}
	}
	return strings.Join(names, ", ")
}

// vmmTypes lists the VMM types a description may ask for on this host: a KVM host
// also runs plain QEMU guests; a TCG-only host does not offer KVM.
func (h hostOffer) vmmTypes() []string {
	switch h.DomainType {
	case "kvm":
		return []string{"kvm", "qemu"}
	default:
		return []string{h.DomainType}
	}
}

// stagedFiles are the host paths a workspace's domain uses.
type stagedFiles struct {
	Disk    string // the deployment's writable qcow2 overlay
	Kernel  string // direct kernel boot, or ""
	Initrd  string
	CIData  string // the NoCloud configuration CD
	Console string
	Scratch map[string]string // extra empty disks by target
}

// buildSpec turns a validated description into a domain definition for this host,
// or says which element of the description the host cannot satisfy.
func buildSpec(key string, d *describe.Description, host hostOffer, files stagedFiles) (vmm.Spec, error) {
	if d.Category != describe.CategoryVM {
		return vmm.Spec{}, metadataErr("/vw:virtualWorkspace/vw:category", fmt.Sprintf("a manager deploys vm workspaces, not %q", d.Category), "")
	}
	if d.VMM != "" && !contains(host.vmmTypes(), d.VMM) {
		return vmm.Spec{}, metadataErr("/vw:virtualWorkspace/vw:category/@vmm",
			fmt.Sprintf("the workspace needs VMM %q; this host offers %s", d.VMM, strings.Join(host.vmmTypes(), ", ")),
			"deploy it on a host of that VMM type, or change the description's vmm attribute")
	}
	hw := d.Hardware
	if hw == nil {
		return vmm.Spec{}, metadataErr("/vw:virtualWorkspace/hw:hardware", "a vm workspace needs its hardware described", "")
	}
	arch := hw.CPU.Architecture
	if arch == "" {
		arch = host.Arch
	}
	if arch != host.Arch && !(host.Arch == "x86_64" && arch == "i686") {
		return vmm.Spec{}, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture",
			fmt.Sprintf("the workspace needs architecture %s; this host is %s", arch, host.Arch), "deploy it on a host of that architecture")
	}
	if hw.CPU.Count > host.CPUs {
		return vmm.Spec{}, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count",
			fmt.Sprintf("the workspace asks for %d CPUs; this host has %d", hw.CPU.Count, host.CPUs), "ask for fewer CPUs or deploy on a larger host")
	}
	mem, err := grantMemory(hw.Memory, host.FreeMiB)
	if err != nil {
		return vmm.Spec{}, err
	}
	spec := vmm.Spec{
		Name: domainName(key), UUID: domainUUID(key), Type: host.DomainType, Arch: arch,
		MemoryMiB: mem, CPUs: hw.CPU.Count, CPUModel: hw.CPU.Model, ConsoleLog: files.Console,
	}
	if sw := d.Software; sw != nil && sw.Kernel != nil && files.Kernel != "" {
		spec.Kernel, spec.Initrd = files.Kernel, files.Initrd
		spec.Cmdline = sw.Kernel.Cmdline
		if !strings.Contains(spec.Cmdline, "console=") {
			// The Manager records ttyS0; a guest writing elsewhere would show nothing.
			spec.Cmdline = strings.TrimSpace(spec.Cmdline + " console=ttyS0")
		}
	}
	used := map[string]bool{}
	root := rootDisk(hw.Disks)
	cdTarget := ""
	for i, disk := range hw.Disks {
		switch {
		case i == root:
			spec.Disks = append(spec.Disks, vmm.Disk{Path: files.Disk, Format: "qcow2", Target: disk.Target, Bus: disk.Bus, Boot: true})
		case disk.Device == "cdrom" && cdTarget == "" && disk.Image == nil:
			// An empty CD-ROM drive of the description carries the configuration CD.
			cdTarget = disk.Target
			spec.Disks = append(spec.Disks, vmm.Disk{Path: files.CIData, Format: "raw", Target: disk.Target, Bus: disk.Bus, Device: "cdrom", ReadOnly: true})
		case disk.Image == nil && disk.Device != "cdrom" && files.Scratch[disk.Target] != "":
			spec.Disks = append(spec.Disks, vmm.Disk{Path: files.Scratch[disk.Target], Format: "qcow2", Target: disk.Target, Bus: disk.Bus, ReadOnly: disk.ReadOnly})
		default:
			return vmm.Spec{}, metadataErr(fmt.Sprintf("/vw:virtualWorkspace/hw:hardware/hw:disk[%d]", i+1),
				"this manager deploys one image-backed root disk, empty scratch disks and one empty CD-ROM drive", "describe the extra images as partitions of the root image")
		}
		used[disk.Target] = true
	}
	if root < 0 {
		target := freeTarget(used, "vd")
		used[target] = true
		spec.Disks = append([]vmm.Disk{{Path: files.Disk, Format: "qcow2", Target: target, Bus: "virtio", Boot: true}}, spec.Disks...)
	}
	if cdTarget == "" {
		spec.Disks = append(spec.Disks, vmm.Disk{Path: files.CIData, Format: "raw", Target: freeTarget(used, "sd"), Bus: "sata", Device: "cdrom", ReadOnly: true})
	}
	if d.Network != nil {
		for i, nic := range d.Network.NICs {
			mac := nic.MAC
			if mac == "" {
				mac = derivedMAC(key, i)
			}
			kind := nic.NetworkKind
			if kind == "" {
				kind = "network"
			}
			if _, ok := host.network(nic.Network); kind == "network" && host.NetworksKnown && !ok {
				return vmm.Spec{}, metadataErr(fmt.Sprintf("/vw:virtualWorkspace/net:network/net:nic[%d]/net:association/net:name", i+1),
					fmt.Sprintf("NIC %s joins network %q; this host's networks are: %s", nic.Name, nic.Network, host.networkNames()),
					fmt.Sprintf("name one of them, or deploy the workspace on a host that has network %q", nic.Network))
			}
			spec.NICs = append(spec.NICs, vmm.NIC{MAC: strings.ToLower(mac), Model: nic.Model, Kind: kind, Source: nic.Network})
		}
	}
	if err := spec.Validate(); err != nil {
		return vmm.Spec{}, fmt.Errorf("%w (from the workspace description)", err)
	}
	return spec, nil
}

// startableNetworks refuses a guest that is to run now on a network the host has but
// has not started: libvirt would refuse to start it, after the deploy moved its bytes.
func startableNetworks(spec vmm.Spec, host hostOffer) error {
	for _, nic := range spec.NICs {
		if n, ok := host.network(nic.Source); nic.Kind == "network" && ok && !n.Active {
			return errdefs.WithAdvice(fmt.Errorf("%w: network %q, which the workspace's NIC %s joins, is defined on this host but not started",
				errdefs.ErrHypervisor, n.Name, nic.MAC),
				fmt.Sprintf("the site administrator must start it: virsh net-start %s (virsh net-autostart %s keeps it started across reboots); or deploy with --state shutdown now and start the workspace once it is", n.Name, n.Name))
		}
	}
	return nil
}

// grantMemory grants the requested size when the host has it free, else as much as
// the host has down to the description's minimum.
func grantMemory(m describe.Memory, freeMiB int64) (int, error) {
	if int64(m.SizeMiB) <= freeMiB {
		return m.SizeMiB, nil
	}
	if m.MinMiB > 0 && int64(m.MinMiB) <= freeMiB {
		return int(freeMiB), nil
	}
	least := m.SizeMiB
	if m.MinMiB > 0 {
		least = m.MinMiB
	}
	return 0, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:RAM",
		fmt.Sprintf("the workspace needs at least %d MiB; this host has %d MiB free", least, freeMiB),
		"deploy it on a host with more free memory, or lower hw:RAM/hw:minimum")
}

// rootDisk is the index of the disk the base image backs: the boot disk with an
// image, else the first with an image; -1 when none has one.
func rootDisk(disks []describe.Disk) int {
	first := -1
	for i, d := range disks {
		if d.Image == nil || d.Device == "cdrom" {
			continue
		}
		if d.Boot {
			return i
		}
		if first < 0 {
			first = i
		}
	}
	return first
}

func freeTarget(used map[string]bool, prefix string) string {
	for c := 'a'; c <= 'z'; c++ {
		if t := prefix + string(c); !used[t] {
			return t
		}
	}
	return prefix + "aa"
}

func metadataErr(path, reason, advice string) error {
	err := error(&errdefs.MetadataError{Path: path, Reason: reason})
	if advice != "" {
		err = errdefs.WithAdvice(err, advice)
	}
	return err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
