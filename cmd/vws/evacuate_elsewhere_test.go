package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestEvacuateLeavesAWorkspaceTheRepositoryHasElsewhere: the drained host's manager
// may still list a workspace the repository has deployed on another host since (one
// reclaimed from it while it was silent, and deployed again there). vws host
// evacuate must not move it off that other host, which nobody asked to empty: it
// stopped the guest running there, serialized it, and undeployed it. The manager's
// listing names the host it was checked out under, which the repository's vw:host
// no longer is (addresses would not do: the administrator may name the host by one
// the manager does not advertise).
func TestEvacuateLeavesAWorkspaceTheRepositoryHasElsewhere(t *testing.T) {
	const key = "ws-reclaimed"
	repo, a, b, c := &fakeSOAP{}, &fakeSOAP{}, &fakeSOAP{}, &fakeSOAP{}
	var urls []string
	for _, f := range []*fakeSOAP{repo, a, b, c} {
		hs := httptest.NewServer(f)
		defer hs.Close()
		urls = append(urls, hs.URL)
	}
	repoURL, aURL, bURL, cURL := urls[0], urls[1], urls[2], urls[3]
	mgrEPR := func(base string) *wsa.EPR { return &wsa.EPR{Version: wsa.V200508, Address: base + managerPath} }
	repo.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		switch op {
		case "GetMultipleResourceProperties":
			return workspaceProps("running", "deployed", "node-c", mgrEPR(cURL)), ""
		case "Place":
			out := el("vw:PlaceResponse", vwsns.Workspace, "")
			cand := out.CreateElement("vw:Candidate")
			cand.CreateElement("vw:HostName").SetText("node-b")
			mgrEPR(bURL).ChildElement(cand, "vw:ManagerReference", "wsa")
			return out, ""
		}
		return el("vw:"+op+"Response", vwsns.Workspace, ""), ""
	}
	manager := func(lists bool) func(string, *etree.Element) (*etree.Element, string) {
		return func(op string, p *etree.Element) (*etree.Element, string) {
			out := el("mgr:"+op+"Response", vwsns.Manager, "")
			if op == "GetResourceProperty" {
				out = el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
				if !strings.Contains(p.Text(), "DeployedWorkspaces") {
					out.AddChild(el("mgr:DomainType", vwsns.Manager, "kvm"))
					return out, ""
				}
				d := out.CreateElement("mgr:DeployedWorkspaces")
				d.CreateAttr("xmlns:mgr", vwsns.Manager)
				if lists {
					w := d.CreateElement("mgr:Workspace")
					w.CreateElement("mgr:Key").SetText(key)
					k := el("vw:WorkspaceKey", vwsns.Workspace, key)
					(&wsa.EPR{Version: wsa.V200508, Address: repoURL + "/wsrf/services/WorkspaceService", References: []*etree.Element{k}}).
						ChildElement(w, "mgr:WorkspaceReference", "wsa")
					w.CreateElement("mgr:State").SetText("running")
					w.CreateElement("mgr:Deployment").SetText("deployed")
					w.CreateElement("mgr:Host").SetText("node-a")
				}
			}
			if op == "Deploy" {
				out.CreateElement("mgr:State").SetText("running")
				out.CreateElement("mgr:Host").SetText("node-b")
			}
			return out, ""
		}
	}
	a.handle, b.handle, c.handle = manager(true), manager(false), manager(false)

	cmd := newHostEvacuateCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{aURL, "--url", repoURL})
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	t.Logf("stdout:\n%s\nstderr:\n%s\nerr: %v", out.String(), errOut.String(), err)
	c.mu.Lock()
	onC := slices.Clone(c.calls)
	c.mu.Unlock()
	if slices.Contains(onC, "Shutdown") || slices.Contains(onC, "Undeploy") {
		t.Errorf("evacuating %s stopped the workspace on node-c, another host: calls there %v", aURL, onC)
	}
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "node-c") {
		t.Errorf("want the evacuation to say %s is deployed on node-c, not here, got %v", key, err)
	}
}
