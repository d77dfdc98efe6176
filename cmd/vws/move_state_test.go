package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestMoveKeepsTheWayAWorkspaceIsPaused: a workspace paused in RAM is serialized for
// the move and restored paused on the new host; one serialized before the move stays
// serialized there (deployed without an initial state), its RAM not loaded into the
// new host's memory; --state still decides when given.
func TestMoveKeepsTheWayAWorkspaceIsPaused(t *testing.T) {
	const key = "ws-move-paused"
	for _, tc := range []struct {
		name       string
		serialized bool   // before the move
		flag       string // --state
		want       string // B's Deploy InitialState ("": none)
	}{
		{"paused in RAM", false, "", "paused"},
		{"serialized", true, "", ""},
		{"serialized, --state running", true, "running", "running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			onA, initial := true, "unset"
			repo, a, b := &fakeSOAP{}, &fakeSOAP{}, &fakeSOAP{}
			repoHS, aHS, bHS := httptest.NewServer(repo), httptest.NewServer(a), httptest.NewServer(b)
			defer repoHS.Close()
			defer aHS.Close()
			defer bHS.Close()
			mgrEPR := func(base string) *wsa.EPR { return &wsa.EPR{Version: wsa.V200508, Address: base + managerPath} }
			repo.handle = func(op string, p *etree.Element) (*etree.Element, string) {
				mu.Lock()
				defer mu.Unlock()
				if op != "GetMultipleResourceProperties" {
					return el("vw:"+op+"Response", vwsns.Workspace, ""), ""
				}
				return workspaceProps("paused", "deployed", "node-a", mgrEPR(aHS.URL)), ""
			}
			a.states = func(op string) (string, string) {
				// As a manager refuses to serialize a workspace serialized already.
				return "paused (serialized)", "paused (serialized)"
			}
			a.handle = func(op string, p *etree.Element) (*etree.Element, string) {
				mu.Lock()
				defer mu.Unlock()
				switch op {
				case "Shutdown":
					if tc.serialized {
						return nil, "workspace is already paused (serialized) (current and requested state)"
					}
				case "Undeploy":
					onA = false
				}
				return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
			}
			b.handle = func(op string, p *etree.Element) (*etree.Element, string) {
				mu.Lock()
				defer mu.Unlock()
				switch op {
				case "GetResourceProperty":
					out := el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
					out.AddChild(el("mgr:DomainType", vwsns.Manager, "qemu"))
					return out, ""
				case "Deploy":
					initial = ""
					if s := p.SelectElement("InitialState"); s != nil {
						initial = s.Text()
					}
					out := el("mgr:DeployResponse", vwsns.Manager, "")
					out.CreateElement("mgr:State").SetText("paused")
					out.CreateElement("mgr:Host").SetText("node-b")
					return out, ""
				}
				return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
			}
			k := el("vw:WorkspaceKey", vwsns.Workspace, key)
			ws := &wsa.EPR{Version: wsa.V200508, Address: repoHS.URL + "/wsrf/services/WorkspaceService", References: []*etree.Element{k}}
			cmd := newMoveCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetContext(context.Background())
			if err := moveWorkspace(cmd, ws, repoHS.URL, key, bHS.URL, tc.flag); err != nil {
				t.Fatalf("move: %v\n%s", err, out.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if onA {
				t.Fatal("the workspace was not undeployed from A: the test moved nothing")
			}
			if initial != tc.want {
				t.Fatalf("B was asked to deploy it with InitialState %q, want %q\n%s", initial, tc.want, out.String())
			}
			if tc.serialized && strings.Contains(out.String(), "serialized on") {
				t.Errorf("a workspace serialized already was said to be serialized by the move:\n%s", out.String())
			}
		})
	}
}

// TestMoveDoesNotTakeAnotherRefusalForSerialized: a manager's refusal to serialize a
// paused workspace for a reason other than its being serialized already (here: the
// outcome of an earlier operation is not known yet) names the state it is in, paused,
// whatever its words; the move stops there with that fault, undeploying nothing.
func TestMoveDoesNotTakeAnotherRefusalForSerialized(t *testing.T) {
	const key = "ws-move-unknown"
	const refusal = "the outcome of a Normal shutdown of workspace " + key + " is not known yet (libvirtd did not answer while it was under way); Serialize is refused until it is"
	err, out, opsA, opsB := moveRefusedAtShutdown(t, key, "paused", refusal,
		func(op string) (string, string) { return "paused", "paused (serialized)" })
	if err == nil || !strings.Contains(err.Error(), "is not known yet") {
		t.Errorf("move: %v; want the manager's refusal\n%s", err, out)
	}
	if strings.Join(opsA, " ") != "Shutdown" {
		t.Errorf("A was sent %v; want only the refused Shutdown (Serialize): the refusal was taken for a workspace serialized already", opsA)
	}
	for _, op := range opsB {
		if op != "GetResourceProperty" {
			t.Errorf("B was sent %s", op)
		}
	}
}
