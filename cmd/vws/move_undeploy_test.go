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

// TestMoveWhoseUndeployFailsDoesNotLeaveTheGuestStopped: vws move (and vws host
// evacuate, which moves each workspace the same way) serializes a running workspace,
// then undeploys it. When the Undeploy is refused having changed nothing (libvirtd
// away a moment, the manager's journal disk full), the workspace the move stopped is
// started again where it is, from the RAM just saved, and the user is told so: a
// running job is not left stopped unnoticed (nor, moved again, taken for one
// serialized before).
func TestMoveWhoseUndeployFailsDoesNotLeaveTheGuestStopped(t *testing.T) {
	const key = "ws-move-undeploy-fails"
	var mu sync.Mutex
	state := "running"
	var aCalls []string
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
		return workspaceProps(state, "deployed", "node-a", mgrEPR(aHS.URL)), ""
	}
	a.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		mu.Lock()
		defer mu.Unlock()
		aCalls = append(aCalls, op)
		switch op {
		case "Shutdown": // Serialize
			state = "paused"
		case "Undeploy":
			return nil, "libvirt: cannot connect to the hypervisor; nothing was changed"
		case "Start", "Unpause":
			state = "running"
		}
		return el("mgr:"+op+"Response", vwsns.Manager, state), ""
	}
	b.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		if op == "GetResourceProperty" {
			out := el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
			out.AddChild(el("mgr:DomainType", vwsns.Manager, "qemu"))
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
	err := moveWorkspace(cmd, ws, repoHS.URL, key, bHS.URL, "")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("calls on A: %v\noutput:\n%s\nerr: %v", aCalls, out.String(), err)
	if err == nil {
		t.Fatal("the move succeeded though A refused the Undeploy: the test sets nothing up")
	}
	said := out.String() + err.Error()
	resumed := state == "running"
	told := strings.Contains(said, "vws start") || strings.Contains(said, "serialized on node-a") && strings.Contains(said, "resume")
	if !resumed && !told {
		t.Fatalf("the move failed at the Undeploy after serializing the running workspace: it is left %s (serialized) on node-a, neither resumed nor said to be (%s)",
			state, strings.TrimSpace(said))
	}
}
