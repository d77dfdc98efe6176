package repository

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
	"github.com/vws-grid/vws/repository/imagepool"
)

// TestSetResourcePropertiesKeepsTheRootDiskOnTheBaseImage: the root disk's image is
// the workspace's base, fixed at Create (its overlay stands on it, and a manager boots
// that overlay whatever the description says). An Update of hw:hardware whose root
// disk names another pool image, by name or by digest, would make the description
// name an image the workspace does not run: it must be refused as the description's
// fault, and change nothing. A reference to the base itself is taken.
func TestSetResourcePropertiesKeepsTheRootDiskOnTheBaseImage(t *testing.T) {
	f := newPlacingFixture(t)
	ctx := context.Background()
	c, err := f.r.Create(ctx, CreateSpec{Name: "hw", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	hardware := func(image string) *etree.Element {
		d := etree.NewDocument()
		if err := d.ReadFromString(`<hw:hardware xmlns:hw="` + vwsns.Hardware + `"><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU>` +
			`<hw:disk><hw:target>vda</hw:target><hw:image>` + image + `</hw:image></hw:disk></hw:hardware>`); err != nil {
			t.Fatal(err)
		}
		return d.Root()
	}
	disks := func() int {
		n := 0
		f.r.Workspaces.View(ctx, c.Key, func(s *wsrf.Snapshot) error {
			if hw := s.Property(PropHardware); hw != nil {
				n = len(hw.SelectElements("disk"))
			}
			return nil
		})
		return n
	}
	for _, c2 := range []struct{ what, image string }{
		{"another image's name", `<hw:name>vmlinuz</hw:name>`},
		{"another image's digest", `<hw:digest>` + f.kernel + `</hw:digest>`},
	} {
		err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardware(c2.image)}}})
		if !errors.Is(err, errdefs.ErrMetadata) || disks() != 0 {
			t.Errorf("Update of the root disk to %s: err = %v; the workspace now describes %d disks (its base is still %s)", c2.what, err, disks(), f.base)
		}
	}
	for _, c2 := range []struct{ what, image string }{
		{"the base's name", `<hw:name>base</hw:name>`},
		{"the base's name and digest", `<hw:name>base</hw:name><hw:digest>` + f.base + `</hw:digest>`},
	} {
		if err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardware(c2.image)}}}); err != nil {
			t.Errorf("Update of the root disk to %s: %v", c2.what, err)
		}
	}
	// A second name of the base is the base; once it left the pool, a change that
	// keeps the root disk's reference as it was is still taken.
	if _, _, err := f.pool.Import(ctx, bytes.NewReader(bytes.Repeat([]byte{0x11}, 1<<20)), imagepool.Meta{Name: "alias"}); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardware(`<hw:name>alias</hw:name>`)}}}); err != nil {
		t.Errorf("Update of the root disk to another name of the base: %v", err)
	}
	if err := f.pool.Remove(ctx, "alias", func(context.Context, string) ([]string, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardware(`<hw:name>alias</hw:name>`)}}}); err != nil {
		t.Errorf("Update that leaves the root disk's reference as it was, its name gone from the pool: %v", err)
	}
}
