package vmm

import (
	"errors"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/errdefs"
)

func validSpec() Spec {
	return Spec{
		Name: "vws-ok", UUID: "6f1c2a3e-8d4b-4c5a-9e7f-0a1b2c3d4e5f", Type: "qemu",
		MemoryMiB: 64, CPUs: 1, Kernel: "/k/vmlinuz", Cmdline: "console=ttyS0",
		Disks:      []Disk{{Path: "/d/root.qcow2", Format: "qcow2", Target: "vda"}},
		NICs:       []NIC{{MAC: "52:54:00:00:00:01", Kind: "network", Source: "default"}},
		ConsoleLog: "/d/console.log",
	}
}

func TestValidate(t *testing.T) {
	if err := validSpec().Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for _, cpus := range []struct {
		typ, arch string
		n         int
	}{{"qemu", "", 255}, {"kvm", "x86_64", 255}, {"xen", "", 256}, {"qemu", "aarch64", 256}} {
		s := validSpec()
		s.Type, s.Arch, s.CPUs = cpus.typ, cpus.arch, cpus.n
		if err := s.Validate(); err != nil {
			t.Errorf("%d CPUs on %s %s: %v", cpus.n, cpus.typ, cpus.arch, err)
		}
	}
	s := validSpec()
	s.Disks = append(s.Disks, Disk{Path: "/d/c.iso", Format: "raw", Target: "hdd", Device: "cdrom"},
		Disk{Path: "/d/x.raw", Format: "raw", Target: "sdd", Bus: "ide"}, Disk{Path: "/d/y.raw", Format: "raw", Target: "sdz"})
	if err := s.Validate(); err != nil {
		t.Errorf("hdd, sdd on ide and sdz on sata: %v", err)
	}
	tests := []struct {
		name string
		mut  func(*Spec)
		want string // substring of the message
	}{
		{"name with slash", func(s *Spec) { s.Name = "a/b" }, "name"},
		{"name dotdot", func(s *Spec) { s.Name = ".." }, "name"},
		{"name quote", func(s *Spec) { s.Name = `a'b"` }, "name"},
		{"name markup", func(s *Spec) { s.Name = "a<b>" }, "name"},
		{"name empty", func(s *Spec) { s.Name = "" }, "name"},
		{"name too long", func(s *Spec) { s.Name = strings.Repeat("a", 65) }, "name"},
		{"uuid upper", func(s *Spec) { s.UUID = strings.ToUpper(s.UUID) }, "uuid"},
		{"uuid short", func(s *Spec) { s.UUID = "1234" }, "uuid"},
		{"type", func(s *Spec) { s.Type = "lxc" }, "type"},
		{"arch", func(s *Spec) { s.Arch = "ppc64" }, "arch"},
		{"memory 0", func(s *Spec) { s.MemoryMiB = 0 }, "memory"},
		{"memory huge", func(s *Spec) { s.MemoryMiB = 1048577 }, "memory"},
		{"cpus 0", func(s *Spec) { s.CPUs = 0 }, "cpus"},
		{"cpus 257", func(s *Spec) { s.CPUs = 257 }, "cpus"},
		// Machine pc takes 255 (libvirt: "Maximum CPUs greater than specified machine
		// type limit 255" at define).
		{"cpus 256 on x86 qemu", func(s *Spec) { s.CPUs = 256 }, "cpus"},
		{"cpus 256 on i686 kvm", func(s *Spec) { s.Type, s.Arch, s.CPUs = "kvm", "i686", 256 }, "cpus"},
		{"cpu model markup", func(s *Spec) { s.CPUModel = "<x>" }, "cpu model"},
		{"cmdline newline", func(s *Spec) { s.Cmdline = "console=ttyS0\ninit=/bin/sh" }, "cmdline"},
		{"cmdline nul", func(s *Spec) { s.Cmdline = "a\x00b" }, "cmdline"},
		{"cmdline utf8", func(s *Spec) { s.Cmdline = "é" }, "cmdline"},
		{"cmdline long", func(s *Spec) { s.Cmdline = strings.Repeat("a", 2049) }, "cmdline"},
		{"cmdline without kernel", func(s *Spec) { s.Kernel = "" }, "kernel"},
		{"kernel relative", func(s *Spec) { s.Kernel = "boot/vmlinuz" }, "kernel"},
		{"kernel dotdot", func(s *Spec) { s.Kernel = "/k/../etc/shadow" }, "kernel"},
		{"kernel unclean", func(s *Spec) { s.Kernel = "/k//vmlinuz" }, "kernel"},
		{"initrd space", func(s *Spec) { s.Initrd = "/k/my initrd" }, "initrd"},
		{"console quote", func(s *Spec) { s.ConsoleLog = "/d/it's.log" }, "console log"},
		{"console markup", func(s *Spec) { s.ConsoleLog = "/d/<a>.log" }, "console log"},
		{"console root", func(s *Spec) { s.ConsoleLog = "/" }, "console log"},
		{"disk path relative", func(s *Spec) { s.Disks[0].Path = "root.qcow2" }, "disks[0].path"},
		{"disk path empty", func(s *Spec) { s.Disks[0].Path = "" }, "disks[0].path"},
		{"disk path space", func(s *Spec) { s.Disks[0].Path = "/d/my disk.qcow2" }, "disks[0].path"},
		{"disk path quote", func(s *Spec) { s.Disks[0].Path = "/d/x'.qcow2" }, "disks[0].path"},
		{"disk path newline", func(s *Spec) { s.Disks[0].Path = "/d/x\n.qcow2" }, "disks[0].path"},
		{"disk format", func(s *Spec) { s.Disks[0].Format = "vmdk" }, "disks[0].format"},
		{"disk target", func(s *Spec) { s.Disks[0].Target = "nvme0n1" }, "disks[0].target"},
		{"disk bus", func(s *Spec) { s.Disks[0].Bus = "floppy" }, "disks[0].bus"},
		{"disk device", func(s *Spec) { s.Disks[0].Device = "lun" }, "disks[0].device"},
		{"virtio cdrom", func(s *Spec) { s.Disks[0].Device = "cdrom" }, "disks[0].bus"},
		{"raw scratch disk", func(s *Spec) { s.Disks[0].Scratch, s.Disks[0].SizeMiB, s.Disks[0].Format = true, 64, "raw" }, "disks[0].scratch"},
		{"read-only scratch disk", func(s *Spec) { s.Disks[0].Scratch, s.Disks[0].SizeMiB, s.Disks[0].ReadOnly = true, 64, true }, "disks[0].scratch"},
		{"scratch cdrom", func(s *Spec) {
			s.Disks[0].Scratch, s.Disks[0].SizeMiB, s.Disks[0].Device, s.Disks[0].Target = true, 64, "cdrom", "sdb"
		}, "disks[0].scratch"},
		{"scratch disk of no size", func(s *Spec) { s.Disks[0].Scratch = true }, "disks[0].size"},
		{"scratch disk past 64 TiB", func(s *Spec) { s.Disks[0].Scratch, s.Disks[0].SizeMiB = true, MaxScratchMiB+1 }, "disks[0].size"},
		{"a size on a disk not scratch", func(s *Spec) { s.Disks[0].SizeMiB = 64 }, "disks[0].size"},
		{"xen bus on qemu", func(s *Spec) { s.Disks[0].Bus = "xen" }, "disks[0].bus"},
		{"xen target on kvm", func(s *Spec) { s.Type, s.Disks[0].Target = "kvm", "xvda" }, "disks[0].bus"},
		// libvirt: "Only 1 IDE controller is supported" at define.
		{"ide target past hdd", func(s *Spec) { s.Disks = append(s.Disks, Disk{Path: "/d/x.raw", Format: "raw", Target: "hde"}) }, "disks[1].target"},
		{"ide target hdaa", func(s *Spec) { s.Disks = append(s.Disks, Disk{Path: "/d/x.raw", Format: "raw", Target: "hdaa"}) }, "disks[1].target"},
		{"sd target past sdd on bus ide", func(s *Spec) { s.Type, s.Disks[0].Target, s.Disks[0].Bus = "kvm", "sde", "ide" }, "disks[0].target"},
		{"duplicate target", func(s *Spec) { s.Disks = append(s.Disks, s.Disks[0]) }, "disks[1].target"},
		{"mac missing", func(s *Spec) { s.NICs[0].MAC = "" }, "nics[0].mac"},
		{"mac bad", func(s *Spec) { s.NICs[0].MAC = "52:54:00:zz:00:01" }, "nics[0].mac"},
		{"mac dashes", func(s *Spec) { s.NICs[0].MAC = "52-54-00-00-00-01" }, "nics[0].mac"},
		{"mac multicast", func(s *Spec) { s.NICs[0].MAC = "01:00:5e:00:00:01" }, "multicast"},
		{"mac duplicate", func(s *Spec) { s.NICs = append(s.NICs, s.NICs[0]) }, "nics[1].mac"},
		{"nic model", func(s *Spec) { s.NICs[0].Model = "ne2k" }, "nics[0].model"},
		{"nic kind", func(s *Spec) { s.NICs[0].Kind = "direct" }, "nics[0].kind"},
		{"nic source markup", func(s *Spec) { s.NICs[0].Source = "def'ault" }, "nics[0].source"},
		{"nic source missing", func(s *Spec) { s.NICs[0].Source = "" }, "nics[0].source"},
		{"user nic with source", func(s *Spec) { s.NICs[0].Kind = "user" }, "nics[0].source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			s.Disks = append([]Disk(nil), s.Disks...)
			s.NICs = append([]NIC(nil), s.NICs...)
			tt.mut(&s)
			err := s.Validate()
			if !errors.Is(err, ErrInvalidSpec) || !errors.Is(err, errdefs.ErrBadRequest) {
				t.Fatalf("err = %v, want ErrInvalidSpec wrapping ErrBadRequest", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("message %q does not name %q", err, tt.want)
			}
			if _, xerr := DomainXML(s); !errors.Is(xerr, ErrInvalidSpec) {
				t.Errorf("DomainXML accepted it: %v", xerr)
			}
		})
	}
}

// TestInvalidSpecNeverReachesLibvirt: Define and Restore reject a bad spec before any
// libvirt call (the Libvirt here has no connection at all).
func TestInvalidSpecNeverReachesLibvirt(t *testing.T) {
	l := &Libvirt{uri: "test:///nowhere", domType: "qemu"}
	s := validSpec()
	s.Name = "x'/><devices>"
	if err := l.Define(t.Context(), s); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Define: %v", err)
	}
	if err := l.Restore(t.Context(), "/tmp/x.save", s, false); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Restore: %v", err)
	}
	if err := l.Restore(t.Context(), "relative.save", validSpec(), false); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Restore relative path: %v", err)
	}
	if err := l.Save(t.Context(), "vws-ok", "/tmp/a b.save"); !errors.Is(err, ErrInvalidSpec) {
		t.Errorf("Save path with space: %v", err)
	}
	if l.conn != nil {
		t.Error("a connection was opened")
	}
}
