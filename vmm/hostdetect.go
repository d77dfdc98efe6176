package vmm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"libvirt.org/go/libvirtxml"
)

// hostFacts is what the domain type choice depends on.
type hostFacts struct {
	XenURI  bool // the connection URI is a Xen one
	DevKVM  bool // /dev/kvm exists
	KVMPVM  bool // /sys/module/kvm_pvm exists: a paravirtual KVM that cannot boot ordinary guests
	CapsKVM bool // libvirt's capabilities offer a kvm domain for the host's arch
}

// probeHost gathers hostFacts. root is the file system root ("/" in production, a
// temporary directory in tests); caps is libvirt's capabilities XML.
func probeHost(uri, root, caps string) (hostFacts, error) {
	f := hostFacts{
		XenURI: isXenURI(uri),
		DevKVM: exists(filepath.Join(root, "dev/kvm")),
		KVMPVM: exists(filepath.Join(root, "sys/module/kvm_pvm")),
	}
	var c libvirtxml.Caps
	if err := c.Unmarshal(caps); err != nil {
		return f, fmt.Errorf("parse libvirt capabilities: %w", err)
	}
	arch := ""
	if c.Host.CPU != nil {
		arch = c.Host.CPU.Arch
	}
	for _, g := range c.Guests {
		if g.OSType != "hvm" || (arch != "" && g.Arch.Name != arch) {
			continue
		}
		for _, d := range g.Arch.Domains {
			if d.Type == "kvm" {
				f.CapsKVM = true
			}
		}
	}
	return f, nil
}

// chooseDomainType resolves the configured domain type ("", "auto", "kvm", "qemu",
// "xen") against the host. auto: xen for a Xen URI; kvm only when /dev/kvm exists, it
// is not kvm_pvm and libvirt offers kvm; otherwise qemu (TCG).
func chooseDomainType(want string, f hostFacts) (string, error) {
	switch want {
	case "", "auto":
		switch {
		case f.XenURI:
			return "xen", nil
		case f.DevKVM && !f.KVMPVM && f.CapsKVM:
			return "kvm", nil
		default:
			return "qemu", nil
		}
	case "xen":
		if !f.XenURI {
			return "", invalid("domain type", "xen needs a Xen connection URI (xen:///system)")
		}
		return "xen", nil
	case "kvm", "qemu":
		if f.XenURI {
			return "", invalid("domain type", "%s is not possible on a Xen connection: use xen or auto", want)
		}
		if want == "kvm" && !f.CapsKVM {
			return "", invalid("domain type", "kvm is not offered by libvirt on this host (no usable /dev/kvm?): use qemu or auto")
		}
		return want, nil
	default:
		return "", invalid("domain type", "%q must be auto, kvm, qemu or xen", want)
	}
}

func isXenURI(uri string) bool {
	return strings.HasPrefix(uri, "xen:") || strings.HasPrefix(uri, "xen+") || strings.HasPrefix(uri, "libxl:")
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
