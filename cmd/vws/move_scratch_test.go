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

// TestMoveOfAWorkspaceWithAScratchDisk: a manager refuses to serialize a workspace
// with an empty scratch disk (its contents are not kept, so its RAM cannot travel).
// The move stops there with the manager's fault, running or paused: nothing is
// undeployed or deployed — a paused one's refusal is not taken for "serialized
// already".
func TestMoveOfAWorkspaceWithAScratchDisk(t *testing.T) {
	const key = "ws-move-scratch"
	const refusal = "workspace " + key + " has an empty scratch disk (vdb), whose contents are not kept: each deployment gets a new, empty one, so its RAM cannot be kept either; Serialize is refused, and nothing was changed; shut the workspace down normally"
	for _, state := range []string{"running", "paused"} {
		t.Run(state, func(t *testing.T) {
			err, out, opsA, opsB := moveRefusedAtShutdown(t, key, state, refusal, nil)
			if err == nil || !strings.Contains(err.Error(), "scratch disk") || !strings.Contains(err.Error(), "shut the workspace down normally") {
				t.Fatalf("move: %v; want the manager's scratch-disk refusal\n%s", err, out)
			}
			if strings.Join(opsA, " ") != "Shutdown" {
				t.Errorf("A was sent %v; want only the refused Shutdown (Serialize)", opsA)
			}
			for _, op := range opsB {
				if op != "GetResourceProperty" {
					t.Errorf("B was sent %s", op)
				}
			}
		})
	}
}

// moveRefusedAtShutdown moves workspace key, in state on host A (a fake manager that
// refuses the move's Shutdown with refusal, its WorkspaceStateFault naming states'
// answer when states is set), to host B, and returns the move's error and output
// and the operations A and B were sent.
func moveRefusedAtShutdown(t *testing.T, key, state, refusal string, states func(op string) (string, string)) (err error, out string, opsA, opsB []string) {
	t.Helper()
	var mu sync.Mutex
	repo, a, b := &fakeSOAP{}, &fakeSOAP{}, &fakeSOAP{}
	repoHS, aHS, bHS := httptest.NewServer(repo), httptest.NewServer(a), httptest.NewServer(b)
	defer repoHS.Close()
	defer aHS.Close()
	defer bHS.Close()
	repo.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		if op != "GetMultipleResourceProperties" {
			return el("vw:"+op+"Response", vwsns.Workspace, ""), ""
		}
		return workspaceProps(state, "deployed", "node-a", &wsa.EPR{Version: wsa.V200508, Address: aHS.URL + managerPath}), ""
	}
	a.states = states
	a.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		mu.Lock()
		defer mu.Unlock()
		opsA = append(opsA, op)
		if op == "Shutdown" {
			return nil, refusal
		}
		return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
	}
	b.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		mu.Lock()
		defer mu.Unlock()
		opsB = append(opsB, op)
		if op == "GetResourceProperty" {
			out := el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
			out.AddChild(el("mgr:DomainType", vwsns.Manager, "qemu"))
			return out, ""
		}
		return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
	}
	ws := &wsa.EPR{Version: wsa.V200508, Address: repoHS.URL + "/wsrf/services/WorkspaceService",
		References: []*etree.Element{el("vw:WorkspaceKey", vwsns.Workspace, key)}}
	cmd := newMoveCommand()
	var buf bytes.Buffer
	cmd.SetOut(&buf)
	cmd.SetErr(&buf)
	cmd.SetContext(context.Background())
	err = moveWorkspace(cmd, ws, repoHS.URL, key, bHS.URL, "")
	mu.Lock()
	defer mu.Unlock()
	return err, buf.String(), append([]string(nil), opsA...), append([]string(nil), opsB...)
}
