package manager

import (
	"net/http/httptest"
	"testing"
	"time"
)

// TestHungRepositoryDoesNotHoldBackAnotherOnesReports: a host that deploys the
// workspaces of two Repositories (vws serve --repository, repeated) reports to each
// on its own: while one accepts connections and never answers, the other still hears
// of its workspaces' changes within moments, not after the hung one's timeout for
// each report queued before.
func TestHungRepositoryDoesNotHoldBackAnotherOnesReports(t *testing.T) {
	m, _, recA := crashManager(t, "ws-of-a", stateRunning, false)
	hung := hungServer(t)
	repoB := &fakeRepo{deployment: "deployed", host: "h"}
	b := httptest.NewServer(repoB)
	defer b.Close()
	m.repo = &repoClient{soap: clientFor(b), http: b.Client()}

	recA.WorkspaceAddress, recA.Token, recA.CheckedOutAs = hung.URL+"/wsrf/services/WorkspaceService", "tok-a", "h"
	recB := recA.clone()
	recB.Key, recB.WorkspaceAddress, recB.Token = "ws-of-b", b.URL+"/wsrf/services/WorkspaceService", "tok-b"
	for _, r := range []*record{recA, recB} {
		if err := m.journal.put(r); err != nil {
			t.Fatal(err)
		}
	}
	m.reportq, m.stop = make(chan string, 16), make(chan struct{})
	defer close(m.stop)
	m.wg.Add(1)
	go m.reporter()

	m.report(recA)
	time.Sleep(100 * time.Millisecond) // A's report is out, waiting for its answer
	m.report(recB)
	deadline := time.Now().Add(5 * time.Second)
	for !repoB.seen("ReportState") {
		if time.Now().After(deadline) {
			t.Fatal("repository B did not hear of its workspace's state within 5 s: its report waits behind one to the hung repository A")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
