package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestEvacuateNamesADeployUnderWayOnTheDrainedHost: a Deploy that passed the drain
// check just before the drain began goes on (the manager lists it among the host's
// workspaces, phase staging, so that evacuate sees it). Before its check-out reaches
// the Repository, the Repository still says the workspace is in the repository:
// evacuate must say a deploy of it is under way on this host, not advise a second
// deploy of it ("vws deploy KEY puts it on one").
func TestEvacuateNamesADeployUnderWayOnTheDrainedHost(t *testing.T) {
	const key = "ws-evac-staging"
	repo, a := &fakeSOAP{}, &fakeSOAP{}
	repoHS, aHS := httptest.NewServer(repo), httptest.NewServer(a)
	defer repoHS.Close()
	defer aHS.Close()
	wsEPR := func() *wsa.EPR {
		k := el("vw:WorkspaceKey", vwsns.Workspace, key)
		return &wsa.EPR{Version: wsa.V200508, Address: repoHS.URL + "/wsrf/services/WorkspaceService", References: []*etree.Element{k}}
	}
	repo.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		if op != "GetMultipleResourceProperties" {
			return el("vw:"+op+"Response", vwsns.Workspace, ""), ""
		}
		// The manager has journaled the deploy; its CheckOut has not arrived yet.
		return workspaceProps("shutdown", "in-repository", "", nil), ""
	}
	a.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		switch op {
		case "SetResourceProperties":
			return el("wsrp:SetResourcePropertiesResponse", "http://docs.oasis-open.org/wsrf/rp-2", ""), ""
		case "GetResourceProperty":
			out := el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
			d := out.CreateElement("mgr:DeployedWorkspaces")
			d.CreateAttr("xmlns:mgr", vwsns.Manager)
			w := d.CreateElement("mgr:Workspace")
			w.CreateElement("mgr:Key").SetText(key)
			wsEPR().ChildElement(w, "mgr:WorkspaceReference", "wsa")
			w.CreateElement("mgr:State").SetText("shutdown")
			w.CreateElement("mgr:Deployment").SetText("staging")
			return out, ""
		}
		return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
	}
	cmd := newHostEvacuateCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{aHS.URL, "--url", repoHS.URL})
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	t.Logf("output:\n%s\nerr: %v", out.String(), err)
	if err == nil {
		t.Fatal("evacuate reported success with a deploy under way on the drained host")
	}
	if strings.Contains(err.Error(), "vws deploy "+key+" puts it on one") || !strings.Contains(err.Error(), "under way") {
		t.Fatalf("a deploy under way on the drained host is reported as a workspace in the repository to deploy again:\n%v", err)
	}
}
