package repository

import (
	"context"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// hardwareProp is a standalone hw:hardware property with RAM of size MiB.
func hardwareProp(t *testing.T, size string) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromString(`<hw:hardware xmlns:hw="` + vwsns.Hardware + `"><hw:RAM><hw:size>` + size + `</hw:size></hw:RAM><hw:CPU><hw:count>1</hw:count></hw:CPU></hw:hardware>`); err != nil {
		t.Fatal(err)
	}
	return d.Root()
}

func hardwareCount(t *testing.T, f *fixture, key string) int {
	t.Helper()
	n := 0
	if err := f.r.Workspaces.View(context.Background(), key, func(s *wsrf.Snapshot) error {
		for _, p := range s.Props {
			if p.Tag == PropHardware.Local && p.NamespaceURI() == PropHardware.Space {
				n++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSetResourcePropertiesKeepsTheDescriptionWhole: hw:hardware occurs once in the
// workspace document (the WSDL's sequence declares it without maxOccurs), and every
// description part a SetResourceProperties leaves must pass the validator. An Insert of
// a second hw:hardware, or an Update carrying two, must be refused and change nothing.
func TestSetResourcePropertiesKeepsTheDescriptionWhole(t *testing.T) {
	f := newPlacingFixture(t)
	ctx := context.Background()
	c, err := f.r.Create(ctx, CreateSpec{Name: "hw", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// The validator works: an Update to a RAM size the schema refuses is refused.
	bad := hardwareProp(t, "0")
	if err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{bad}}}); err == nil {
		t.Fatal("an Update of hw:hardware with RAM size 0 was taken; the validator is not in use")
	}
	// An Insert of a second, invalid, hw:hardware.
	err = f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Insert, Property: PropHardware, Values: []*etree.Element{hardwareProp(t, "0")}}})
	if n := hardwareCount(t, f, c.Key); err == nil || n != 1 {
		t.Errorf("Insert of a second hw:hardware (RAM size 0): err = %v; the document now holds %d hw:hardware", err, n)
	}
	// An Insert of a second hw:hardware the schema would take alone.
	err = f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Insert, Property: PropHardware, Values: []*etree.Element{hardwareProp(t, "512")}}})
	if n := hardwareCount(t, f, c.Key); err == nil || n != 1 {
		t.Errorf("Insert of a second, valid, hw:hardware: err = %v; the document now holds %d hw:hardware", err, n)
	}
	// An Update with a valid first and an invalid second hw:hardware.
	err = f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware,
		Values: []*etree.Element{hardwareProp(t, "512"), hardwareProp(t, "0")}}})
	if n := hardwareCount(t, f, c.Key); err == nil || n != 1 {
		t.Errorf("Update with two hw:hardware (the second with RAM size 0): err = %v; the document now holds %d hw:hardware", err, n)
	}
	// One hw:hardware the schema takes is still an Update like any other.
	if err := f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardwareProp(t, "768")}}}); err != nil {
		t.Errorf("Update of hw:hardware to 768 MiB: %v", err)
	}
}
