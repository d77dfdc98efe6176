package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// fakeSOAP answers SOAP calls by the payload's local name; a nil element from handle
// is sent as a WorkspaceStateFault saying fault.
type fakeSOAP struct {
	mu    sync.Mutex
	calls []string
	// handle returns the response payload, or a fault description.
	handle func(op string, payload *etree.Element) (*etree.Element, string)
	// states, if set, gives the CurrentState and RequestedState a fault for op names
	// in its detail, as a WorkspaceStateFault does ("": none).
	states func(op string) (current, requested string)
}

func (f *fakeSOAP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	env, err := soap.Parse(data)
	if err != nil || env.Payload == nil {
		http.Error(w, "not soap", 400)
		return
	}
	op := env.Payload.Tag
	f.mu.Lock()
	f.calls = append(f.calls, op)
	f.mu.Unlock()
	out, fault := f.handle(op, env.Payload)
	msg := &soap.Message{Body: out}
	status := 200
	if out == nil {
		d := etree.NewElement("vw:WorkspaceStateFault")
		d.CreateAttr("xmlns:vw", vwsns.Workspace)
		d.CreateElement("vw:Description").SetText(fault)
		if f.states != nil {
			if cur, req := f.states(op); cur != "" {
				d.CreateAttr("xmlns:vwf", vwsns.Faults)
				d.CreateElement("vwf:CurrentState").SetText(cur)
				d.CreateElement("vwf:RequestedState").SetText(req)
			}
		}
		msg.Body = (&soap.Fault{Code: soap.CodeServer, String: fault, Detail: []*etree.Element{d}}).Element()
		msg.Body.CreateAttr("xmlns:soapenv", soap.NS11)
		status = 500
	}
	b, _ := msg.Bytes()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

func el(tag, ns, text string) *etree.Element {
	e := etree.NewElement(tag)
	e.CreateAttr("xmlns:"+strings.SplitN(tag, ":", 2)[0], ns)
	if text != "" {
		e.SetText(text)
	}
	return e
}

// workspaceProps is a Repository's GetMultipleResourceProperties answer about a
// workspace: its state, deployment and host, and the manager it is deployed on (nil:
// none).
func workspaceProps(state, deployment, host string, mgr *wsa.EPR) *etree.Element {
	out := el("wsrp:GetMultipleResourcePropertiesResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
	out.AddChild(el("vw:state", vwsns.Workspace, state))
	out.AddChild(el("vw:deployment", vwsns.Workspace, deployment))
	out.AddChild(el("vw:host", vwsns.Workspace, host))
	if mgr != nil {
		mgr.ChildElement(out, "vw:managerReference", "wsa")
		out.SelectElement("managerReference").CreateAttr("xmlns:vw", vwsns.Workspace)
	}
	return out
}

// TestEvacuateSaysWhereAWorkspaceIs: during vws host evacuate the host is drained, so
// a move whose deploy on the new host fails cannot deploy the workspace back there
// (the drained manager refuses any new deploy): the workspace ends in the repository,
// and the summary says so, with the command that deploys it again — not that it is
// still on the drained host.
func TestEvacuateSaysWhereAWorkspaceIs(t *testing.T) {
	const key = "ws-evac-1"
	var repoURL, aURL, bURL string
	draining := false
	var mu sync.Mutex
	deployedOnA := true

	repo := &fakeSOAP{}
	repoHS := httptest.NewServer(repo)
	defer repoHS.Close()
	repoURL = repoHS.URL
	a, b := &fakeSOAP{}, &fakeSOAP{}
	aHS, bHS := httptest.NewServer(a), httptest.NewServer(b)
	defer aHS.Close()
	defer bHS.Close()
	aURL, bURL = aHS.URL, bHS.URL

	wsEPR := func() *wsa.EPR {
		k := el("vw:WorkspaceKey", vwsns.Workspace, key)
		return &wsa.EPR{Version: wsa.V200508, Address: repoURL + "/wsrf/services/WorkspaceService", References: []*etree.Element{k}}
	}
	mgrEPR := func(base string) *wsa.EPR { return &wsa.EPR{Version: wsa.V200508, Address: base + managerPath} }

	repo.handle = func(op string, p *etree.Element) (*etree.Element, string) {
		mu.Lock()
		defer mu.Unlock()
		switch op {
		case "GetMultipleResourceProperties":
			if deployedOnA {
				return workspaceProps("shutdown", "deployed", "node-a", mgrEPR(aURL)), ""
			}
			return workspaceProps("shutdown", "in-repository", "", nil), ""
		case "Place":
			out := el("vw:PlaceResponse", vwsns.Workspace, "")
			c := out.CreateElement("vw:Candidate")
			c.CreateElement("vw:HostName").SetText("node-b")
			mgrEPR(bURL).ChildElement(c, "vw:ManagerReference", "wsa")
			return out, ""
		}
		return el("vw:"+op+"Response", vwsns.Workspace, ""), ""
	}
	manager := func(name, url string, isA bool) func(string, *etree.Element) (*etree.Element, string) {
		return func(op string, p *etree.Element) (*etree.Element, string) {
			mu.Lock()
			defer mu.Unlock()
			switch op {
			case "SetResourceProperties":
				draining = true
				return el("wsrp:SetResourcePropertiesResponse", "http://docs.oasis-open.org/wsrf/rp-2", ""), ""
			case "GetResourceProperty":
				out := el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", "")
				if strings.Contains(p.Text(), "DeployedWorkspaces") {
					d := out.CreateElement("mgr:DeployedWorkspaces")
					d.CreateAttr("xmlns:mgr", vwsns.Manager)
					if isA && deployedOnA {
						w := d.CreateElement("mgr:Workspace")
						w.CreateElement("mgr:Key").SetText(key)
						w.CreateElement("mgr:Name").SetText("job")
						wsEPR().ChildElement(w, "mgr:WorkspaceReference", "wsa")
						w.CreateElement("mgr:State").SetText("shutdown")
						w.CreateElement("mgr:Deployment").SetText("deployed")
					}
				} else {
					out.AddChild(el("mgr:DomainType", vwsns.Manager, "kvm"))
				}
				return out, ""
			case "Undeploy":
				deployedOnA = false
				return el("mgr:UndeployResponse", vwsns.Manager, "shutdown"), ""
			case "Deploy":
				if isA && draining {
					return nil, "host " + name + " is draining for maintenance and takes no new workspaces; workspace " + key + " was not deployed"
				}
				if !isA {
					return nil, "the deploy on " + name + " failed (staging)"
				}
			}
			return el("mgr:"+op+"Response", vwsns.Manager, ""), ""
		}
	}
	a.handle = manager("node-a", aURL, true)
	b.handle = manager("node-b", bURL, false)

	cmd := newHostEvacuateCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{aURL, "--url", repoURL})
	cmd.SetContext(context.Background())
	err := cmd.Execute()
	t.Logf("stdout:\n%s\nstderr:\n%s\nerr: %v", out.String(), errOut.String(), err)
	mu.Lock()
	onA := deployedOnA
	mu.Unlock()
	if onA || err == nil {
		t.Fatalf("the fake's move back was not refused (on A: %v, err %v): the test sets nothing up", onA, err)
	}
	if strings.Contains(err.Error(), "are still on "+aURL) {
		t.Fatalf("the workspace is in the repository (the move back to the drained host was refused), but evacuate says: %v", err)
	}
	for _, want := range []string{"are in the repository", key + ": WorkspaceStateFault: the deploy on node-b failed", "back on this drained host", "vws deploy " + key + " --state shutdown puts it on a host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("evacuate's summary does not say %q:\n%v", want, err)
		}
	}
}
