package vmm

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/beevik/etree"
	"libvirt.org/go/libvirtxml"
)

// The domain XML inside a save image comes from whichever host last ran the workspace
// (through the Repository), and is what libvirt restores: a host taken over could put
// a QEMU command-line passthrough, a host block device or bridge, a socket or a
// device's backing path there and have it run on every host the workspace moves to.
// checkSaved holds it to the spec — what buildDomain makes of it, plus what the
// hypervisor itself fills in (controllers, inputs, addresses, the emulator) — and
// sanitizeSaved drops what the restoring host chooses for itself.

// savedDevices are the device kinds a saved domain may hold: those buildDomain makes,
// checked one by one, and those the hypervisor adds on its own.
var savedDevices = map[string]bool{
	"Emulator": true, "Disks": true, "Interfaces": true, "Serials": true, "Consoles": true,
	"Controllers": true, "Inputs": true, "Videos": true, "MemBalloon": true, "Audios": true,
}

// savedDomainFields are what a saved <domain> may hold beside its devices: what
// buildDomain sets, and what libvirt fills in itself (id, currentMemory, the cgroup
// partition, security labels). Anything else (scheduling, pinning, cgroup placement,
// block I/O, memory or NUMA tuning, I/O threads, perf counters...) vws never defines,
// and would act on the restoring host's CPUs, devices and cgroups: an allow-list, so
// an element this list forgot is refused rather than restored.
var savedDomainFields = map[string]bool{
	"XMLName": true, "Type": true, "ID": true, "Name": true, "UUID": true, "Memory": true, "CurrentMemory": true,
	"VCPU": true, "Resource": true, "OS": true, "Features": true, "CPU": true, "Clock": true,
	"OnPoweroff": true, "OnReboot": true, "OnCrash": true, "Devices": true, "SecLabel": true,
	"PM": true, // the guest's sleep states (buildDomain offers none): nothing of the host's
}

// emulatorRE are the QEMU binaries a distribution installs.
var emulatorRE = regexp.MustCompile(`^/usr(/local)?/(bin|libexec|lib(64)?/xen/bin)/(qemu-system-[a-z0-9_]+|qemu-kvm|kvm)$`)

// checkSaved refuses a saved domain that is not the one s describes.
func checkSaved(dom *libvirtxml.Domain, s Spec) error {
	mem, err := memoryMiB(dom.Memory)
	if err != nil {
		return invalid("memory", "the saved domain's memory: %v", err)
	}
	if mem != int64(s.MemoryMiB) {
		return invalid("memory", "the memory image holds a guest of %d MiB; the spec gives it %d MiB", mem, s.MemoryMiB)
	}
	if dom.VCPU == nil || int(dom.VCPU.Value) != s.CPUs {
		n := 0
		if dom.VCPU != nil {
			n = int(dom.VCPU.Value)
		}
		return invalid("cpus", "the memory image holds a guest of %d vCPUs; the spec gives it %d", n, s.CPUs)
	}
	if dom.QEMUCommandline != nil || dom.QEMUCapabilities != nil || dom.QEMUOverride != nil || dom.QEMUDeprecation != nil ||
		dom.LXCNamespace != nil || dom.BHyveCommandline != nil || dom.VMWareDataCenterPath != nil || dom.XenCommandline != nil {
		return invalid("saved domain", "it passes arguments through to the hypervisor, which no workspace description does")
	}
	if dom.Bootloader != "" || dom.BootloaderArgs != "" || dom.MemoryBacking != nil || dom.IDMap != nil || dom.MaximumMemory != nil || dom.LaunchSecurity != nil {
		return invalid("saved domain", "it names a bootloader, memory backing, ID map, memory hotplug or launch security, which no workspace description does")
	}
	// A coredump on_crash would have each crash write the guest's RAM to this host's
	// disk (and coredump-restart boot it to crash again).
	for _, a := range []struct{ element, saved, want string }{
		{"on_poweroff", dom.OnPoweroff, onPoweroff}, {"on_reboot", dom.OnReboot, onReboot}, {"on_crash", dom.OnCrash, onCrash},
	} {
		if a.saved != "" && a.saved != a.want {
			return invalid("saved domain", "its %s is %q, not %q as vws defines every domain", a.element, a.saved, a.want)
		}
	}
	if len(dom.SysInfo) > 0 {
		// A fw_cfg entry may name a host file, which libvirt labels for QEMU and QEMU
		// hands to the guest.
		return invalid("saved domain", "it has sysinfo (SMBIOS tables or fw_cfg entries, which may name host files), which no workspace description makes")
	}
	for _, l := range dom.SecLabel {
		if l.Type != "" && l.Type != "dynamic" {
			return invalid("saved domain", "its security label is %q, not the hypervisor's own (dynamic)", l.Type)
		}
		// A dynamic label is made from the base the domain names, if any: SELinux
		// would run QEMU in a context of the saving host's choosing (unconfined_t).
		if l.BaseLabel != "" {
			return invalid("saved domain", "its security label is made from a base label of its own (%q), not the hypervisor's", l.BaseLabel)
		}
	}
	if os := dom.OS; os != nil {
		if os.Loader != nil || os.NVRam != nil || os.VarStore != nil || os.Firmware != "" || os.FirmwareInfo != nil || os.Init != "" ||
			len(os.InitArgs) > 0 || os.Shim != "" || os.DTB != "" || os.ACPI != nil {
			return invalid("saved domain", "its <os> loads firmware, a device tree, ACPI tables or an init of its own, which no workspace description does")
		}
	}
	v := reflect.ValueOf(*dom)
	for i := 0; i < v.NumField(); i++ {
		if f := v.Type().Field(i); !v.Field(i).IsZero() && !savedDomainFields[f.Name] {
			return invalid("saved domain", "it has <%s>, which vws never defines (host tuning or placement of the saving host's choosing)", xmlElement(f))
		}
	}
	// libvirt places every guest in /machine unless told otherwise.
	if r := dom.Resource; r != nil && (r.Partition != "" && r.Partition != "/machine" || r.FibreChannel != nil) {
		return invalid("saved domain", "its <resource> places it in cgroup partition %q or tags its I/O, not libvirt's /machine", r.Partition)
	}
	d := dom.Devices
	if d == nil {
		return nil
	}
	v = reflect.ValueOf(*d)
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if !v.Field(i).IsZero() && !savedDevices[name] {
			return invalid("saved domain", "it has %s devices, which no workspace description makes", strings.ToLower(name))
		}
	}
	if d.Emulator != "" && !emulatorRE.MatchString(d.Emulator) {
		return invalid("saved domain", "its emulator %q is not a QEMU this host would run", d.Emulator)
	}
	for _, disk := range d.Disks {
		if disk.Auth != nil || disk.BackendDomain != nil || disk.Mirror != nil || disk.Encryption != nil {
			return invalid("disks", "saved disk %s has authentication, a backend domain, a mirror or encryption", diskName(disk))
		}
		if src := disk.Source; src != nil && src.File == nil && !reflect.ValueOf(*src).IsZero() || src == nil && disk.Device != "cdrom" {
			return invalid("disks", "saved disk %s is not a file, nor an empty CD-ROM drive", diskName(disk))
		}
		if err := checkSavedFileSource(disk); err != nil {
			return err
		}
	}
	if len(d.Interfaces) != len(s.NICs) {
		return invalid("nics", "the saved domain has %d network interfaces, the spec %d", len(d.Interfaces), len(s.NICs))
	}
	for _, iface := range d.Interfaces {
		if err := checkSavedInterface(iface, s.NICs); err != nil {
			return err
		}
	}
	for _, src := range chardevSources(d) {
		if src.log != nil || src.protocol != nil {
			return invalid("serial", "a saved serial port or console logs to a file or speaks a protocol of its own")
		}
		if s := src.source; s != nil && s.File == nil && s.Pty == nil && !reflect.ValueOf(*s).IsZero() {
			return invalid("serial", "a saved serial port or console is connected to something else than a file or a pty")
		}
	}
	for _, in := range d.Inputs {
		if in.Source != nil && (in.Source.Passthrough != nil || in.Source.EVDev != nil) {
			return invalid("saved domain", "a saved input device reads a host device")
		}
	}
	for _, a := range d.Audios {
		if a.None == nil {
			return invalid("saved domain", "a saved audio backend plays on the host")
		}
	}
	return nil
}

// checkSavedFileSource refuses what a file-backed saved disk's <source> names besides
// its file: an external data file (<dataStore>, a host block device say), slices,
// persistent reservations, encryption, an fd group, or a security label of its own
// would all follow the workspace to the next host. libvirt's own index and relabel
// settings pass.
func checkSavedFileSource(disk libvirtxml.DomainDisk) error {
	src := disk.Source
	if src == nil || src.File == nil {
		return nil
	}
	rest := *src
	rest.File, rest.Index, rest.StartupPolicy = nil, 0, ""
	if !reflect.ValueOf(rest).IsZero() || src.File.FDGroup != "" || src.StartupPolicy != "" && src.StartupPolicy != "optional" {
		return invalid("disks", "saved disk %s names more than its file: an external data store, slices, reservations, encryption, a startup policy or an fd group", diskName(disk))
	}
	for _, l := range src.File.SecLabel {
		if l.Label != "" {
			return invalid("disks", "saved disk %s carries a security label of its own (%q)", diskName(disk), l.Label)
		}
	}
	return nil
}

// checkSavedInterface holds a saved interface to the spec's NIC of its MAC address.
func checkSavedInterface(iface libvirtxml.DomainInterface, nics []NIC) error {
	mac := ""
	if iface.MAC != nil {
		mac = strings.ToLower(iface.MAC.Address)
	}
	var n *NIC
	for i := range nics {
		if strings.ToLower(nics[i].MAC) == mac {
			n = &nics[i]
		}
	}
	if n == nil {
		return invalid("nics", "the saved domain has an interface with MAC %q, the spec none", mac)
	}
	src := iface.Source
	ok := src != nil
	if ok {
		switch n.Kind {
		case "network":
			ok = src.Network != nil && src.Network.Network == n.Source && src.Network.Bridge == "" && src.Network.PortGroup == ""
		case "bridge":
			ok = src.Bridge != nil && src.Bridge.Bridge == n.Source
		case "user":
			ok = src.User != nil && src.User.Dev == ""
		default:
			ok = false
		}
	}
	if !ok {
		return invalid("nics", "the saved interface %s is not attached as the spec's (%s %q)", mac, n.Kind, n.Source)
	}
	model := n.Model
	if model == "" {
		model = "virtio"
	}
	if iface.Model == nil || iface.Model.Type != model {
		return invalid("nics", "the saved interface %s is not of model %s", mac, model)
	}
	if iface.Managed != "" || iface.Script != nil || iface.DownScript != nil || iface.Backend != nil || iface.BackendDomain != nil ||
		iface.VirtualPort != nil || len(iface.PortForward) > 0 || iface.ROM != nil && iface.ROM.File != nil {
		return invalid("nics", "the saved interface %s runs scripts, opens host devices or files, or attaches otherwise than the spec says", mac)
	}
	return nil
}

type chardev struct {
	source   *libvirtxml.DomainChardevSource
	log      *libvirtxml.DomainChardevLog
	protocol *libvirtxml.DomainChardevProtocol
}

func chardevSources(d *libvirtxml.DomainDeviceList) []chardev {
	var out []chardev
	for _, s := range d.Serials {
		out = append(out, chardev{s.Source, s.Log, s.Protocol})
	}
	for _, c := range d.Consoles {
		out = append(out, chardev{c.Source, c.Log, c.Protocol})
	}
	return out
}

// sanitizeSaved drops what the restoring host chooses for itself: the tap device an
// interface had there (a name that may be another host interface here), the backing
// chains the disks had there (probed again from the images here).
func sanitizeSaved(dom *libvirtxml.Domain) (changed bool) {
	if dom.Devices == nil {
		return false
	}
	for i := range dom.Devices.Interfaces {
		if dom.Devices.Interfaces[i].Target != nil {
			dom.Devices.Interfaces[i].Target, changed = nil, true
		}
	}
	for i := range dom.Devices.Disks {
		if dom.Devices.Disks[i].BackingStore != nil {
			dom.Devices.Disks[i].BackingStore, changed = nil, true
		}
	}
	return changed
}

// checkModeled refuses a saved domain XML holding an element or attribute that
// libvirtxml did not read into dom: checkSaved cannot see it, and libvirt would
// restore it (an element of a libvirt newer than libvirtxml, one in a namespace of
// its own, an attribute of a disk source of another type). Paths are counted, so
// one more instance than libvirtxml kept is caught too.
func checkModeled(saved string, dom *libvirtxml.Domain) error {
	again, err := dom.Marshal()
	if err != nil {
		return fmt.Errorf("marshal the saved domain XML: %w", err)
	}
	have, err := xmlPaths(again)
	if err != nil {
		return fmt.Errorf("read the saved domain XML as libvirtxml writes it: %w", err)
	}
	want, err := xmlPaths(saved)
	if err != nil {
		return fmt.Errorf("parse domain XML of the save image: %w", err)
	}
	for _, p := range want.order {
		if want.n[p] > have.n[p] {
			return invalid("saved domain", "it has %s (%d times), which vws cannot check (its domain XML library reads it %d times) and will not restore", p, want.n[p], have.n[p])
		}
	}
	return nil
}

type pathCount struct {
	n     map[string]int
	order []string
}

// xmlPaths counts the element and attribute paths of an XML document, by namespace
// and local name; namespace declarations are left out.
func xmlPaths(x string) (pathCount, error) {
	doc := etree.NewDocument()
	if err := doc.ReadFromString(x); err != nil {
		return pathCount{}, err
	}
	pc := pathCount{n: map[string]int{}}
	add := func(p string) {
		if pc.n[p] == 0 {
			pc.order = append(pc.order, p)
		}
		pc.n[p]++
	}
	var walk func(el *etree.Element, parent string)
	walk = func(el *etree.Element, parent string) {
		p := qualified(el.NamespaceURI(), el.Tag)
		if parent != "" {
			p = parent + "/" + p
		}
		add("<" + p + ">")
		for _, a := range el.Attr {
			if a.Space == "xmlns" || a.Space == "" && a.Key == "xmlns" {
				continue
			}
			add("<" + p + "> attribute " + qualified(a.NamespaceURI(), a.Key))
		}
		for _, c := range el.ChildElements() {
			walk(c, p)
		}
	}
	if root := doc.Root(); root != nil {
		walk(root, "")
	}
	return pc, nil
}

func qualified(space, local string) string {
	if space == "" {
		return local
	}
	return "{" + space + "}" + local
}

// xmlElement is the element name of a libvirtxml struct field, for messages.
func xmlElement(f reflect.StructField) string {
	if name, _, _ := strings.Cut(f.Tag.Get("xml"), ","); name != "" && name != "-" {
		return name
	}
	return strings.ToLower(f.Name)
}

func diskName(d libvirtxml.DomainDisk) string {
	if d.Target != nil {
		return d.Target.Dev
	}
	return "(no target)"
}

// memoryMiB is a <memory> element in MiB, by libvirt's units (KiB without one).
func memoryMiB(m *libvirtxml.DomainMemory) (int64, error) {
	if m == nil {
		return 0, fmt.Errorf("none given")
	}
	per := map[string]uint64{"": 1 << 10, "b": 1, "bytes": 1, "KB": 1000, "k": 1 << 10, "KiB": 1 << 10,
		"MB": 1000 * 1000, "M": 1 << 20, "MiB": 1 << 20, "GB": 1000 * 1000 * 1000, "G": 1 << 30, "GiB": 1 << 30,
		"TB": 1000 * 1000 * 1000 * 1000, "T": 1 << 40, "TiB": 1 << 40}
	unit, ok := per[m.Unit]
	if !ok {
		return 0, fmt.Errorf("unit %q is not one libvirt writes", m.Unit)
	}
	bytes := uint64(m.Value) * unit
	if unit != 0 && bytes/unit != uint64(m.Value) || bytes%(1<<20) != 0 {
		return 0, fmt.Errorf("%d %s is not a whole number of MiB", m.Value, m.Unit)
	}
	return int64(bytes >> 20), nil
}
