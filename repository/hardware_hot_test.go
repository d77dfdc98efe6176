package repository

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsrf"
)

// TestSerializedWorkspaceKeepsItsHardware: a serialized workspace's saved RAM restores
// only on the hardware it ran on. Changing that hardware (a scratch disk, a CPU more)
// made its next hot deploy stage everything and then fail, or, deployed shut down,
// left it paused with RAM no Start could restore: the change is refused, and the
// capability may still change.
func TestSerializedWorkspaceKeepsItsHardware(t *testing.T) {
	f := newPlacingFixture(t)
	ctx := context.Background()
	c, err := f.r.Create(ctx, CreateSpec{Name: "hot", Owner: "o", Description: minimalVM(t), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	hardware := func() *etree.Element {
		d := etree.NewDocument()
		if err := d.ReadFromString(`<hw:hardware xmlns:hw="` + vwsns.Hardware + `"><hw:RAM><hw:size>256</hw:size></hw:RAM><hw:CPU><hw:count>2</hw:count></hw:CPU></hw:hardware>`); err != nil {
			t.Fatal(err)
		}
		return d.Root()
	}
	// Its RAM saved, as a check-in from a Serialize leaves it.
	if err := f.r.Workspaces.Modify(ctx, c.Key, func(s *wsrf.Snapshot) error {
		chain, err := decodeChain(s.Private)
		if err != nil {
			return err
		}
		chain.Memory = memoryName(1)
		s.Private = chain.encode()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hwText := func() string {
		var out string
		f.r.Workspaces.View(ctx, c.Key, func(s *wsrf.Snapshot) error {
			d := etree.NewDocument()
			d.SetRoot(s.Property(PropHardware).Copy())
			out, _ = d.WriteToString()
			return nil
		})
		return out
	}
	before := hwText()
	err = f.r.Workspaces.SetProperties(ctx, c.Key, []wsrf.Modification{{Kind: wsrf.Update, Property: PropHardware, Values: []*etree.Element{hardware()}}})
	if !errors.Is(err, errdefs.ErrUnableToModify) || !strings.Contains(errdefs.Advice(err), "shut it down normally") {
		t.Fatalf("hardware update of a serialized workspace: %v (advice %q); want UnableToModify advising how to discard the RAM", err, errdefs.Advice(err))
	}
	if now := hwText(); now != before {
		t.Fatalf("the refused update changed the hardware to %s", now)
	}
}
