package describe

import (
	"encoding/base64"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// Category is the kind of workspace.
type Category string

// The workspace categories of the schema (vw:WorkspaceCategory).
const (
	CategoryVM             Category = "vm"
	CategoryDynamicAccount Category = "dynamic account"
)

// Description is the part of a validated workspace description the Factory acts on.
// Optional parts of the schema are nil pointers (or zero values where the schema's
// ranges make zero impossible, noted per field); defaults the schema documents for
// absent elements are filled in. Raw is the whole validated element.
type Description struct {
	Category Category
	// VMM is the VMM type a vm workspace needs (kvm, qemu, xen); "" means any the site
	// offers.
	VMM string
	// State is the requested workspace state (shutdown, paused, running, corrupted); ""
	// when the description has none.
	State string
	// RequestedLifetime is vw:lifeCycle/vw:requestedLifetime (0: none; years and months
	// count as 365 and 30 days, as everywhere in vws).
	RequestedLifetime time.Duration
	// TerminationTime is vw:lifeCycle/vw:terminationTime, in UTC (zero: none).
	TerminationTime time.Time

	Hardware *Hardware
	Network  *Network
	Software *Software
	// Startup is cap:capability/cap:startup, the program the workspace runs at boot.
	Startup *Startup

	// Raw is the validated vw:virtualWorkspace element, as sent, namespace declarations
	// included, for storing as resource properties. It is the root of its own document.
	Raw *etree.Element
}

// Hardware is hw:hardware.
type Hardware struct {
	Memory Memory
	CPU    CPU
	Disks  []Disk
}

// Memory is hw:RAM, in MiB. The schema's minimum is 16 MiB, so 0 means absent.
type Memory struct {
	SizeMiB int // the size asked for
	MinMiB  int // the least the site may grant; 0: not given
	MaxMiB  int // the most the workspace may grow to; 0: not given
}

// CPU is hw:CPU.
type CPU struct {
	Count        int
	Architecture string // x86_64, aarch64, ...; "": any
	Model        string // hypervisor CPU model; "": the site's default
}

// Disk is hw:disk.
type Disk struct {
	Target     string // guest device name: vda, sdb, ...
	Bus        string // "": the site's default
	Device     string // disk or cdrom; "": not given
	SizeMiB    int64  // 0: not given (the schema's minimum is 1)
	Image      *Image
	Partitions []Partition
	ReadOnly   bool
	Boot       bool
}

// Partition is hw:partition.
type Partition struct {
	Number     int
	Label      string
	MountPoint string
	Filesystem string
	SizeMiB    int64 // 0: not given
	Image      *Image
}

// Image is a reference to an image of the repository's pool (hw:DiskImageType,
// sw:ImageReferenceType): by name, by content digest, or both. Whether name and digest
// agree is for the image pool to check.
type Image struct {
	Name   string
	Digest string // sha256:<64 hex>
	Format string // qcow2, raw; "": not given
}

// Network is net:network. A present network with no NICs is a workspace without
// network interfaces; a nil *Network says nothing about the network.
type Network struct {
	NICs []NIC
}

// NIC is net:nic.
type NIC struct {
	Name  string
	MAC   string // "": the site assigns one
	Model string
	// Network and NetworkKind are the association: the site network the NIC joins and
	// its kind (network, bridge, user; "network" when absent).
	Network     string
	NetworkKind string
	IP          *IPConfig
}

// IPConfig is net:ip.
type IPConfig struct {
	Method       string // dhcp, static, none
	Address      string
	PrefixLength *int // nil: not given (0 is a valid prefix length)
	Gateway      string
	Nameservers  []string
	Hostname     string
}

// Software is sw:software.
type Software struct {
	OS        *OS
	Kernel    *Kernel
	Libraries []Library
	// Image is the base image of the root disk, when the hardware part names none.
	Image *Image
}

// OS is sw:os.
type OS struct {
	Family       string // linux, bsd, solaris, windows, other
	Distribution string
	Version      string
}

// Kernel is sw:kernel.
type Kernel struct {
	Version string
	Image   *Image // direct kernel boot; nil: the image's own boot loader
	Initrd  *Image
	Cmdline string
}

// Library is sw:library.
type Library struct {
	Name    string
	Version string
}

// Startup is cap:startup.
type Startup struct {
	Executable       string // absolute guest path
	Args             []string
	Env              []EnvVar
	WorkingDirectory string
	User             string
	Files            []File
	Output           string // console (the default) or discard
	OnExit           string // keep-running (the default), poweroff or reboot
}

// EnvVar is cap:environment.
type EnvVar struct {
	Name  string
	Value string
}

// File is cap:file: a file placed in the guest before the program starts.
type File struct {
	Path    string
	Mode    fs.FileMode // 0644 when absent
	Content []byte      // decoded when the description sent it as base64
}

// The names of the elements read, by namespace.
var (
	vw = func(l string) qname { return qname{vwsns.Workspace, l} }
	hw = func(l string) qname { return qname{vwsns.Hardware, l} }
	nt = func(l string) qname { return qname{vwsns.Network, l} }
	sw = func(l string) qname { return qname{vwsns.Software, l} }
	cp = func(l string) qname { return qname{vwsns.Capability, l} }
)

func (n *node) get(q qname) *node    { return n.child(q.ns, q.local) }
func (n *node) all(q qname) []*node  { return n.children(q.ns, q.local) }
func (n *node) val(q qname) string   { return n.get(q).str() }
func (n *node) collapsed() string    { return strings.Trim(n.str(), " \t\n") }
func (n *node) boolean(q qname) bool { v := n.get(q).collapsed(); return v == "true" || v == "1" }
func (n *node) present(q qname) bool { return n.get(q) != nil }
func (n *node) intVal(q qname) (int64, error) {
	c := n.get(q)
	if c == nil {
		return 0, nil
	}
	v, err := strconv.ParseInt(c.collapsed(), 10, 64)
	if err != nil {
		// The schema types are xs:int and xs:long, so libxml2 has accepted the value.
		return 0, fmt.Errorf("describe: %s: %q is not an integer: %w", c.path(), c.collapsed(), err)
	}
	return v, nil
}

// build reads the description out of the validated tree. The checks have run: values
// are what the schema and checkSemantics allow.
func build(root *node) (*Description, error) {
	d := &Description{State: root.val(vw("state"))}
	cat := root.get(vw("category"))
	d.Category = Category(cat.str())
	d.VMM, _ = cat.attr("vmm")
	var err error
	if lc := root.get(vw("lifeCycle")); lc != nil {
		if rl := lc.get(vw("requestedLifetime")); rl != nil {
			if d.RequestedLifetime, err = wsrf.ParseLifetime(rl.str()); err != nil {
				return nil, metaErr(rl.path(), "%v. Send a duration such as PT2H", err)
			}
			// Zero would read as "no lifetime asked for", and no workspace can live for
			// no time at all.
			if d.RequestedLifetime <= 0 {
				return nil, metaErr(rl.path(), "a requested lifetime of %s is no lifetime. Send a positive duration, or leave vw:requestedLifetime out for the site's default", rl.str())
			}
		}
		if tt := lc.get(vw("terminationTime")); tt != nil {
			if d.TerminationTime, err = wsrf.ParseDateTime(tt.str()); err != nil {
				return nil, metaErr(tt.path(), "%v; years before 0000 or after 9999 cannot be used. Send a time such as 2026-03-01T21:30:00Z", err)
			}
		}
	}
	if h := root.get(hw("hardware")); h != nil {
		if d.Hardware, err = buildHardware(h); err != nil {
			return nil, err
		}
	}
	if n := root.get(nt("network")); n != nil {
		if d.Network, err = buildNetwork(n); err != nil {
			return nil, err
		}
	}
	if s := root.get(sw("software")); s != nil {
		d.Software = buildSoftware(s)
	}
	if st := root.get(cp("capability")).get(cp("startup")); st != nil {
		if d.Startup, err = buildStartup(st); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func buildHardware(h *node) (*Hardware, error) {
	out := &Hardware{}
	ram := h.get(hw("RAM"))
	var vals [3]int64
	for i, name := range []string{"size", "minimum", "maximum"} {
		v, err := ram.intVal(hw(name))
		if err != nil {
			return nil, err
		}
		vals[i] = v
	}
	out.Memory = Memory{SizeMiB: int(vals[0]), MinMiB: int(vals[1]), MaxMiB: int(vals[2])}
	cpu := h.get(hw("CPU"))
	count, err := cpu.intVal(hw("count"))
	if err != nil {
		return nil, err
	}
	out.CPU = CPU{Count: int(count), Architecture: cpu.val(hw("architecture")), Model: cpu.val(hw("model"))}
	for _, dn := range h.all(hw("disk")) {
		size, err := dn.intVal(hw("size"))
		if err != nil {
			return nil, err
		}
		disk := Disk{
			Target:   dn.val(hw("target")),
			Bus:      dn.val(hw("bus")),
			Device:   dn.val(hw("device")),
			SizeMiB:  size,
			Image:    image(dn.get(hw("image")), hw),
			ReadOnly: dn.boolean(hw("readOnly")),
			Boot:     dn.boolean(hw("boot")),
		}
		for _, pn := range dn.all(hw("partition")) {
			num, err := pn.intVal(hw("number"))
			if err != nil {
				return nil, err
			}
			psize, err := pn.intVal(hw("size"))
			if err != nil {
				return nil, err
			}
			disk.Partitions = append(disk.Partitions, Partition{
				Number:     int(num),
				Label:      pn.val(hw("label")),
				MountPoint: pn.val(hw("mountPoint")),
				Filesystem: pn.val(hw("filesystem")),
				SizeMiB:    psize,
				Image:      image(pn.get(hw("image")), hw),
			})
		}
		out.Disks = append(out.Disks, disk)
	}
	return out, nil
}

func image(n *node, in func(string) qname) *Image {
	if n == nil {
		return nil
	}
	return &Image{Name: n.val(in("name")), Digest: n.val(in("digest")), Format: n.val(in("format"))}
}

func buildNetwork(n *node) (*Network, error) {
	out := &Network{NICs: []NIC{}}
	for _, nn := range n.all(nt("nic")) {
		assoc := nn.get(nt("association"))
		nic := NIC{
			Name:        nn.val(nt("name")),
			MAC:         nn.val(nt("mac")),
			Model:       nn.val(nt("model")),
			Network:     assoc.val(nt("name")),
			NetworkKind: assoc.val(nt("kind")),
		}
		if nic.NetworkKind == "" {
			nic.NetworkKind = "network"
		}
		if ip := nn.get(nt("ip")); ip != nil {
			cfg := &IPConfig{
				Method:   ip.val(nt("method")),
				Address:  ip.val(nt("address")),
				Gateway:  ip.val(nt("gateway")),
				Hostname: ip.val(nt("hostname")),
			}
			if ip.present(nt("prefixLength")) {
				pl, err := ip.intVal(nt("prefixLength"))
				if err != nil {
					return nil, err
				}
				p := int(pl)
				cfg.PrefixLength = &p
			}
			for _, ns := range ip.all(nt("nameserver")) {
				cfg.Nameservers = append(cfg.Nameservers, ns.str())
			}
			nic.IP = cfg
		}
		out.NICs = append(out.NICs, nic)
	}
	return out, nil
}

func buildSoftware(s *node) *Software {
	out := &Software{Image: image(s.get(sw("image")), sw)}
	if o := s.get(sw("os")); o != nil {
		out.OS = &OS{Family: o.val(sw("family")), Distribution: o.val(sw("distribution")), Version: o.val(sw("version"))}
	}
	if k := s.get(sw("kernel")); k != nil {
		out.Kernel = &Kernel{
			Version: k.val(sw("version")),
			Image:   image(k.get(sw("image")), sw),
			Initrd:  image(k.get(sw("initrd")), sw),
			Cmdline: k.val(sw("cmdline")),
		}
	}
	for _, l := range s.all(sw("library")) {
		out.Libraries = append(out.Libraries, Library{Name: l.val(sw("name")), Version: l.val(sw("version"))})
	}
	return out
}

func buildStartup(st *node) (*Startup, error) {
	out := &Startup{
		Executable:       st.val(cp("executable")),
		WorkingDirectory: st.val(cp("workingDirectory")),
		User:             st.val(cp("user")),
		Output:           st.val(cp("output")),
		OnExit:           st.val(cp("onExit")),
	}
	if out.Output == "" {
		out.Output = "console"
	}
	if out.OnExit == "" {
		out.OnExit = "keep-running"
	}
	for _, a := range st.all(cp("argument")) {
		out.Args = append(out.Args, a.str())
	}
	for _, e := range st.all(cp("environment")) {
		out.Env = append(out.Env, EnvVar{Name: e.val(cp("name")), Value: e.val(cp("value"))})
	}
	for _, f := range st.all(cp("file")) {
		file := File{Path: f.val(cp("path")), Mode: 0o644}
		if m := f.get(cp("mode")); m != nil {
			mode, err := strconv.ParseUint(m.str(), 8, 32)
			if err != nil {
				return nil, fmt.Errorf("describe: %s: %q is not an octal mode: %w", m.path(), m.str(), err)
			}
			file.Mode = fs.FileMode(mode)
		}
		content, err := fileContent(f)
		if err != nil {
			return nil, err
		}
		file.Content = content
		out.Files = append(out.Files, file)
	}
	return out, nil
}

// fileContent decodes a cap:file's content. base64 may be wrapped over lines, as
// xs:base64Binary allows.
func fileContent(f *node) ([]byte, error) {
	c := f.get(cp("content"))
	if f.val(cp("encoding")) != "base64" {
		return []byte(c.str()), nil
	}
	clean := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' {
			return -1
		}
		return r
	}, c.str())
	b, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return nil, metaErr(c.path(), "the content is not valid base64 (%v). Encode the file with standard base64 (RFC 4648, with padding)", err)
	}
	return b, nil
}
