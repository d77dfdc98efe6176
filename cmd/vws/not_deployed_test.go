package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"
)

// TestNotDeployedAdviceFitsTheCommand: a workspace with no vw:managerReference is in
// the repository. Each command that needs its manager says so in its own terms:
// undeploy and shutdown have nothing to do (deploying it first would be no help),
// start, pause, unpause and console are told how to deploy it.
func TestNotDeployedAdviceFitsTheCommand(t *testing.T) {
	repo := &fakeSOAP{handle: func(op string, p *etree.Element) (*etree.Element, string) {
		return el("wsrp:GetResourcePropertyResponse", "http://docs.oasis-open.org/wsrf/rp-2", ""), ""
	}}
	hs := httptest.NewServer(repo)
	defer hs.Close()
	const key = "ws-in-repo"
	for _, tc := range []struct {
		cmd         string
		says, avoid []string
	}{
		{"undeploy", []string{"not deployed", "nothing to undeploy", "--host"}, []string{"deploy it first"}},
		{"shutdown", []string{"not deployed", "nothing to shut down", "--host"}, []string{"deploy it first"}},
		{"start", []string{"not deployed", "vws deploy " + key + " --state running", "--host"}, nil},
		{"pause", []string{"not deployed", "nothing to pause", "vws deploy " + key + " --state running"}, nil},
		{"unpause", []string{"not deployed", "nothing to unpause", "vws deploy " + key + " --state running"}, nil},
		{"console", []string{"not deployed", "vws deploy " + key}, nil},
	} {
		r := vwsRun(t, context.Background(), tc.cmd, key, "--url", hs.URL)
		wantError(t, r, tc.says...)
		for _, n := range tc.avoid {
			if strings.Contains(r.stderr, n) {
				t.Errorf("vws %s on a workspace that is not deployed says %q: %s", tc.cmd, n, r.stderr)
			}
		}
	}
}
