package manager

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/dialect"
	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
	"github.com/vws-grid/vws/internal/wsrf"
)

// draining is an Update (or Delete) of mgr:Draining to value.
func draining(kind wsrf.ModKind, value string) []wsrf.Modification {
	v := etree.NewElement("mgr:Draining")
	v.CreateAttr("xmlns:mgr", vwsns.Manager)
	v.SetText(value)
	return []wsrf.Modification{{Kind: kind, Property: PropDraining, Values: []*etree.Element{v}}}
}

// TestDraining: a drained host refuses a new deployment and nothing of it is
// journaled, a workspace already there is still answered for, the drain outlives a
// restart, and only mgr:Draining may be set, to a boolean.
func TestDraining(t *testing.T) {
	const k = "ws-here"
	m, rec := servingManager(t, k, stateRunning)
	rec.Owner = "/O=Grid/CN=owner"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.SetProperties(ctx, "", draining(wsrf.Update, "true")); err != nil || !m.Draining() {
		t.Fatalf("drain: %v (draining %v)", err, m.Draining())
	}
	if !readDraining(m.cfg.Dir) {
		t.Fatal("the drain is not on disk: a restarted manager would take workspaces again")
	}
	other := *workspaceEPR(rec)
	key := etree.NewElement("vw:WorkspaceKey")
	key.CreateAttr("xmlns:vw", vwsns.Workspace)
	key.SetText("ws-new")
	other.References = []*etree.Element{key}
	_, err := m.Deploy(ctx, &other, "")
	if !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "host h is draining for maintenance") ||
		!strings.Contains(errdefs.Advice(err), "another host") {
		t.Fatalf("Deploy on a draining host: %v (%s)", err, errdefs.Advice(err))
	}
	if _, err := m.journal.get("ws-new"); err == nil {
		t.Fatal("the refused deploy left a journal record")
	}
	// The workspace already here: its deploy is answered as before (it is here).
	if _, err := m.Deploy(ctx, workspaceEPR(rec), ""); !errors.Is(err, errdefs.ErrState) || !strings.Contains(err.Error(), "deployed/running on h") {
		t.Fatalf("Deploy of the workspace already here: %v", err)
	}

	for _, bad := range []struct {
		mods []wsrf.Modification
		want error
		says string
	}{
		{draining(wsrf.Update, "soon"), errdefs.ErrInvalidModification, `"soon" is not an xs:boolean`},
		{[]wsrf.Modification{{Kind: wsrf.Update, Property: PropCPUs, Values: []*etree.Element{etree.NewElement("mgr:CPUs")}}}, errdefs.ErrUnableToModify, "describes the host and is read-only"},
	} {
		if err := m.SetProperties(ctx, "", bad.mods); !errors.Is(err, bad.want) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("SetProperties: %v, want %v saying %q", err, bad.want, bad.says)
		}
		if !m.Draining() {
			t.Fatal("a refused modification ended the drain")
		}
	}

	props, err := m.hostProperties(ctx, dialect.GT4)
	if err != nil {
		t.Fatal(err)
	}
	told := false
	for _, p := range props {
		switch p.Tag {
		case "Draining":
			told = p.Text() == "true"
		case "DeployedWorkspaces":
			// The workspace's reference, in the reader's WS-Addressing version: what
			// vws host evacuate moves it by.
			ref, err := wsa.ParseEPR(p.FindElement("Workspace/WorkspaceReference"))
			if err != nil || ref.Version != wsa.V200403 || ref.Address != rec.WorkspaceAddress || strings.TrimSpace(ref.References[0].Text()) != k {
				t.Errorf("the host's reference to the workspace: %+v (%v)", ref, err)
			}
		}
	}
	if !told {
		t.Error("the host properties do not say it is draining")
	}

	if err := m.SetProperties(ctx, "", draining(wsrf.Delete, "")); err != nil || m.Draining() || readDraining(m.cfg.Dir) {
		t.Fatalf("Delete of mgr:Draining: %v (draining %v, on disk %v)", err, m.Draining(), readDraining(m.cfg.Dir))
	}
}
