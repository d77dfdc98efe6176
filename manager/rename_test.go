package manager

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"

	"github.com/vws-grid/vws/internal/client"
	"github.com/vws-grid/vws/internal/soap"
	"github.com/vws-grid/vws/internal/vwsns"
)

// fakeRepo is a Repository that has one workspace deployed on host, and notes the
// operations it is sent (SOAP body names; "PUT <path>" for uploads).
type fakeRepo struct {
	mu         sync.Mutex
	deployment string
	host       string
	calls      []string
	reportHost []string
	checkedIn  []string // the State of each CheckIn
	// holds is the state ReportState answers, as a Repository that applied a later
	// report does; "" answers what was reported, as one that applied it.
	holds string
	// checkInFault, if set, is the fault every CheckIn is answered with.
	checkInFault *soap.Fault
}

// serveFakeRepo has m reach repo, served over HTTP until the test ends, as rec's
// workspace's Repository.
func serveFakeRepo(t *testing.T, m *Manager, rec *record, repo *fakeRepo) {
	hs := httptest.NewServer(repo)
	t.Cleanup(hs.Close)
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	rec.WorkspaceAddress = hs.URL + "/wsrf/services/WorkspaceService"
}

func (f *fakeRepo) seen(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if strings.HasPrefix(c, op) {
			return true
		}
	}
	return false
}

func (f *fakeRepo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodPut {
		f.calls = append(f.calls, "PUT "+r.URL.Path)
		w.Write([]byte(`{"digest":"sha256:00000000000000000000000000000000000000000000000000000000000000aa","size":1}`))
		return
	}
	env, err := soap.Parse(data)
	if err != nil || env.Payload == nil {
		http.Error(w, "bad soap", 400)
		return
	}
	op := env.Payload.Tag
	f.calls = append(f.calls, op)
	out := etree.NewElement("r:" + op + "Response")
	out.CreateAttr("xmlns:r", vwsns.Workspace)
	switch op {
	case "GetMultipleResourceProperties":
		out.CreateElement("r:deployment").SetText(f.deployment)
		out.CreateElement("r:host").SetText(f.host)
	case "CheckIn":
		if f.checkInFault != nil {
			b, _ := (&soap.Message{Body: f.checkInFault.Element()}).Bytes()
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write(b)
			return
		}
		f.deployment, f.host = "in-repository", ""
		for _, c := range env.Payload.ChildElements() {
			if c.Tag == "State" {
				f.checkedIn = append(f.checkedIn, c.Text())
			}
		}
	case "ReportState":
		state, deployment := f.holds, f.deployment
		for _, c := range env.Payload.ChildElements() {
			switch {
			case c.Tag == "Host":
				f.reportHost = append(f.reportHost, c.Text())
			case c.Tag == "State" && state == "":
				state = c.Text()
			case c.Tag == "Deployment" && f.holds == "":
				deployment = c.Text()
			}
		}
		out.CreateElement("r:State").SetText(state)
		out.CreateElement("r:Deployment").SetText(deployment)
	}
	answerSOAP(w, out)
}

// TestUndeployAfterHostRenameHandsBack: a host restarted under another --host-name
// (README: renaming a host does not pass for the workspace being taken away) still
// holds the workspaces checked out under its old name. Undeploying one must hand its
// changes back (upload + CheckIn), not delete them locally as if it had been checked
// in already.
func TestUndeployAfterHostRenameHandsBack(t *testing.T) {
	const k = "ws-renamed"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	if err := os.WriteFile(filepath.Join(m.cfg.Dir, "base.img"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	repo := &fakeRepo{deployment: "deployed", host: "old-name"}
	serveFakeRepo(t, m, rec, repo)
	m.cfg.Host = "new-name" // restarted with --host-name new-name
	rec.Token, rec.CheckedOutAs = "tok", "old-name"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	res, err := m.Undeploy(context.Background(), workspaceEPR(rec))
	t.Logf("Undeploy: %+v, %v; repository saw %v", res, err, repo.calls)
	if err != nil {
		t.Fatalf("Undeploy after the rename: %v", err)
	}
	if !repo.seen("CheckIn") {
		_, statErr := os.Stat(m.workspaceDir(k))
		t.Fatalf("Undeploy answered success (deployment %q) but never checked the workspace in: the Repository still has it %s on %s; "+
			"workspace directory gone: %v", res.Deployment, repo.deployment, repo.host, os.IsNotExist(statErr))
	}
}

// TestReportAfterHostRenameNamesTheCheckOutHost: the Repository refuses a ReportState
// whose host is not the one the workspace is checked out on; a renamed host must keep
// reporting under the name it checked the workspace out under.
func TestReportAfterHostRenameNamesTheCheckOutHost(t *testing.T) {
	const k = "ws-renamed-report"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	repo := &fakeRepo{deployment: "deployed", host: "old-name"}
	serveFakeRepo(t, m, rec, repo)
	m.cfg.Host = "new-name"
	rec.Token, rec.CheckedOutAs = "tok", "old-name"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	m.sendReport(context.Background(), k)
	if len(repo.reportHost) != 1 || repo.reportHost[0] != "old-name" {
		t.Fatalf("ReportState named host %q; the workspace is checked out on %q (the Repository refuses any other)", repo.reportHost, "old-name")
	}
}

func clientFor(hs *httptest.Server) *client.Client { return client.New(hs.Client()) }

// answerSOAP answers a fake Repository's request with body in a SOAP envelope.
func answerSOAP(w http.ResponseWriter, body *etree.Element) {
	b, _ := (&soap.Message{Body: body}).Bytes()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Write(b)
}
