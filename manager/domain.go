package manager

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/hostfit"
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
type hostOffer = hostfit.Offer

// offerOf is the offer of a host as the hypervisor describes it, with the bridges its
// site publishes (Config.Bridges): the only bridges a NIC may join.
func offerOf(h vmm.HostInfo, bridges []string) hostOffer {
	o := hostOffer{DomainType: h.DomainType, Arch: h.Arch, CPUs: h.CPUs, FreeMiB: h.FreeMiB, NetworksKnown: h.NetworksKnown}
	for _, n := range h.Networks {
		o.Networks = append(o.Networks, hostfit.Network{Name: n.Name, Kind: hostfit.KindNetwork, Active: n.Active})
	}
	for _, b := range bridges {
		o.Networks = append(o.Networks, hostfit.Network{Name: b, Kind: hostfit.KindBridge, Active: true})
	}
	return o
}

// offer is this host's offer: what the hypervisor says, and the published bridges.
// Deploy checks a description against it, and announcements and resource properties
// tell it, so that placement decides as Deploy does.
func (m *Manager) offer(h vmm.HostInfo) hostOffer { return offerOf(h, m.cfg.Bridges) }

// stagedFiles are the host paths a workspace's domain uses.
type stagedFiles struct {
	Disk    string // the deployment's writable qcow2 overlay
	Kernel  string // direct kernel boot, or ""
	Initrd  string
	CIData  string // the NoCloud configuration CD
	Console string
	Dir     string // the deployment's directory, where its scratch disks are created
}

// buildSpec turns a validated description into a domain definition for this host,
// or says which element of the description the host cannot satisfy.
func buildSpec(key string, d *describe.Description, host hostOffer, files stagedFiles) (vmm.Spec, error) {
	fit, err := hostfit.Check(d, host)
	if err != nil {
		return vmm.Spec{}, err
	}
	hw, arch, mem := d.Hardware, fit.Arch, fit.MemoryMiB
	spec := vmm.Spec{
		Name: domainName(key), UUID: domainUUID(key), Type: host.DomainType, Arch: arch,
		MemoryMiB: mem, CPUs: hw.CPU.Count, CPUModel: hw.CPU.Model, ConsoleLog: files.Console,
	}
	if sw := d.Software; sw != nil && sw.Kernel != nil && files.Kernel != "" {
		spec.Kernel, spec.Initrd = files.Kernel, files.Initrd
		spec.Cmdline = sw.Kernel.Cmdline
		if !slices.ContainsFunc(strings.Fields(spec.Cmdline), func(f string) bool { return strings.HasPrefix(f, "console=") }) {
			// The Manager records ttyS0; a guest writing elsewhere would show nothing.
			spec.Cmdline = strings.TrimSpace(spec.Cmdline + " console=ttyS0")
		}
	}
	used := map[string]bool{}
	root, err := hostfit.Disks(hw.Disks)
	if err != nil {
		return vmm.Spec{}, err
	}
	cdTarget := ""
	for i, disk := range hw.Disks {
		switch {
		case i == root:
			spec.Disks = append(spec.Disks, vmm.Disk{Path: files.Disk, Format: "qcow2", Target: disk.Target, Bus: disk.Bus, Boot: true})
		case disk.Device == "cdrom" && cdTarget == "" && disk.Image == nil:
			// An empty CD-ROM drive of the description carries the configuration CD.
			cdTarget = disk.Target
			spec.Disks = append(spec.Disks, vmm.Disk{Path: files.CIData, Format: "raw", Target: disk.Target, Bus: disk.Bus, Device: "cdrom", ReadOnly: true})
		case hostfit.IsScratch(disk):
			// Created empty by the deploy (createScratch); spec.Validate below checks
			// its path, target and size before any of it reaches libvirt.
			spec.Disks = append(spec.Disks, vmm.Disk{Path: scratchPath(files.Dir, disk.Target), Format: "qcow2", Target: disk.Target, Bus: disk.Bus,
				Scratch: true, SizeMiB: disk.SizeMiB})
		default: // hostfit.Disks refused it already
			return vmm.Spec{}, metadataErr(fmt.Sprintf("/vw:virtualWorkspace/hw:hardware/hw:disk[%d]", i+1),
				"this manager deploys one image-backed root disk, empty scratch disks and one empty CD-ROM drive", "put what the other disks hold into the base image")
		}
		used[disk.Target] = true
	}
	if root < 0 {
		target := hostfit.AddedRootTarget // hostfit.Disks refused a described disk there
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
			source := nic.Network
			if kind == "user" {
				source = "" // the schema names an association even for user-mode networking, which joins none
			}
			spec.NICs = append(spec.NICs, vmm.NIC{MAC: strings.ToLower(mac), Model: nic.Model, Kind: kind, Source: source})
		}
	}
	if err := spec.Validate(); err != nil {
		// What the schema let through and the hypervisor cannot take: the description's
		// fault, said as one.
		return vmm.Spec{}, errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace", Reason: "this host cannot run it as described: " + err.Error()},
			"change the description (vws create with another one), or deploy it on another host")
	}
	return spec, nil
}

// startableNetworks refuses a guest that is to run now on a network the host has but
// has not started: libvirt would refuse to start it, after the deploy moved its bytes.
func startableNetworks(spec vmm.Spec, host hostOffer) error {
	for _, nic := range spec.NICs {
		if n, ok := host.Network(nic.Source); nic.Kind == "network" && ok && !n.Active {
			return errdefs.WithAdvice(fmt.Errorf("%w: network %q, which the workspace's NIC %s joins, is defined on this host but not started",
				errdefs.ErrHypervisor, n.Name, nic.MAC),
				fmt.Sprintf("the site administrator must start it: virsh net-start %s (virsh net-autostart %s keeps it started across reboots); or deploy with --state shutdown now and start the workspace once it is", n.Name, n.Name))
		}
	}
	return nil
}

// onPublishedBridges refuses to boot a domain with a NIC on a bridge this host does
// not publish now: one deployed before bridges had to be published, or whose bridge
// the site has since withdrawn, would otherwise go on reaching it. Its NICs are the
// description's, in order.
func (m *Manager) onPublishedBridges(spec vmm.Spec) error {
	for i, nic := range spec.NICs {
		if nic.Kind == hostfit.KindBridge && !slices.Contains(m.cfg.Bridges, nic.Source) {
			return metadataErr(fmt.Sprintf("/vw:virtualWorkspace/net:network/net:nic[%d]/net:association/net:name", i+1),
				fmt.Sprintf("the workspace's NIC %s joins host bridge %q, which this host no longer publishes; it is not booted", nic.MAC, nic.Source),
				fmt.Sprintf("undeploy it and join a published bridge or a libvirt network instead, or ask the site's administrators to publish bridge %q (vws serve --bridge %s) if guests may join it", nic.Source, nic.Source))
		}
	}
	return nil
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

// restorableMemory says whether a serialized guest of savedMiB can resume here: within
// what its description allows (a memory image holding more came from a host that did
// not keep to it), and with that much memory free.
func restorableMemory(m describe.Memory, savedMiB, freeMiB int64) error {
	least := m.SizeMiB
	if m.MinMiB > 0 {
		least = m.MinMiB
	}
	if savedMiB < int64(least) || savedMiB > int64(m.SizeMiB) {
		return errdefs.WithAdvice(fmt.Errorf("%w: the memory image holds a guest of %d MiB, outside what its description allows (hw:RAM %d MiB, at least %d)",
			errdefs.ErrImageIntegrity, savedMiB, m.SizeMiB, least),
			"the host that serialized it did not keep to the description: tell the site administrator; vws clone copies the workspace without its saved RAM, to boot afresh")
	}
	if savedMiB > freeMiB {
		return errdefs.WithAdvice(&errdefs.MetadataError{Path: "/vw:virtualWorkspace/hw:hardware/hw:RAM",
			Reason: fmt.Sprintf("the workspace was serialized with %d MiB of RAM, which it resumes with; this host has %d MiB free", savedMiB, freeMiB)},
			"deploy it on a host with that much free memory")
	}
	return nil
}
