package manager

import (
	"context"
	"testing"
)

// TestReportNotAppliedIsSentAgain: a Repository that holds a report observed later
// (this host's clock stepped back) answers a report with the state it keeps, not the
// one told. That report is not taken as heard: the reconciler sends it again, until
// the Repository applies it.
func TestReportNotAppliedIsSentAgain(t *testing.T) {
	const k = "ws-report-applied"
	m, _, rec := crashManager(t, k, statePaused, false)
	repo := &fakeRepo{deployment: "deployed", host: m.cfg.Host, holds: stateRunning}
	serveFakeRepo(t, m, rec, repo)
	rec.Token = "tok"
	if err := m.journal.put(rec); err != nil {
		t.Fatal(err)
	}
	m.sendReport(context.Background(), k)
	if got := m.reportedState(k); got != "" {
		t.Fatalf("a report the Repository answered with %s is taken as heard: %q", stateRunning, got)
	}
	repo.mu.Lock()
	repo.holds = ""
	repo.mu.Unlock()
	m.sendReport(context.Background(), k)
	if got, want := m.reportedState(k), rec.reportKey(); got != want {
		t.Fatalf("a report the Repository applied is remembered as %q; want %q", got, want)
	}
}
