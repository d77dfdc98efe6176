package describe

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds the service enforces besides the schema. Some repeat a schema facet on
// purpose: these strings end up as file names, argv and configuration in the guest (the
// Manager's cidata), and a schema edit must not silently widen what reaches it.
const (
	maxGuestPath    = 1024    // cap:GuestPath, hw:MountPoint
	maxPathSegment  = 255     // NAME_MAX: no guest file system takes a longer name
	maxArgument     = 4096    // cap:Argument
	maxArguments    = 256     // cap:startup/cap:argument, documented in capability.xsd
	maxFileContent  = 1 << 20 // cap:FileType: "at most 1 MiB of content", in bytes
	maxNICName      = 15      // net:InterfaceName; IFNAMSIZ-1 on Linux
	maxWorkspaceKey = 64      // vw:WorkspaceNameType
)

// checkSemantics applies the rules of the description that XML Schema 1.0 cannot
// express: the documented counts of repeated elements, cross-field rules (hardware.xsd's
// header), uniqueness, and the safety of every name that becomes a path or an argument
// in the guest.
func (v *Validator) checkSemantics(s *scanned) error {
	if err := checkCounts(s.nodes); err != nil {
		return err
	}
	root := s.root
	cat := root.get(vw("category"))
	if vmm, ok := cat.attr("vmm"); ok && cat.str() != string(CategoryVM) {
		return metaErr(cat.path(), "attribute vmm=%q is given for category %q; only a vm workspace runs on a VMM. Remove the vmm attribute or use category \"vm\"", vmm, cat.str())
	}
	if err := checkHardware(root.get(hw("hardware"))); err != nil {
		return err
	}
	if err := checkNetwork(root.get(nt("network"))); err != nil {
		return err
	}
	if err := checkSoftware(root.get(sw("software"))); err != nil {
		return err
	}
	return checkStartup(root.get(cp("capability")).get(cp("startup")))
}

// guard runs before libxml2. It enforces the maxLength facet of every element's type
// itself, because libxml2 2.9 evaluates a type's patterns even when the value is
// already too long, and net:IPAddress's pattern [0-9A-Fa-f:]*:[0-9A-Fa-f:.]* takes its
// regex engine quadratic time: 8,000 colons cost 1.6 s, 16,000 cost 13 s, and a
// 256 KiB document would hold a CPU for tens of minutes. With the length bounded first (45 characters) the pattern is harmless. The
// types are resolved as libxml2 will (lax content and xsi:type included), so the
// value cannot be smuggled past the guard in a vw:EPR.
func (v *Validator) guard(s *scanned) error {
	v.model.assignTypes(s.nodes)
	for _, n := range s.nodes {
		ml, ok := v.model.maxLen[n.typ]
		if !ok || len(n.text) <= ml { // a character is at least one byte
			continue
		}
		if c := utf8.RuneCount(n.text); c > ml {
			p := problem{n: n, message: fmt.Sprintf("[facet 'maxLength'] The value has %d characters; type %s allows at most %d.", c, typeName(n.typ), ml)}
			return metaErr(n.path(), "%s %s", p.message, v.advice(p))
		}
	}
	return nil
}

// checkCounts enforces the "At most N; the service refuses more." of every
// maxOccurs="unbounded" element, as the schema documents them (see model). libxml2 has
// accepted the document, so the elements of one particle are adjacent (the content
// models are flat sequences): counting runs is enough.
func checkCounts(nodes []*node) error {
	for _, n := range nodes {
		run := 0
		var prev *particle
		for _, k := range n.kids {
			if k.part != prev {
				prev, run = k.part, 0
			}
			run++
			if k.part != nil && k.part.max > 0 && run == k.part.max+1 {
				return metaErr(k.path(), "at most %d %s are accepted here; the description has %d. Remove the extra ones", k.part.max, k.name(), len(n.children(k.ns, k.local)))
			}
		}
	}
	return nil
}

func checkHardware(h *node) error {
	if h == nil {
		return nil
	}
	ram := h.get(hw("RAM"))
	size, _ := ram.intVal(hw("size"))
	if lo := ram.get(hw("minimum")); lo != nil {
		v, _ := ram.intVal(hw("minimum"))
		if v > size {
			return metaErr(lo.path(), "the minimum (%d MiB) is more than the size asked for (%d MiB); minimum <= size <= maximum. Lower the minimum or raise the size", v, size)
		}
	}
	if hi := ram.get(hw("maximum")); hi != nil {
		v, _ := ram.intVal(hw("maximum"))
		if v < size {
			return metaErr(hi.path(), "the maximum (%d MiB) is less than the size asked for (%d MiB); minimum <= size <= maximum. Raise the maximum or lower the size", v, size)
		}
	}
	targets := map[string]bool{}
	for _, d := range h.all(hw("disk")) {
		t := d.get(hw("target"))
		if targets[t.str()] {
			return metaErr(t.path(), "disk target %q is used by an earlier disk; disk targets must be unique. Give this disk another target", t.str())
		}
		targets[t.str()] = true
		if d.val(hw("device")) == "cdrom" && strings.HasPrefix(t.str(), "vd") {
			return metaErr(t.path(), "a CD-ROM drive cannot be on a virtio target (%s); give it an sd or hd target, e.g. sdc", t.str())
		}
		if bus := d.get(hw("bus")); d.val(hw("device")) == "cdrom" && bus.collapsed() == "virtio" {
			return metaErr(bus.path(), "a CD-ROM drive cannot be on the virtio bus; give it bus sata, scsi or ide, or leave hw:bus out to follow its target (%s)", t.str())
		}
		// hardware.xsd: "a disk has an image or partitions (or is an empty scratch disk
		// with a size)". A CD-ROM drive may be empty (samples/full-vm.xml has one).
		if d.get(hw("image")) == nil && len(d.all(hw("partition"))) == 0 && d.get(hw("size")) == nil && d.val(hw("device")) != "cdrom" {
			return metaErr(d.path(), "the disk has no image, no partitions and no size; a disk needs one of them (an empty scratch disk needs a size). Add an hw:image, hw:partition or hw:size")
		}
		if err := checkImage(d.get(hw("image")), hw); err != nil {
			return err
		}
		numbers := map[string]bool{}
		for _, p := range d.all(hw("partition")) {
			num := p.get(hw("number"))
			v, _ := p.intVal(hw("number"))
			key := strconv.FormatInt(v, 10)
			if numbers[key] {
				return metaErr(num.path(), "partition number %s is used by an earlier partition of this disk; partition numbers must be unique. Renumber the partition", key)
			}
			numbers[key] = true
			if mp := p.get(hw("mountPoint")); mp != nil && mp.str() != "/" {
				if reason := guestPathProblem(mp.str()); reason != "" {
					return metaErr(mp.path(), "%s. Send an absolute guest path without \".\" or \"..\" segments", reason)
				}
			}
			if err := checkImage(p.get(hw("image")), hw); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkImage applies the rule of hw:DiskImageType and sw:ImageReferenceType: at least
// one of name and digest.
func checkImage(img *node, in func(string) qname) error {
	if img == nil {
		return nil
	}
	name := img.get(in("name"))
	if name == nil && img.get(in("digest")) == nil {
		return metaErr(img.path(), "the image reference has neither a name nor a digest. Name the pool image, give its sha256 digest, or both")
	}
	if name != nil {
		if reason := nameProblem(name.str(), 128); reason != "" {
			return metaErr(name.path(), "%s. Send a pool image name", reason)
		}
	}
	return nil
}

func checkNetwork(n *node) error {
	names, macs := map[string]bool{}, map[string]bool{}
	for _, nic := range n.all(nt("nic")) {
		name := nic.get(nt("name"))
		if reason := nameProblem(name.str(), maxNICName); reason != "" {
			return metaErr(name.path(), "%s. Send an interface name such as eth0", reason)
		}
		if names[name.str()] {
			return metaErr(name.path(), "interface name %q is used by an earlier NIC; NIC names must be unique. Rename this NIC", name.str())
		}
		names[name.str()] = true
		if mac := nic.get(nt("mac")); mac != nil {
			m := strings.ToLower(mac.str())
			// (The schema has checked the form: six colon-separated hex bytes.)
			if first, err := strconv.ParseUint(m[:2], 16, 8); err == nil && first&1 == 1 {
				return metaErr(mac.path(), "%s is a multicast address, which no NIC may have: its first byte must be even (52:54:00:… is the usual prefix)", mac.str())
			}
			// QEMU reads an all-zero MAC as "none given" and assigns its fixed default
			// (52:54:00:12:34:56), the same for every such guest on a host.
			// libvirt gives a guest's tap device on the host its MAC with the first byte
			// set to 0xFE, and refuses to start a guest whose own MAC begins so.
			if strings.HasPrefix(m, "fe:") {
				return metaErr(mac.path(), "%s begins with 0xFE, which libvirt reserves for the host's side of a guest's NIC and refuses at start; give another unicast address (52:54:00:… is the usual prefix) or leave net:mac out to have one derived", mac.str())
			}
			if m == "00:00:00:00:00:00" {
				return metaErr(mac.path(), "%s is the all-zero address, which no NIC may have; give a unicast address (52:54:00:… is the usual prefix) or leave net:mac out to have one derived", mac.str())
			}
			if macs[m] {
				return metaErr(mac.path(), "MAC address %s is used by an earlier NIC; each NIC needs its own (or leave net:mac out to have one derived)", mac.str())
			}
			macs[m] = true
		}
		if err := checkIP(nic.get(nt("ip"))); err != nil {
			return err
		}
	}
	return nil
}

// checkIP applies what net:IPAddress's loose IPv6 pattern and net:PrefixLength's
// 0..128 cannot: that each address parses, and that an IPv4 address's prefix length
// is at most 32 (the schema allows 128, for IPv6).
func checkIP(ip *node) error {
	if ip == nil {
		return nil
	}
	for _, q := range []qname{nt("address"), nt("gateway"), nt("nameserver")} {
		for _, a := range ip.all(q) {
			if _, err := netip.ParseAddr(a.str()); err != nil {
				return metaErr(a.path(), "%q is not an IPv4 or IPv6 address. Send a dotted quad (10.20.0.17) or an IPv6 address (2001:db8::17)", a.str())
			}
		}
	}
	addr, pl := ip.get(nt("address")), ip.get(nt("prefixLength"))
	if addr == nil || pl == nil {
		return nil
	}
	if v, _ := ip.intVal(nt("prefixLength")); netip.MustParseAddr(addr.str()).Is4() && v > 32 {
		return metaErr(pl.path(), "prefix length %d, but IPv4 address %s has a prefix length of at most 32. Give the IPv4 network's length (24 for a /24)", v, addr.str())
	}
	return nil
}

func checkSoftware(s *node) error {
	if s == nil {
		return nil
	}
	if err := checkImage(s.get(sw("image")), sw); err != nil {
		return err
	}
	k := s.get(sw("kernel"))
	if err := checkImage(k.get(sw("image")), sw); err != nil {
		return err
	}
	return checkImage(k.get(sw("initrd")), sw)
}

func checkStartup(st *node) error {
	if st == nil {
		return nil
	}
	for _, q := range []qname{cp("executable"), cp("workingDirectory")} {
		if p := st.get(q); p != nil {
			if reason := guestPathProblem(p.str()); reason != "" {
				return metaErr(p.path(), "%s. Send an absolute guest path without \".\" or \"..\" segments", reason)
			}
		}
	}
	args := st.all(cp("argument"))
	if len(args) > maxArguments {
		return metaErr(args[maxArguments].path(), "at most %d arguments are accepted; the description has %d. Pass the rest in a file", maxArguments, len(args))
	}
	for _, a := range args {
		if n := utf8.RuneCount(a.text); n > maxArgument {
			return metaErr(a.path(), "the argument is %d characters long; at most %d are accepted. Pass long values in a file", n, maxArgument)
		}
	}
	vars := map[string]bool{}
	for _, e := range st.all(cp("environment")) {
		name := e.get(cp("name"))
		if vars[name.str()] {
			return metaErr(name.path(), "environment variable %q is set by an earlier cap:environment. Set each variable once", name.str())
		}
		vars[name.str()] = true
	}
	paths := map[string]bool{}
	files := st.all(cp("file"))
	for _, f := range files {
		p := f.get(cp("path"))
		if reason := guestPathProblem(p.str()); reason != "" {
			return metaErr(p.path(), "%s. Send an absolute guest path without \".\" or \"..\" segments", reason)
		}
		if paths[p.str()] {
			return metaErr(p.path(), "file %q is placed by an earlier cap:file. Place each file once", p.str())
		}
		paths[p.str()] = true
		c := f.get(cp("content"))
		content, err := fileContent(f)
		if err != nil {
			return err
		}
		if len(content) > maxFileContent {
			return metaErr(c.path(), "the file content is %d bytes; at most %d are accepted. Put large files in the image", len(content), maxFileContent)
		}
	}
	var placed []string
	for _, f := range files {
		placed = append(placed, f.get(cp("path")).str())
	}
	if conflict, as := StartupPathConflict(st.get(cp("executable")).str(), st.get(cp("workingDirectory")).str(), placed); conflict != "" {
		at := st.get(cp("executable"))
		for _, f := range files {
			if p := f.get(cp("path")); p.str() == conflict {
				at = p
				break
			}
		}
		return metaErr(at.path(), "%q is also %s: the guest cannot create both, and the job would not start. Place files beside, not in place of, the folders the startup needs", conflict, as)
	}
	return nil
}

// nameProblem says what is wrong with a name that becomes a file or interface name:
// path-like (separators, "..", NUL, control characters), empty or too long. "" if
// nothing.
func nameProblem(s string, max int) string {
	switch {
	case s == "":
		return "the name is empty"
	case len(s) > max:
		return "the name is " + strconv.Itoa(len(s)) + " bytes; at most " + strconv.Itoa(max) + " are accepted"
	case strings.ContainsAny(s, `/\`):
		return "the name contains a path separator"
	case strings.Contains(s, ".."):
		return `the name contains ".."`
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "the name contains a control character"
	}
	return ""
}

// guestPathProblem says what is wrong with an absolute guest path ("" if nothing):
// relative, "." or ".." or empty segments, control characters, too long.
func guestPathProblem(p string) string {
	switch {
	case len(p) > maxGuestPath:
		return "the path is " + strconv.Itoa(len(p)) + " bytes; at most " + strconv.Itoa(maxGuestPath) + " are accepted"
	case !strings.HasPrefix(p, "/"):
		return "the path is not absolute"
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return "the path contains a control character"
	case strings.Contains(p, `\`):
		return "the path contains a backslash"
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch {
		case seg == "":
			return "the path has an empty segment"
		case seg == "." || seg == "..":
			return "the path has a \"" + seg + "\" segment"
		case len(seg) > maxPathSegment:
			return "a segment of the path is longer than " + strconv.Itoa(maxPathSegment) + " bytes"
		}
	}
	return ""
}

// CheckWorkspaceName checks the name a Create gives a workspace (fac:Name, of type
// vw:WorkspaceNameType), which is not part of the description. The error is a
// MetadataError whose path is /fac:Create/fac:Name. It takes what the type's pattern
// takes, ".." inside a name too: a name is no path (files and domains are named after
// the key), and the Repository takes such a name from a Clone.
func CheckWorkspaceName(name string) error {
	// Not metaErr, which says "workspace description".
	nameErr := func(path, format string, args ...any) error { return newMeta(path, fmt.Sprintf(format, args...)) }
	const path = "/fac:Create/fac:Name"
	if name == "" || len(name) > maxWorkspaceKey {
		return nameErr(path, "the name is %d bytes. Send 1 to 64 letters, digits, \".\", \"_\" or \"-\", starting with a letter or digit", len(name))
	}
	for i, r := range name {
		ok := r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || (i > 0 && strings.ContainsRune("._-", r)))
		if !ok {
			return nameErr(path, "the name contains %q at byte %d. Send 1 to 64 letters, digits, \".\", \"_\" or \"-\", starting with a letter or digit", r, i)
		}
	}
	return nil
}
