package repository

import (
	"context"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestSetResourcePropertiesRefusesADiskLayoutNoManagerDeploys: Create refuses a disk
// layout no manager deploys (one image-backed root disk and one empty CD-ROM drive),
// and a change of the description is checked so that it does not "only fail its next
// deploy". An Update of hw:hardware to a layout Create refuses must be refused too,
// and change nothing; the layout a manager deploys is taken.
func TestSetResourcePropertiesRefusesADiskLayoutNoManagerDeploys(t *testing.T) {
	f := newPlacingFixture(t)
	ctx := context.Background()
	c, err := f.r.Create(ctx, CreateSpec{Name: "hw", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	hardware := func(disks string) *etree.Element {
		d := etree.NewDocument()
		if err := d.ReadFromString(`<hw:hardware xmlns:hw="` + vwsns.Hardware + `"><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU>` + disks + `</hw:hardware>`); err != nil {
			t.Fatal(err)
		}
		return d.Root()
	}
	root := `<hw:disk><hw:target>vda</hw:target><hw:image><hw:name>base</hw:name></hw:image><hw:boot>true</hw:boot></hw:disk>`
	for _, c2 := range []struct{ name, disks string }{
		{"a second image-backed disk", root + `<hw:disk><hw:target>vdb</hw:target><hw:image><hw:name>vmlinuz</hw:name></hw:image></hw:disk>`},
		{"two empty CD-ROM drives", root + `<hw:disk><hw:target>sdc</hw:target><hw:device>cdrom</hw:device></hw:disk><hw:disk><hw:target>sdd</hw:target><hw:device>cdrom</hw:device></hw:disk>`},
	} {
		err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardware(c2.disks)}}})
		disks := 0
		f.r.Workspaces.View(ctx, c.Key, func(s *wsrf.Snapshot) error {
			if hw := s.Property(PropHardware); hw != nil {
				disks = len(hw.SelectElements("disk"))
			}
			return nil
		})
		if err == nil || disks != 0 {
			t.Errorf("Update of hw:hardware to %s: err = %v; the workspace now describes %d disks", c2.name, err, disks)
		}
	}
	if err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware,
		Values: []*etree.Element{hardware(root + `<hw:disk><hw:target>sdc</hw:target><hw:device>cdrom</hw:device></hw:disk>`)}}}); err != nil {
		t.Errorf("Update of hw:hardware to a root disk and an empty CD-ROM drive: %v", err)
	}
}
