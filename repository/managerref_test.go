package repository

import (
	"context"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestManagerReferenceInTheReadersDialect: vw:managerReference is stored as the
// manager sent it (WS-Addressing 2005/08 here), and read in the reader's dialect: a
// GT4 client gets a 2004/03 EPR it can call the manager with, key and all.
func TestManagerReferenceInTheReadersDialect(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("mref", "", "")
	param := etree.NewElement("m:Slot")
	param.CreateAttr("xmlns:m", "urn:m")
	param.SetText("7")
	mgr := &wsa.EPR{Version: wsa.V200508, Address: "http://h1:8080/wsrf/services/WorkspaceManagerService", References: []*etree.Element{param}}
	if _, err := f.r.CheckOut(ctx, key, "h1", "", mgr, &tester); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*dialect.Dialect{dialect.GT4, dialect.WSRF12} {
		els, err := f.r.Workspaces.Property(ctx, d, key, PropManagerRef)
		if err != nil || len(els) != 1 {
			t.Fatalf("%s: %v %v", d.Name, els, err)
		}
		got, err := wsa.ParseEPR(els[0])
		if err != nil || got.Version != d.WSA || got.Address != mgr.Address || len(got.References) != 1 || got.References[0].Text() != "7" {
			t.Errorf("%s: managerReference %+v (%v), want %s's WS-Addressing with the same address and parameter", d.Name, got, err, d.Name)
		}
		doc, err := f.r.Workspaces.Document(ctx, d, key)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := wsa.ParseEPR(doc.SelectElement("managerReference")); got == nil || got.Version != d.WSA {
			t.Errorf("%s: the property document's managerReference is %+v", d.Name, got)
		}
	}
}
