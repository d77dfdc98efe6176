package wsrf

import (
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/errdefs"
)

const rp = "http://docs.oasis-open.org/wsrf/rp-2"

func parseMods(t *testing.T, body string) ([]Modification, error) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<wsrp:SetResourceProperties xmlns:wsrp="` + rp + `" xmlns:p="urn:p">` + body + `</wsrp:SetResourceProperties>`); err != nil {
		t.Fatal(err)
	}
	return ParseModifications(rp, doc.Root())
}

func names(props []*etree.Element) string {
	var out []string
	for _, p := range props {
		out = append(out, p.Tag+"="+p.Text())
	}
	return strings.Join(out, ",")
}

func TestApplyModifications(t *testing.T) {
	mk := func(tag, text string) *etree.Element {
		e := etree.NewElement("p:" + tag)
		e.CreateAttr("xmlns:p", "urn:p")
		e.SetText(text)
		return e
	}
	props := []*etree.Element{mk("a", "1"), mk("b", "2"), mk("b", "3"), mk("c", "4")}
	mods, err := parseMods(t, `<wsrp:Insert><p:b>9</p:b></wsrp:Insert><wsrp:Update><p:a>5</p:a><p:a>6</p:a></wsrp:Update><wsrp:Delete ResourceProperty="p:c"/><wsrp:Update><p:d>7</p:d></wsrp:Update>`)
	if err != nil {
		t.Fatal(err)
	}
	got := names(applyModifications(props, mods))
	if want := "a=5,a=6,b=2,b=3,b=9,d=7"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestParseModificationsRefuses(t *testing.T) {
	for _, body := range []string{
		``,
		`<wsrp:Insert/>`,
		`<wsrp:Insert><p:a/><p:b/></wsrp:Insert>`,
		`<wsrp:Delete ResourceProperty="nope:c"/>`,
		`<wsrp:Replace><p:a/></wsrp:Replace>`,
		`<p:Insert><p:a/></p:Insert>`,
	} {
		if _, err := parseMods(t, body); !errors.Is(err, errdefs.ErrInvalidModification) {
			t.Errorf("%q: err = %v", body, err)
		}
	}
}
