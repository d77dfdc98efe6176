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
			var mu sync.Mutex
			var opsA, opsB []string
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
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetContext(context.Background())
			err := moveWorkspace(cmd, ws, repoHS.URL, key, bHS.URL, "")
			if err == nil || !strings.Contains(err.Error(), "scratch disk") || !strings.Contains(err.Error(), "shut the workspace down normally") {
				t.Fatalf("move: %v; want the manager's scratch-disk refusal\n%s", err, out.String())
			}
			mu.Lock()
			defer mu.Unlock()
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
