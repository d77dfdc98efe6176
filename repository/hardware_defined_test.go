package repository

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// Create refuses hardware no manager defines (hostfit.Defined: more than 256 CPUs,
// a guest needing more than 1 TiB, an architecture other than x86_64, i686 or
// aarch64), so that no workspace is made that no host can deploy. An Update of
// hw:hardware must not make an existing workspace such a one: it is refused with the
// same WorkspaceMetadataFault, and changes nothing.
func TestSetResourcePropertiesRefusesHardwareNoManagerDefines(t *testing.T) {
	f := newPlacingFixture(t)
	ctx := context.Background()
	c, err := f.r.Create(ctx, CreateSpec{Name: "hw", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	hardware := func(ram, cpu string) *etree.Element {
		d := etree.NewDocument()
		if err := d.ReadFromString(`<hw:hardware xmlns:hw="` + vwsns.Hardware + `"><hw:RAM>` + ram + `</hw:RAM><hw:CPU>` + cpu + `</hw:CPU></hw:hardware>`); err != nil {
			t.Fatal(err)
		}
		return d.Root()
	}
	current := func() string {
		var out string
		f.r.Workspaces.View(ctx, c.Key, func(s *wsrf.Snapshot) error {
			if hw := s.Property(PropHardware); hw != nil {
				d := etree.NewDocument()
				d.SetRoot(hw.Copy())
				out, _ = d.WriteToString()
			}
			return nil
		})
		return out
	}
	before := current()
	for _, c2 := range []struct{ name, ram, cpu string }{
		{"512 CPUs", `<hw:size>256</hw:size>`, `<hw:count>512</hw:count>`},
		{"an s390x CPU", `<hw:size>256</hw:size>`, `<hw:count>1</hw:count><hw:architecture>s390x</hw:architecture>`},
		{"2 TiB of RAM", `<hw:size>2097152</hw:size>`, `<hw:count>1</hw:count>`},
	} {
		err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardware(c2.ram, c2.cpu)}}})
		var me *errdefs.MetadataError
		if !errors.As(err, &me) {
			t.Errorf("Update of hw:hardware to %s: err = %v; want a WorkspaceMetadataFault", c2.name, err)
		}
		if now := current(); now != before {
			t.Errorf("Update of hw:hardware to %s changed the workspace's hardware to %s", c2.name, now)
		}
	}
	if err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware,
		Values: []*etree.Element{hardware(`<hw:size>1024</hw:size>`, `<hw:count>256</hw:count><hw:architecture>aarch64</hw:architecture>`)}}}); err != nil {
		t.Errorf("Update of hw:hardware to 256 aarch64 CPUs: %v", err)
	}
}
