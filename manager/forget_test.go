package manager

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
)

// TestTakenAwayActsOnlyOnTheDeploymentAskedAbout: the reconciler asks the Repository
// where a workspace is, and removes the local copy of one taken back; when the
// workspace was handed back and deployed here again while the question was out (a
// new check-out, another lock token), the answer is about the old deployment and
// the new one is kept.
func TestTakenAwayActsOnlyOnTheDeploymentAskedAbout(t *testing.T) {
	const k = "ws-redeployed"
	m, _, rec := crashManager(t, k, stateRunning, false)
	rec.Token, rec.CheckedOutAs = "old-token", "h"
	var asked bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		env, err := soap.Parse(data)
		if err != nil || env.Payload == nil || env.Payload.Tag != "GetMultipleResourceProperties" {
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		asked = true
		// Meanwhile: undeployed, and deployed here again under a new lock.
		again := *rec
		again.Token = "new-token"
		if err := m.journal.put(&again); err != nil {
			t.Error(err)
		}
		out := etree.NewElement("r:GetMultipleResourcePropertiesResponse")
		out.CreateAttr("xmlns:r", vwsns.Workspace)
		out.CreateElement("r:deployment").SetText("in-repository")
		answerSOAP(w, out)
	}))
	defer hs.Close()
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	rec.WorkspaceAddress = hs.URL + "/wsrf/services/WorkspaceService"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	m.forgetDestroyed(context.Background(), []*record{rec})
	if !asked {
		t.Fatal("the Repository was not asked: the test tests nothing")
	}
	cur, err := m.journal.get(k)
	if err != nil || cur.Token != "new-token" {
		t.Fatalf("the new deployment's record: %+v, %v", cur, err)
	}
	if _, err := os.Stat(m.workspaceDir(k)); err != nil {
		t.Fatalf("the new deployment's files were removed on an answer about the old one: %v", err)
	}
}
