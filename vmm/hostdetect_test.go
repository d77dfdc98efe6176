package vmm

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestChooseDomainType(t *testing.T) {
	kvmHost := hostFacts{DevKVM: true, CapsKVM: true}
	pvmHost := hostFacts{DevKVM: true, KVMPVM: true, CapsKVM: true}
	tcgHost := hostFacts{}
	xenHost := hostFacts{XenURI: true}
	tests := []struct {
		name    string
		want    string
		facts   hostFacts
		out     string
		wantErr bool
	}{
		{"auto on kvm host", "auto", kvmHost, "kvm", false},
		{"empty means auto", "", kvmHost, "kvm", false},
		{"auto on kvm_pvm host", "auto", pvmHost, "qemu", false},
		{"auto without /dev/kvm", "auto", hostFacts{CapsKVM: true}, "qemu", false},
		{"auto when libvirt lacks kvm", "auto", hostFacts{DevKVM: true}, "qemu", false},
		{"auto on plain host", "auto", tcgHost, "qemu", false},
		{"auto on xen", "auto", xenHost, "xen", false},
		{"explicit kvm on kvm host", "kvm", kvmHost, "kvm", false},
		{"explicit kvm on kvm_pvm host is allowed", "kvm", pvmHost, "kvm", false},
		{"explicit kvm without caps", "kvm", tcgHost, "", true},
		{"explicit qemu", "qemu", kvmHost, "qemu", false},
		{"explicit xen", "xen", xenHost, "xen", false},
		{"xen on a qemu uri", "xen", kvmHost, "", true},
		{"kvm on a xen uri", "kvm", xenHost, "", true},
		{"unknown", "lxc", kvmHost, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := chooseDomainType(tt.want, tt.facts)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidSpec) {
					t.Fatalf("err = %v, want ErrInvalidSpec", err)
				}
				return
			}
			if err != nil || got != tt.out {
				t.Fatalf("got %q, %v; want %q", got, err, tt.out)
			}
		})
	}
}

const capsKVM = `<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
<guest><os_type>hvm</os_type><arch name='i686'><domain type='qemu'/><domain type='kvm'/></arch></guest>
<guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/><domain type='kvm'/></arch></guest>
</capabilities>`

const capsTCG = `<capabilities><host><cpu><arch>x86_64</arch></cpu></host>
<guest><os_type>hvm</os_type><arch name='x86_64'><domain type='qemu'/></arch></guest>
</capabilities>`

func TestProbeHost(t *testing.T) {
	mkroot := func(t *testing.T, paths ...string) string {
		root := t.TempDir()
		for _, p := range paths {
			if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	tests := []struct {
		name  string
		uri   string
		paths []string
		caps  string
		want  hostFacts
		auto  string
	}{
		{"kvm host", "qemu:///system", []string{"dev/kvm"}, capsKVM, hostFacts{DevKVM: true, CapsKVM: true}, "kvm"},
		{"kvm_pvm host", "qemu:///system", []string{"dev/kvm", "sys/module/kvm_pvm"}, capsKVM, hostFacts{DevKVM: true, KVMPVM: true, CapsKVM: true}, "qemu"},
		{"no kvm in caps", "qemu:///system", []string{"dev/kvm"}, capsTCG, hostFacts{DevKVM: true}, "qemu"},
		{"no /dev/kvm", "qemu:///system", nil, capsKVM, hostFacts{CapsKVM: true}, "qemu"},
		{"xen", "xen:///system", nil, capsTCG, hostFacts{XenURI: true}, "xen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := probeHost(tt.uri, mkroot(t, tt.paths...), tt.caps)
			if err != nil {
				t.Fatal(err)
			}
			if f != tt.want {
				t.Errorf("facts = %+v, want %+v", f, tt.want)
			}
			if got, _ := chooseDomainType("auto", f); got != tt.auto {
				t.Errorf("auto = %q, want %q", got, tt.auto)
			}
		})
	}
	if _, err := probeHost("qemu:///system", t.TempDir(), "<capabilities"); err == nil {
		t.Error("bad capabilities XML accepted")
	}
}

// TestAutoDomainTypeHere: on this host, auto must not pick kvm where KVM is kvm_pvm.
func TestAutoDomainTypeHere(t *testing.T) {
	if testing.Short() {
		t.Skip("needs qemu:///system")
	}
	l, err := Open(t.Context(), Config{URI: "qemu:///system"})
	if err != nil {
		t.Skipf("libvirtd unreachable: %v", err)
	}
	defer l.Close()
	_, pvm := os.Stat("/sys/module/kvm_pvm")
	if pvm == nil && l.DomainType() != "qemu" {
		t.Errorf("auto on a kvm_pvm host = %q, want qemu", l.DomainType())
	}
	t.Logf("auto domain type here: %s", l.DomainType())
}
