package vmm

import (
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Disk is one block device of a guest.
type Disk struct {
	Path     string // absolute host path
	Format   string // "qcow2" | "raw"
	Target   string // guest device: vda, vdb, sda, hdc, xvda … (^(vd|sd|hd|xvd)[a-z]{1,2}$)
	Bus      string // "virtio" | "sata" | "scsi" | "ide" | "usb" | "xen"; "" → by target prefix (vd→virtio, sd→sata, hd→ide, xvd→xen)
	Device   string // "disk" | "cdrom"; "" → disk. A cdrom is always read-only.
	ReadOnly bool
	Boot     bool // boot from this disk (boot order 1, 2, … in Disks order) when no kernel is given
	// Scratch: an empty disk created for this deployment alone, whose contents are
	// not kept. It must be a writable qcow2 disk (not a cdrom) of SizeMiB; like every
	// disk it is not shareable.
	Scratch bool
	SizeMiB int64 // a scratch disk's virtual size: 1..MaxScratchMiB; 0 for other disks
}

// MaxScratchMiB is the largest scratch disk (64 TiB, the description schema's bound).
const MaxScratchMiB = 64 << 20

// NIC is one network interface of a guest.
type NIC struct {
	MAC    string // unicast, colon-separated hex ("52:54:00:xx:xx:xx"); required
	Model  string // "virtio" | "e1000" | "rtl8139"; "" → virtio
	Kind   string // "network" | "bridge" | "user"
	Source string // network or bridge name; empty for user
}

// Spec describes a guest in host terms.
type Spec struct {
	Name      string // ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$
	UUID      string // canonical lower-case 8-4-4-4-12
	Type      string // "kvm" | "qemu" | "xen"; "" → the Libvirt's DomainType() (Define fills it in)
	Arch      string // "" → x86_64; x86_64, i686, aarch64
	MemoryMiB int    // 16..1048576
	CPUs      int    // 1..256
	// CPUModel: "" (hypervisor default), "host-passthrough", "host-model" or a named
	// model. For type qemu (TCG) host-passthrough is impossible and becomes
	// <cpu mode='maximum'/> (QEMU's "-cpu max": every feature TCG emulates).
	CPUModel   string
	Kernel     string // absolute host path for direct kernel boot; "" → boot from disk
	Initrd     string // absolute host path; needs Kernel
	Cmdline    string // kernel command line: printable ASCII, ≤ 2048 bytes; needs Kernel
	Disks      []Disk
	NICs       []NIC
	ConsoleLog string // absolute host path the serial console (ttyS0) is appended to; "" → a pty
}

const maxCmdline = 2048

// maxPCCPUs is the most vCPUs QEMU's machine pc (i440fx) takes.
const maxPCCPUs = 255

// x86 reports whether the guest is an x86 one (Arch "" is x86_64).
func (s Spec) x86() bool { return s.Arch == "" || s.Arch == "x86_64" || s.Arch == "i686" }

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	uuidRE   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	targetRE = regexp.MustCompile(`^(vd|sd|hd|xvd)[a-z]{1,2}$`)
	macRE    = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$`)
	pathRE   = regexp.MustCompile(`^[A-Za-z0-9/._+@-]+$`)
)

var (
	domainTypes = []string{"kvm", "qemu", "xen"}
	arches      = []string{"x86_64", "i686", "aarch64"}
	formats     = []string{"qcow2", "raw"}
	buses       = []string{"virtio", "sata", "scsi", "ide", "usb", "xen"}
	devices     = []string{"disk", "cdrom"}
	nicModels   = []string{"virtio", "e1000", "rtl8139"}
	nicKinds    = []string{"network", "bridge", "user"}
)

// Validate checks every field; the error wraps ErrInvalidSpec and names the field and
// what is allowed.
func (s Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return invalid("name", "%q must match %s", s.Name, nameRE)
	}
	if !uuidRE.MatchString(s.UUID) {
		return invalid("uuid", "%q must be a canonical lower-case UUID (8-4-4-4-12 hex digits)", s.UUID)
	}
	if s.Type != "" && !slices.Contains(domainTypes, s.Type) {
		return invalid("type", "%q must be one of %s (or empty for the host's default)", s.Type, strings.Join(domainTypes, ", "))
	}
	if s.Arch != "" && !slices.Contains(arches, s.Arch) {
		return invalid("arch", "%q must be one of %s", s.Arch, strings.Join(arches, ", "))
	}
	if s.MemoryMiB < 16 || s.MemoryMiB > 1048576 {
		return invalid("memory", "%d MiB is outside 16..1048576", s.MemoryMiB)
	}
	if s.CPUs < 1 || s.CPUs > 256 {
		return invalid("cpus", "%d is outside 1..256", s.CPUs)
	}
	if s.CPUs > maxPCCPUs && s.Type != "" && s.Type != "xen" && s.x86() {
		// buildDomain gives x86 guests QEMU's machine pc (i440fx), which takes at most
		// 255 vCPUs: libvirt refuses to define more.
		return invalid("cpus", "%d is more than the %d vCPUs an x86 %s guest (machine pc) can have", s.CPUs, maxPCCPUs, s.Type)
	}
	switch s.CPUModel {
	case "", "host-passthrough", "host-model":
	default:
		if !nameRE.MatchString(s.CPUModel) {
			return invalid("cpu model", "%q must be host-passthrough, host-model or a model name matching %s", s.CPUModel, nameRE)
		}
	}
	if err := checkPath("kernel", s.Kernel, true); err != nil {
		return err
	}
	if err := checkPath("initrd", s.Initrd, true); err != nil {
		return err
	}
	if s.Kernel == "" && (s.Initrd != "" || s.Cmdline != "") {
		return invalid("kernel", "an initrd or a command line needs a kernel")
	}
	if len(s.Cmdline) > maxCmdline {
		return invalid("cmdline", "%d bytes is longer than %d", len(s.Cmdline), maxCmdline)
	}
	for i := 0; i < len(s.Cmdline); i++ {
		if c := s.Cmdline[i]; c < 0x20 || c > 0x7e {
			return invalid("cmdline", "byte %d is %q: only printable ASCII is allowed", i, c)
		}
	}
	if err := checkPath("console log", s.ConsoleLog, true); err != nil {
		return err
	}
	targets := map[string]bool{}
	for i, d := range s.Disks {
		if err := d.validate(i, s.Type); err != nil {
			return err
		}
		if targets[d.Target] {
			return invalid(diskField(i, "target"), "%q is used twice", d.Target)
		}
		// libvirt puts an IDE disk on the controller, bus and unit its target's letters
		// count to (4 per controller), and refuses to define a second controller on
		// machine pc ("Only 1 IDE controller is supported").
		if letters := d.Target[strings.IndexByte(d.Target, 'd')+1:]; d.bus() == "ide" && s.Type != "" && s.Type != "xen" && s.x86() &&
			(len(letters) > 1 || letters[0] > 'd') {
			return invalid(diskField(i, "target"), "%s on the ide bus is past the 4 drives of machine pc's one IDE controller: use hda to hdd (sda to sdd on bus ide), or another bus (sata or scsi: sdX, virtio: vdX)", d.Target)
		}
		targets[d.Target] = true
	}
	macs := map[string]bool{}
	for i, n := range s.NICs {
		if err := n.validate(i, s.Type == "xen"); err != nil {
			return err
		}
		mac := strings.ToLower(n.MAC)
		if macs[mac] {
			return invalid(nicField(i, "mac"), "%q is used twice", n.MAC)
		}
		macs[mac] = true
	}
	return nil
}

// validate checks d for a domain of type domType ("" when not known yet).
func (d Disk) validate(i int, domType string) error {
	if err := checkPath(diskField(i, "path"), d.Path, false); err != nil {
		return err
	}
	if !slices.Contains(formats, d.Format) {
		return invalid(diskField(i, "format"), "%q must be one of %s", d.Format, strings.Join(formats, ", "))
	}
	if !targetRE.MatchString(d.Target) {
		return invalid(diskField(i, "target"), "%q must match %s (vda, sdb, hdc, xvda …)", d.Target, targetRE)
	}
	if d.Bus != "" && !slices.Contains(buses, d.Bus) {
		return invalid(diskField(i, "bus"), "%q must be one of %s (or empty to follow the target)", d.Bus, strings.Join(buses, ", "))
	}
	if d.Device != "" && !slices.Contains(devices, d.Device) {
		return invalid(diskField(i, "device"), "%q must be one of %s", d.Device, strings.Join(devices, ", "))
	}
	if d.bus() == "xen" && domType != "" && domType != "xen" {
		// libvirt's QEMU driver defines such a disk and fails every start of the
		// domain ("unsupported disk bus 'xen'"): only Xen has that front-end.
		return invalid(diskField(i, "bus"), "xen (target %s) is a bus only a xen domain has, not a %s one: use virtio (target vdX), sata or scsi (sdX) or ide (hdX)", d.Target, domType)
	}
	if d.Scratch && (d.Format != "qcow2" || d.ReadOnly || d.Device == "cdrom") {
		return invalid(diskField(i, "scratch"), "a scratch disk (%s) must be a writable qcow2 disk, not format %q, read-only %v, device %q", d.Target, d.Format, d.ReadOnly, d.Device)
	}
	if d.Scratch && (d.SizeMiB < 1 || d.SizeMiB > MaxScratchMiB) {
		return invalid(diskField(i, "size"), "a scratch disk (%s) of %d MiB is outside 1..%d", d.Target, d.SizeMiB, MaxScratchMiB)
	}
	if !d.Scratch && d.SizeMiB != 0 {
		return invalid(diskField(i, "size"), "only a scratch disk is created with a size (%s has %d MiB)", d.Target, d.SizeMiB)
	}
	if d.Device == "cdrom" && d.bus() == "virtio" {
		return invalid(diskField(i, "bus"), "a cdrom cannot be on the virtio bus: use sata, scsi or ide (target sdX or hdX)")
	}
	return nil
}

// bus is the disk's bus with the default applied.
func (d Disk) bus() string {
	if d.Bus != "" {
		return d.Bus
	}
	switch {
	case strings.HasPrefix(d.Target, "vd"):
		return "virtio"
	case strings.HasPrefix(d.Target, "sd"):
		return "sata"
	case strings.HasPrefix(d.Target, "hd"):
		return "ide"
	default:
		return "xen"
	}
}

func (n NIC) validate(i int, xen bool) error {
	if !macRE.MatchString(n.MAC) {
		return invalid(nicField(i, "mac"), "%q must be six colon-separated hex bytes, e.g. 52:54:00:12:34:56", n.MAC)
	}
	if first, _ := strconv.ParseUint(n.MAC[:2], 16, 8); first&1 == 1 {
		return invalid(nicField(i, "mac"), "%q is a multicast address: the first byte must be even", n.MAC)
	}
	if n.Model != "" && !slices.Contains(nicModels, n.Model) && !(n.Model == "netfront" && xen) {
		return invalid(nicField(i, "model"), "%q must be one of %s (netfront on Xen)", n.Model, strings.Join(nicModels, ", "))
	}
	if !slices.Contains(nicKinds, n.Kind) {
		return invalid(nicField(i, "kind"), "%q must be one of %s", n.Kind, strings.Join(nicKinds, ", "))
	}
	if n.Kind == "user" {
		if n.Source != "" {
			return invalid(nicField(i, "source"), "%q must be empty for kind user", n.Source)
		}
		return nil
	}
	if !nameRE.MatchString(n.Source) {
		return invalid(nicField(i, "source"), "%s name %q must match %s", n.Kind, n.Source, nameRE)
	}
	return nil
}

// checkPath accepts an absolute, clean path made of [A-Za-z0-9/._+@-]: values that reach
// XML, QEMU's command line and the host's file system unquoted.
func checkPath(field, p string, optional bool) error {
	switch {
	case p == "" && optional:
		return nil
	case p == "":
		return invalid(field, "an absolute path is required")
	case !filepath.IsAbs(p):
		return invalid(field, "%q is not an absolute path", p)
	case filepath.Clean(p) != p:
		return invalid(field, "%q is not clean (want %q)", p, filepath.Clean(p))
	case !pathRE.MatchString(p):
		return invalid(field, "%q has characters outside [A-Za-z0-9/._+@-]", p)
	case p == "/":
		return invalid(field, "%q is not a file", p)
	}
	return nil
}

func diskField(i int, f string) string { return "disks[" + strconv.Itoa(i) + "]." + f }
func nicField(i int, f string) string  { return "nics[" + strconv.Itoa(i) + "]." + f }
