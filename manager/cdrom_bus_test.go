package manager

import (
	"strings"
	"testing"
)

// An empty CD-ROM drive of the description carries the configuration CD (buildSpec).
// describe refuses one on a vd target ("a CD-ROM drive cannot be on a virtio
// target") at Create, but not one on an sd target with hw:bus virtio, which no host
// can define either: every Deploy of such a workspace fails after its check-out.
// Create must refuse what Deploy will.
func TestCDROMOnTheVirtioBusIsRefusedAtCreate(t *testing.T) {
	const key = "3f2a9c1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b"
	files := stagedFiles{Disk: "/m/ws/run.qcow2", CIData: "/m/ws/cidata.iso", Console: "/m/ws/console.log"}
	host := hostOffer{DomainType: "qemu", Arch: "x86_64", CPUs: 2, FreeMiB: 4096}
	x := vmXML{Disks: rootVDA + `<hw:disk><hw:target>sdc</hw:target><hw:bus>virtio</hw:bus><hw:device>cdrom</hw:device></hw:disk>`}.String()
	d, err := describeXMLErr(t, x)
	if err != nil {
		if !strings.Contains(err.Error(), "virtio bus") {
			t.Errorf("refused at Create, but not for the CD-ROM's bus: %v", err)
		}
		return
	}
	_, err = buildSpec(key, d, host, files)
	t.Fatalf("the description is accepted at Create (validation), but every Deploy refuses it: %v", err)
}
