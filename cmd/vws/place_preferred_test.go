package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"
	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/internal/wsa"
)

// TestPlaceSaysTheCreatorPreferredTheHost: a host ranked first because the
// workspace's creator preferred it (fac:PreferredHost) ranks before one caching
// more; vws place and vws deploy must say so, in the Repository's words, or the
// ranking reads as wrong.
func TestPlaceSaysTheCreatorPreferredTheHost(t *testing.T) {
	repo := &fakeSOAP{}
	hs := httptest.NewServer(repo)
	defer hs.Close()
	repo.handle = func(op string, _ *etree.Element) (*etree.Element, string) {
		out := el("vw:PlaceResponse", vwsns.Workspace, "")
		for _, c := range []struct{ name, cached, preferred string }{{"node8", "0", "preferred by the workspace's creator"}, {"node7", "4294967296", ""}} {
			cand := out.CreateElement("vw:Candidate")
			cand.CreateElement("vw:HostName").SetText(c.name)
			(&wsa.EPR{Version: wsa.V200508, Address: "http://" + c.name + ":8080" + managerPath}).ChildElement(cand, "vw:ManagerReference", "wsa")
			cand.CreateElement("vw:CachedBytes").SetText(c.cached)
			cand.CreateElement("vw:StagedBytes").SetText("0")
			cand.CreateElement("vw:MemoryFreeMiB").SetText("2048")
			cand.CreateElement("vw:DeployedWorkspaces").SetText("0")
			if c.preferred != "" {
				cand.CreateElement("vw:Preferred").SetText(c.preferred)
			}
		}
		return out, ""
	}

	cmd := newPlaceCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"ws-key", "--url", hs.URL})
	cmd.SetContext(context.Background())
	if err := cmd.Execute(); err != nil {
		t.Fatalf("vws place: %v\n%s", err, errOut.String())
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 3 || !strings.Contains(lines[0], "PREFERRED") || !strings.Contains(lines[1], "node8") ||
		!strings.Contains(lines[1], "preferred by the workspace's creator") || strings.Contains(lines[2], "preferred") {
		t.Errorf("vws place printed:\n%s\nwant node8's row to say it is preferred by the workspace's creator, node7's not", out.String())
	}

	ws := &wsa.EPR{Version: wsa.V200508, Address: hs.URL + "/wsrf/services/" + vwsns.WorkspaceService}
	c := &cobra.Command{}
	c.SetContext(context.Background())
	c.SetErr(&errOut)
	mgr, why, err := place(c, ws, nil, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(mgr.Address, "node8") || !strings.HasPrefix(why, "placed on node8, preferred by the workspace's creator: 0 B of its images cached there") {
		t.Errorf("vws deploy placed on %s, saying %q; want node8, saying its creator preferred it", mgr.Address, why)
	}
}
