package manager

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// lateAnswerRepo is fakeRepo whose answer to the first ReportState reaches the
// manager only once release is closed: the Repository applied the report, and its
// answer is slow on the way back (a congested link, a stalled proxy).
type lateAnswerRepo struct {
	*fakeRepo
	once    sync.Once
	applied chan struct{}
	release chan struct{}
}

func (l *lateAnswerRepo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	late := false
	if strings.Contains(string(body), "ReportState") {
		l.once.Do(func() { late = true })
	}
	if !late {
		l.fakeRepo.ServeHTTP(w, r)
		return
	}
	rec := httptest.NewRecorder()
	l.fakeRepo.ServeHTTP(rec, r)
	close(l.applied)
	<-l.release
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// TestALateReportOfAnEarlierDeploymentDoesNotSilenceTheNextOne: a report of a
// workspace's earlier deployment on this host whose answer comes back after the
// workspace was undeployed and deployed here again must not pass for the new
// deployment's report: the new one's first state (shutdown/deployed, as the earlier
// one's was) would never be sent, by the reporter or the reconciler, and the
// Repository would keep the check-out's "staging" for good.
func TestALateReportOfAnEarlierDeploymentDoesNotSilenceTheNextOne(t *testing.T) {
	const k = "ws-redeployed"
	m, _, rec := crashManager(t, k, stateShutdown, false)
	repo := &lateAnswerRepo{fakeRepo: &fakeRepo{deployment: "deployed", host: "h"}, applied: make(chan struct{}), release: make(chan struct{})}
	hs := httptest.NewServer(repo)
	defer hs.Close()
	m.repo = &repoClient{soap: clientFor(hs), http: hs.Client()}
	rec.WorkspaceAddress, rec.Token, rec.CheckedOutAs, rec.CheckOutID = hs.URL+"/wsrf/services/WorkspaceService", "tok-1", "h", "first"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		m.sendReport(context.Background(), k) // the earlier deployment's shutdown/deployed
	}()
	<-repo.applied

	// Meanwhile the workspace is undeployed (its record removed) and deployed here
	// again: Deploy forgets what was reported and journals the new deployment, which
	// ends shut down and deployed, as the earlier one was.
	if err := m.journal.remove(k); err != nil {
		t.Fatal(err)
	}
	m.reported.Delete(k) // as Deploy does
	again := rec.clone()
	again.Token, again.CheckOutID = "tok-2", "second"
	if err := m.journal.put(again); err != nil {
		t.Fatal(err)
	}
	close(repo.release) // the earlier report's answer arrives
	<-sent

	// The new deployment's report, as the reporter (or the reconciler) sends it.
	m.sendReport(context.Background(), k)
	repo.mu.Lock()
	reports := 0
	for _, c := range repo.calls {
		if c == "ReportState" {
			reports++
		}
	}
	repo.mu.Unlock()
	if reports != 2 {
		t.Fatalf("the Repository heard %d report(s); want 2: the new deployment's shutdown/deployed was taken as told already, "+
			"because the earlier deployment's late answer was remembered as its report", reports)
	}
}
