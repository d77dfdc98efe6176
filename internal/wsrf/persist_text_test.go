package wsrf_test

import (
	"context"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsrf"
)

// A property value holding a carriage return (a client writes it as &#xD;, which
// XML keeps; a literal one it reads as a line feed) is the same after a restart as
// before it, in an element's text and in its attributes.
func TestHomeKeepsCarriageReturnsAcrossRestart(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	in := etree.NewDocument()
	if err := in.ReadFromString(`<t:b xmlns:t="urn:t" note="x&#xD;y">one&#xD;&#xA;two&#xD;</t:b>`); err != nil {
		t.Fatal(err)
	}
	sent := in.Root()
	if sent.Text() != "one\r\ntwo\r" {
		t.Fatalf("the request reads as %q", sent.Text())
	}
	h := newHome(t, db, nil)
	if err := h.Create(ctx, "k1", []*etree.Element{prop(propA, "1")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.SetProperties(ctx, "k1", []wsrf.Modification{{Kind: wsrf.Insert, Property: propB, Values: []*etree.Element{sent}}}); err != nil {
		t.Fatal(err)
	}
	read := func(h *wsrf.Home) (string, string) {
		t.Helper()
		got, err := h.Property(ctx, dialect.WSRF12, "k1", propB)
		if err != nil || len(got) != 1 {
			t.Fatalf("property b: %v %v", got, err)
		}
		return got[0].Text(), got[0].SelectAttrValue("note", "")
	}
	text, note := read(h)
	h.Close()

	text2, note2 := read(newHome(t, db, nil))
	if text2 != text || note2 != note {
		t.Fatalf("property b was text %q, note %q before the restart; after it, text %q, note %q", text, note, text2, note2)
	}
}
