package repository

import (
	"context"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/container"
	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// cloneRequest is a Clone call on workspace key with the body's children children.
func cloneRequest(t *testing.T, key, children string) *container.Request {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<vw:Clone xmlns:vw="` + vwsns.Workspace + `">` + children + `</vw:Clone>`); err != nil {
		t.Fatal(err)
	}
	header := etree.NewElement("vw:WorkspaceKey")
	header.CreateAttr("xmlns:vw", vwsns.Workspace)
	header.SetText(key)
	return &container.Request{Service: &container.Service{Key: vwsns.WorkspaceKey}, Dialect: dialect.WSRF12,
		Envelope: &soap.Envelope{Headers: []*etree.Element{header}}, Payload: doc.Root(), Address: "http://repo/wsrf/services/WorkspaceService"}
}

// TestCloneChecksTheLifetimeItIsAsked: workspace-service.xsd's Clone takes "at
// most one of RequestedLifetime and RequestedTerminationTime", as Create does; the
// Factory refuses both at once ("which … the caller meant would be a guess") and a
// non-positive RequestedLifetime ("a caller who asks for none is told so"), and so
// does Clone: no clone is made that lives otherwise than the caller asked.
func TestCloneChecksTheLifetimeItIsAsked(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	src := f.mustCreateFor(alice, "src", 0)
	h := f.r.clone(wsrf.LifetimePolicy{Default: 24 * time.Hour, Maximum: 30 * 24 * time.Hour})
	ctx := identity.With(context.Background(), alice)
	count := func() int {
		n := 0
		f.r.Workspaces.Range(func(*wsrf.Snapshot) bool { n++; return true })
		return n
	}
	at := wsrf.FormatTime(time.Now().Add(3 * time.Hour))
	out, err := h(ctx, cloneRequest(t, src, `<vw:Name>both</vw:Name><vw:RequestedLifetime>PT1H</vw:RequestedLifetime><vw:RequestedTerminationTime>`+at+`</vw:RequestedTerminationTime>`))
	if err == nil {
		t.Errorf("Clone with both RequestedLifetime PT1H and RequestedTerminationTime %s: made a clone ending %s (%d workspaces now)",
			at, childText(out, vwsns.Workspace, "TerminationTime"), count())
	}
	out, err = h(ctx, cloneRequest(t, src, `<vw:Name>zero</vw:Name><vw:RequestedLifetime>PT0S</vw:RequestedLifetime>`))
	if err == nil {
		t.Errorf("Clone with RequestedLifetime PT0S: made a clone ending %s (the Factory refuses a Create asking for PT0S)",
			childText(out, vwsns.Workspace, "TerminationTime"))
	}
	if n := count(); n != 1 {
		t.Fatalf("%d workspaces after two refused Clones; want the source alone", n)
	}
	if _, err := h(ctx, cloneRequest(t, src, `<vw:Name>hour</vw:Name><vw:RequestedLifetime>PT1H</vw:RequestedLifetime>`)); err != nil || count() != 2 {
		t.Fatalf("Clone with RequestedLifetime PT1H: %v (%d workspaces)", err, count())
	}
}

// TestCloneRecordsTheLifetimeItIsAsked: vw:lifeCycle is "what was asked for and when
// it ends" (workspace.xsd), and a workspace Created with RequestedLifetime PT1H says
// requestedLifetime PT1H. A clone asked for PT1H must say so too: two workspaces
// whose lifetimes were asked for alike must not read differently (vws status, an
// XPath query over the Repository's documents).
func TestCloneRecordsTheLifetimeItIsAsked(t *testing.T) {
	needQemu(t)
	f := newFixture(t)
	ctx := identity.With(context.Background(), alice)
	c, err := f.r.Create(ctx, CreateSpec{Name: "made", Owner: alice.DN, Description: sizedDescription(0), BaseImage: f.base,
		Termination: time.Now().Add(time.Hour), RequestedLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h := f.r.clone(wsrf.LifetimePolicy{Default: 24 * time.Hour, Maximum: 30 * 24 * time.Hour})
	out, err := h(ctx, cloneRequest(t, c.Key, `<vw:Name>cloned</vw:Name><vw:RequestedLifetime>PT1H</vw:RequestedLifetime>`))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := wsa.ParseEPR(out.SelectElement("WorkspaceReference"))
	if err != nil {
		t.Fatal(err)
	}
	requested := func(key string) string {
		got := "(none)"
		if err := f.r.Workspaces.View(ctx, key, func(s *wsrf.Snapshot) error {
			if lc := s.Property(PropLifeCycle); lc != nil {
				if rl := lc.SelectElement("requestedLifetime"); rl != nil {
					got = rl.Text()
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	cloneKey := ref.References[0].Text()
	if made, cloned := requested(c.Key), requested(cloneKey); made != cloned {
		t.Errorf("asked for PT1H each, the created workspace's vw:lifeCycle says requestedLifetime %s, the clone's %s", made, cloned)
	}
}
