// Package hostfit decides whether a workspace description fits a host: the check a
// Manager makes before it deploys, and the Repository makes for each announced host
// when it places a workspace. One check, so that a host placement chose does not then
// refuse the deploy for a reason placement did not see.
package hostfit

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/vws-grid/vws/internal/describe"
	"github.com/vws-grid/vws/internal/errdefs"
)

// Offer is what a host can run.
type Offer struct {
	DomainType string // kvm, qemu or xen
	Arch       string
	CPUs       int
	FreeMiB    int64
	// Networks are what a NIC may join: the host's libvirt networks (kind network),
	// when known, and the host bridges its site publishes (kind bridge). A bridge not
	// listed is not the guests' to join, whatever the host has.
	Networks []Network
	// NetworksKnown says the host's libvirt networks could be listed. The published
	// bridges come from the manager's configuration: they are known either way.
	NetworksKnown bool
}

// The kinds of Network, as net:kind names them.
const (
	KindNetwork = "network" // a libvirt network; "" means the same
	KindBridge  = "bridge"  // a host bridge the site publishes
	KindUser    = "user"    // QEMU user-mode networking: joins nothing of the host's
)

// Network is one of a host's libvirt networks, or a bridge its site publishes.
type Network struct {
	Name   string
	Kind   string // KindNetwork (or "") or KindBridge
	Active bool   // started: a guest joining it can start (a published bridge: true)
}

// IsBridge says whether n is a published bridge rather than a libvirt network.
func (n Network) IsBridge() bool { return n.Kind == KindBridge }

// Network is the host's libvirt network named name, if it has one.
func (o Offer) Network(name string) (Network, bool) {
	for _, n := range o.Networks {
		if n.Name == name && !n.IsBridge() {
			return n, true
		}
	}
	return Network{}, false
}

// PublishesBridge says whether the host's site publishes the bridge named name.
func (o Offer) PublishesBridge(name string) bool {
	return slices.ContainsFunc(o.Networks, func(n Network) bool { return n.IsBridge() && n.Name == name })
}

// NetworkNames lists the host's libvirt networks for a message, those not started
// marked.
func (o Offer) NetworkNames() string {
	var names []string
	for _, n := range o.Networks {
		switch {
		case n.IsBridge():
		case n.Active:
			names = append(names, n.Name)
		default:
			names = append(names, n.Name+" (not started)")
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Bridges lists the bridges the host publishes.
func (o Offer) Bridges() []string {
	var names []string
	for _, n := range o.Networks {
		if n.IsBridge() {
			names = append(names, n.Name)
		}
	}
	return names
}

// VMMTypes lists the VMM types a description may ask for on this host: a KVM host
// also runs plain QEMU guests; a TCG-only host does not offer KVM.
func (o Offer) VMMTypes() []string {
	if o.DomainType == "kvm" {
		return []string{"kvm", "qemu"}
	}
	return []string{o.DomainType}
}

// Architectures lists the guest architectures the host runs: its own, and on x86_64
// also i686.
func (o Offer) Architectures() []string {
	if o.Arch == "x86_64" {
		return []string{"x86_64", "i686"}
	}
	return []string{o.Arch}
}

// What a manager defines at most (vmm.Spec's ranges): a host with more CPUs, memory
// or another architecture still cannot give a guest more, and placement must not
// choose it for a deploy its manager would refuse.
const (
	MaxCPUs      = 256
	MaxMemoryMiB = 1 << 20
	// MaxPCCPUs is the most an x86 qemu/kvm guest has (QEMU's machine pc).
	MaxPCCPUs = 255
)

// DefinedArchitectures are the guest architectures a manager defines domains for.
var DefinedArchitectures = []string{"x86_64", "i686", "aarch64"}

// Fit is what a fitting description gets on the host.
type Fit struct {
	Arch      string // the guest's architecture
	MemoryMiB int    // the memory granted
}

// Check says what d gets on the host, or which element of d the host cannot
// satisfy (an *errdefs.MetadataError with advice).
func Check(d *describe.Description, o Offer) (Fit, error) {
	if d.Category != describe.CategoryVM {
		return Fit{}, metadataErr("/vw:virtualWorkspace/vw:category", fmt.Sprintf("a manager deploys vm workspaces, not %q", d.Category), "")
	}
	if d.VMM != "" && !slices.Contains(o.VMMTypes(), d.VMM) {
		return Fit{}, metadataErr("/vw:virtualWorkspace/vw:category/@vmm",
			fmt.Sprintf("the workspace needs VMM %q; this host offers %s", d.VMM, strings.Join(o.VMMTypes(), ", ")),
			"deploy it on a host of that VMM type, or change the description's vmm attribute")
	}
	hw := d.Hardware
	if hw == nil {
		return Fit{}, metadataErr("/vw:virtualWorkspace/hw:hardware", "a vm workspace needs its hardware described", "")
	}
	arch := hw.CPU.Architecture
	if arch == "" {
		arch = o.Arch
		if !slices.Contains(DefinedArchitectures, arch) {
			// The description names none: it is the host that is of the wrong kind.
			return Fit{}, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU",
				fmt.Sprintf("this host is %s, and a manager runs only %s guests", o.Arch, strings.Join(DefinedArchitectures, ", ")),
				fmt.Sprintf("deploy it on a host of one of those architectures (%s)", strings.Join(DefinedArchitectures, ", ")))
		}
	}
	if !slices.Contains(DefinedArchitectures, arch) {
		return Fit{}, undefinedArch(arch)
	}
	if !slices.Contains(o.Architectures(), arch) {
		return Fit{}, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture",
			fmt.Sprintf("the workspace needs architecture %s; this host is %s", arch, o.Arch), "deploy it on a host of that architecture")
	}
	if hw.CPU.Count > MaxCPUs {
		return Fit{}, tooManyCPUs(hw.CPU.Count)
	}
	if x86 := arch == "x86_64" || arch == "i686"; x86 && o.DomainType != "xen" && hw.CPU.Count > MaxPCCPUs {
		// The manager gives x86 qemu/kvm guests QEMU's machine pc (vmm.Spec refuses more).
		return Fit{}, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count",
			fmt.Sprintf("the workspace asks for %d CPUs; an x86 %s guest (machine pc) has at most %d", hw.CPU.Count, o.DomainType, MaxPCCPUs),
			"ask for fewer CPUs")
	}
	if hw.CPU.Count > o.CPUs {
		return Fit{}, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count",
			fmt.Sprintf("the workspace asks for %d CPUs; this host has %d", hw.CPU.Count, o.CPUs), "ask for fewer CPUs or deploy on a larger host")
	}
	// The disk layout too, so that placement does not choose a host for a workspace
	// whose disks the manager would refuse there.
	if _, err := Disks(hw.Disks); err != nil {
		return Fit{}, err
	}
	if err := checkBuses(hw.Disks, o.DomainType); err != nil {
		return Fit{}, err
	}
	mem, err := grantMemory(hw.Memory, o.FreeMiB)
	if err != nil {
		return Fit{}, err
	}
	if d.Network != nil {
		for i, nic := range d.Network.NICs {
			if err := checkNIC(i, nic, o); err != nil {
				return Fit{}, err
			}
		}
	}
	if err := Addressing(d.Network); err != nil {
		return Fit{}, err
	}
	return Fit{Arch: arch, MemoryMiB: mem}, nil
}

// Addressing refuses the net:ip settings a manager would not apply: it writes no
// network configuration into the guest, which configures its interfaces as its image
// does (by DHCP, for cloud images), and hands it only a host name, the first one a
// NIC gives. So net:method dhcp and net:hostname are taken; a static address, method
// none, a prefix length, gateway or name servers, or a second host name, would be
// silently something else. The Factory refuses at Create what it refuses.
func Addressing(n *describe.Network) error {
	if n == nil {
		return nil
	}
	const elsewhere = "have the network's DHCP server hand the NIC its address, gateway and name servers (a libvirt network's <host> entry for its net:mac), or configure them in the base image"
	const ignored = "a manager writes no network configuration into the guest, which configures its interfaces as its image does (by DHCP, for cloud images): only net:hostname reaches it"
	hostname := ""
	for i, nic := range n.NICs {
		ip := nic.IP
		if ip == nil {
			continue
		}
		path := fmt.Sprintf("/vw:virtualWorkspace/net:network/net:nic[%d]/net:ip/", i+1)
		switch ip.Method {
		case "static":
			return metadataErr(path+"net:method", fmt.Sprintf("NIC %s asks for a static address (net:method static); %s", nic.Name, ignored),
				"use net:method dhcp and leave net:address, net:prefixLength, net:gateway and net:nameserver out; "+elsewhere)
		case "none":
			return metadataErr(path+"net:method", fmt.Sprintf("NIC %s asks for no address (net:method none); %s", nic.Name, ignored),
				"use net:method dhcp, or leave net:ip out; to keep the interface down, configure that in the base image")
		}
		for _, set := range []struct {
			elem string
			is   bool
		}{
			{"net:address", ip.Address != ""},
			{"net:prefixLength", ip.PrefixLength != nil},
			{"net:gateway", ip.Gateway != ""},
			{"net:nameserver[1]", len(ip.Nameservers) > 0},
		} {
			if set.is {
				elem, _, _ := strings.Cut(set.elem, "[")
				return metadataErr(path+set.elem, fmt.Sprintf("NIC %s gives %s; %s", nic.Name, elem, ignored),
					fmt.Sprintf("leave %s out; %s", elem, elsewhere))
			}
		}
		switch {
		case ip.Hostname == "" || ip.Hostname == hostname:
		case hostname == "":
			hostname = ip.Hostname
		default:
			return metadataErr(path+"net:hostname", fmt.Sprintf("NIC %s gives host name %s; the guest takes one host name, an earlier NIC's (%s)", nic.Name, ip.Hostname, hostname),
				"give net:hostname on one NIC only: the first NIC's that has one is the guest's")
		}
	}
	return nil
}

// Defined says whether a manager defines hw at all, on any host: an architecture it
// runs guests of ("" is the host's own), at most MaxCPUs CPUs and at least as little
// as MaxMemoryMiB of memory. The Factory refuses at Create what it refuses, so no
// workspace is made that no host can deploy.
func Defined(hw *describe.Hardware) error {
	if a := hw.CPU.Architecture; a != "" && !slices.Contains(DefinedArchitectures, a) {
		return undefinedArch(a)
	}
	if hw.CPU.Count > MaxCPUs {
		return tooManyCPUs(hw.CPU.Count)
	}
	least := hw.Memory.SizeMiB
	if hw.Memory.MinMiB > 0 {
		least = hw.Memory.MinMiB
	}
	if least > MaxMemoryMiB {
		return tooMuchMemory(least)
	}
	return nil
}

func undefinedArch(arch string) error {
	return metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:architecture",
		fmt.Sprintf("the workspace needs architecture %s; a manager runs %s guests", arch, strings.Join(DefinedArchitectures, ", ")),
		"describe a workspace of one of those architectures")
}

func tooManyCPUs(n int) error {
	return metadataErr("/vw:virtualWorkspace/hw:hardware/hw:CPU/hw:count",
		fmt.Sprintf("the workspace asks for %d CPUs; a manager gives a guest at most %d", n, MaxCPUs), "ask for fewer CPUs")
}

func tooMuchMemory(least int) error {
	return metadataErr("/vw:virtualWorkspace/hw:hardware/hw:RAM",
		fmt.Sprintf("the workspace needs at least %d MiB; a manager gives a guest at most %d MiB", least, MaxMemoryMiB),
		fmt.Sprintf("lower hw:RAM (or hw:minimum) to at most %d", MaxMemoryMiB))
}

// checkNIC says whether the host has what NIC i joins. A bridge is checked even when
// the libvirt networks are not known: a guest on an unpublished bridge would sit on
// whatever the host's bridge of that name carries (a management network, the
// traffic behind a filtered libvirt network), as an address of its user's choosing.
func checkNIC(i int, nic describe.NIC, o Offer) error {
	association := fmt.Sprintf("/vw:virtualWorkspace/net:network/net:nic[%d]/net:association", i+1)
	switch nic.NetworkKind {
	case "", KindNetwork:
		if _, ok := o.Network(nic.Network); o.NetworksKnown && !ok {
			return metadataErr(association+"/net:name",
				fmt.Sprintf("NIC %s joins network %q; this host's networks are: %s", nic.Name, nic.Network, o.NetworkNames()),
				fmt.Sprintf("name one of them, or deploy the workspace on a host that has network %q", nic.Network))
		}
	case KindBridge:
		if !o.PublishesBridge(nic.Network) {
			published := "publishes no bridge"
			if b := o.Bridges(); len(b) > 0 {
				published = "publishes only bridges " + strings.Join(b, ", ")
			}
			return metadataErr(association+"/net:name",
				fmt.Sprintf("NIC %s joins host bridge %q, which this host does not publish: it %s", nic.Name, nic.Network, published),
				fmt.Sprintf("join a libvirt network of the host instead (net:kind network), or ask the site's administrators to publish bridge %q (vws serve --bridge %s) if guests may join it", nic.Network, nic.Network))
		}
	case KindUser:
		// QEMU's user-mode networking joins nothing of the host's.
	default:
		return metadataErr(association+"/net:kind", fmt.Sprintf("NIC %s joins a network of kind %q, which a manager does not know", nic.Name, nic.NetworkKind),
			"use kind network, bridge or user")
	}
	return nil
}

// CheckBridgeName refuses a name that cannot be a Linux network interface's (at most
// 15 characters, of the ones net:NetworkName allows), the bridges a site publishes.
func CheckBridgeName(name string) error {
	if !bridgeNameRE.MatchString(name) {
		return fmt.Errorf("bridge name %q is not a network interface name: give 1 to 15 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

var bridgeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$`)

// grantMemory grants the requested size when the host has it free, else as much as
// the host has down to the description's minimum; never more than MaxMemoryMiB.
func grantMemory(m describe.Memory, freeMiB int64) (int, error) {
	most := min(freeMiB, MaxMemoryMiB)
	if int64(m.SizeMiB) <= most {
		return m.SizeMiB, nil
	}
	if m.MinMiB > 0 && int64(m.MinMiB) <= most {
		return int(most), nil
	}
	least := m.SizeMiB
	if m.MinMiB > 0 {
		least = m.MinMiB
	}
	if least > MaxMemoryMiB {
		return 0, tooMuchMemory(least)
	}
	return 0, metadataErr("/vw:virtualWorkspace/hw:hardware/hw:RAM",
		fmt.Sprintf("the workspace needs at least %d MiB; this host has %d MiB free", least, freeMiB),
		"deploy it on a host with more free memory, or lower hw:RAM/hw:minimum")
}

func metadataErr(path, reason, advice string) error {
	err := error(&errdefs.MetadataError{Path: path, Reason: reason})
	if advice != "" {
		err = errdefs.WithAdvice(err, advice)
	}
	return err
}

// MaxScratchMiB is the largest scratch disk a manager creates (vmm.Spec's range):
// hw:DiskMiB's bound, 64 TiB.
const MaxScratchMiB = 64 << 20

// MaxScratchDisks bounds a workspace's scratch disks: each is a file the deploy
// creates and a PCI slot of the guest, and the schema sets no bound on disks.
const MaxScratchDisks = 8

// IsScratch says whether a disk is an empty scratch disk: a disk (not a CD-ROM drive)
// with a size, no image and no partitions. A manager creates it empty at each deploy
// and keeps nothing of it: it is not handed back to the Repository.
func IsScratch(d describe.Disk) bool {
	return d.Device != "cdrom" && d.Image == nil && len(d.Partitions) == 0 && d.SizeMiB != 0
}

// AddedRootTarget is the target of the root disk a Manager adds when no disk of the
// description names an image: the guest's first virtio disk.
const AddedRootTarget = "vda"

// Disks checks d's disks against the layout every Manager deploys — one image-backed
// root disk (the workspace's base image; one is added, at AddedRootTarget, when no disk names an image),
// up to MaxScratchDisks empty scratch disks (IsScratch), and at most one empty CD-ROM drive,
// which carries the configuration CD — and returns the root disk's index, -1 when the
// Manager adds it. The Factory refuses at Create what it refuses, so no workspace is
// made that no host can deploy.
func Disks(disks []describe.Disk) (root int, err error) {
	root = rootDisk(disks)
	cdrom := false
	scratch := 0
	for i, disk := range disks {
		path := fmt.Sprintf("/vw:virtualWorkspace/hw:hardware/hw:disk[%d]", i+1)
		if root < 0 && disk.Target == AddedRootTarget {
			// libvirt orders a domain's virtio disks by target, and the guest names
			// them in that order: the added root disk would come second, and a kernel
			// told root=/dev/vda would find this disk instead.
			return -1, metadataErr(path+"/hw:target", fmt.Sprintf("target %s, which the root disk takes: no disk names an image, so a manager adds the root disk, backed by the base image, as the guest's first virtio disk", AddedRootTarget),
				"give this disk another target (vdb, say), or describe the root disk with an hw:image and the target it is to have")
		}
		switch {
		case i == root:
			if err := checkRoot(path, disk); err != nil {
				return -1, err
			}
		case disk.Device == "cdrom" && disk.Image == nil && !cdrom:
			cdrom = true
		case disk.Device == "cdrom" && disk.Image == nil:
			return -1, metadataErr(path, "a second empty CD-ROM drive; the configuration CD takes the first, and a manager attaches no other",
				"describe one empty CD-ROM drive")
		case disk.Device == "cdrom":
			return -1, metadataErr(path, "a CD-ROM drive with an image; a manager attaches only the configuration CD, in an empty drive",
				"leave the drive empty, and put what the image holds into the base image or the startup files")
		case disk.Image != nil:
			return -1, metadataErr(path, "a second image-backed disk; a manager deploys one, backed by the workspace's base image",
				"put what the extra image holds into the base image (a larger or partitioned one)")
		case IsScratch(disk):
			if err := checkScratch(path, disk); err != nil {
				return -1, err
			}
			if scratch++; scratch > MaxScratchDisks {
				return -1, metadataErr(path, fmt.Sprintf("scratch disk number %d; a manager creates at most %d per workspace", scratch, MaxScratchDisks),
					fmt.Sprintf("describe at most %d scratch disks: fewer, larger ones hold the same", MaxScratchDisks))
			}
		case len(disk.Partitions) > 0:
			const blank = "for empty space, describe a blank disk with hw:size and no partitions, which each deploy creates empty (its contents are not kept)"
			if !slices.ContainsFunc(disk.Partitions, func(p describe.Partition) bool { return p.Image != nil }) {
				return -1, metadataErr(path, "a disk of partitions without images; a manager creates no partitions",
					"partitions need images, and a manager does not assemble those into a disk either: put what the partitions are to hold into the base image; "+blank)
			}
			return -1, metadataErr(path, "a disk of partition images; a manager does not assemble partition images into a disk",
				"put what the partition images hold into the base image (a partitioned one); "+blank)
		default: // no image, no partitions, no size: the description's rules refuse it first
			return -1, metadataErr(path, "a disk with no image, no partitions and no size",
				"give the disk an hw:size, and a manager creates it empty at each deploy (its contents are not kept)")
		}
	}
	return root, nil
}

// checkBuses refuses a disk on the xen bus (hw:bus xen, or an xvd target with no
// bus) for a domain type other than xen: vmm.Spec refuses it there, as libvirt's QEMU
// driver would define the domain and fail every start. "" is a type not known yet.
func checkBuses(disks []describe.Disk, domType string) error {
	if domType == "" || domType == "xen" {
		return nil
	}
	for i, d := range disks {
		path := fmt.Sprintf("/vw:virtualWorkspace/hw:hardware/hw:disk[%d]", i+1)
		switch {
		case d.Bus == "xen":
			path += "/hw:bus"
		case d.Bus == "" && strings.HasPrefix(d.Target, "xvd"):
			path += "/hw:target"
		default:
			continue
		}
		return metadataErr(path, fmt.Sprintf("xen (target %s) is a bus only a xen domain has, not a %s one", d.Target, domType),
			"use virtio (target vdX), sata or scsi (sdX) or ide (hdX), or deploy it on a host of domain type xen")
	}
	return nil
}

// checkRoot refuses what a manager would drop from the root disk: it deploys the
// workspace's overlay on its base image, of the image's size, writable, as the image
// is partitioned. A larger size, a read-only disk or a partition table asked for would
// otherwise be silently something else.
func checkRoot(path string, d describe.Disk) error {
	if d.SizeMiB != 0 {
		return metadataErr(path+"/hw:size", fmt.Sprintf("a size (%d MiB) on the image-backed root disk; a manager deploys it at its base image's size", d.SizeMiB),
			"leave hw:size out of the root disk; for more space, describe an empty scratch disk (hw:size, no hw:image), or import a larger base image")
	}
	if d.ReadOnly {
		return metadataErr(path+"/hw:readOnly", "a read-only root disk; a manager deploys the root disk writable, on the workspace's own overlay",
			"leave hw:readOnly out (or false); the base image itself is never written")
	}
	if len(d.Partitions) > 0 {
		return metadataErr(path+"/hw:partition[1]", "partitions on the image-backed root disk; a manager creates no partitions, the disk holds the base image's",
			"leave hw:partition out of the root disk, and import a partitioned base image laid out as needed")
	}
	return nil
}

// checkScratch refuses what a scratch disk cannot be: a size outside hw:DiskMiB's
// bounds (a description the schema has not checked), a read-only one (it would stay
// empty) or a boot disk (it holds nothing to boot).
func checkScratch(path string, d describe.Disk) error {
	if d.SizeMiB < 1 || d.SizeMiB > MaxScratchMiB {
		return metadataErr(path+"/hw:size", fmt.Sprintf("a scratch disk of %d MiB; a manager creates scratch disks of 1 to %d MiB", d.SizeMiB, MaxScratchMiB),
			fmt.Sprintf("give hw:size between 1 and %d", MaxScratchMiB))
	}
	if d.ReadOnly {
		return metadataErr(path+"/hw:readOnly", "a read-only scratch disk; a manager creates it empty, and read-only it would stay so",
			"leave hw:readOnly out (or false)")
	}
	if d.Boot {
		return metadataErr(path+"/hw:boot", "a scratch disk marked to boot; it is created empty and holds nothing to boot",
			"mark the image-backed disk hw:boot instead")
	}
	return nil
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
