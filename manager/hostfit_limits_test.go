package manager

import (
	"testing"

	"github.com/vws-grid/vws/internal/hostfit"
)

// TestPlacementFitIsWhatAManagerDefines: a host hostfit.Check finds fitting (the
// Repository's placement ranks it a candidate) deploys the description, and memory
// granted "down to the minimum" stays within what libvirt is given: a big host is
// neither chosen for a guest its manager then refuses, nor refuses a guest whose
// minimum it has free.
func TestPlacementFitIsWhatAManagerDefines(t *testing.T) {
	const key = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
	files := stagedFiles{Disk: "/m/ws/run.qcow2", CIData: "/m/ws/cidata.iso", Console: "/m/ws/console.log"}
	big := hostOffer{DomainType: "kvm", Arch: "x86_64", CPUs: 512, FreeMiB: 1536 << 10}
	for _, tc := range []struct {
		name string
		host hostOffer
		desc vmXML
		// deploys: the description must deploy here, not only pass hostfit.Check.
		deploys bool
	}{
		{"as much memory as the host has, at least 1 GiB, on a host with 1.5 TiB free", big,
			vmXML{RAM: `<hw:size>4194304</hw:size><hw:minimum>1024</hw:minimum>`}, true},
		{"300 CPUs on a 512-CPU host", big, vmXML{CPU: `<hw:count>300</hw:count>`}, false},
		{"2 TiB on a host with 3 TiB free", hostOffer{DomainType: "kvm", Arch: "x86_64", CPUs: 8, FreeMiB: 3 << 20},
			vmXML{RAM: `<hw:size>2097152</hw:size>`}, false},
		{"an s390x guest on an s390x host", hostOffer{DomainType: "kvm", Arch: "s390x", CPUs: 8, FreeMiB: 4096},
			vmXML{CPU: `<hw:count>1</hw:count><hw:architecture>s390x</hw:architecture>`}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := describeXML(t, tc.desc.String())
			_, fitErr := hostfit.Check(d, tc.host)
			_, err := buildSpec(key, d, tc.host, files)
			switch {
			case tc.deploys && err != nil:
				t.Fatalf("refused on a host that has what it asks for (hostfit: %v): %v", fitErr, err)
			case fitErr == nil && err != nil:
				t.Fatalf("hostfit.Check (placement) finds the host fits, its manager refuses the deploy: %v", err)
			}
		})
	}
}
