package repository

import (
	"context"
	"testing"
	"time"
)

// TestLateReportIsNotApplied: a manager that gave up waiting on a report sends a newer
// one; the first, held up, may reach the Repository after it. Reports observed before
// the latest one applied under the same lock change nothing and are answered with
// what the workspace says. Under a new check-out (another manager's clock) ordering
// starts again.
func TestLateReportIsNotApplied(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	key := f.create("ordered", "", "")
	m, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC()
	report := func(token, state string, observed time.Time) string {
		t.Helper()
		got, _, _, err := f.r.ReportState(ctx, key, token, "host-a", state, "deployed", "", observed)
		if err != nil {
			t.Fatalf("report %s observed at %s: %v", state, observed, err)
		}
		return got
	}
	report(m.Token, "running", t0.Add(2*time.Second))
	if got := report(m.Token, "paused", t0.Add(time.Second)); got != "running" {
		t.Errorf("a report observed before the one applied answered %q; want the workspace's running", got)
	}
	if got := f.prop(key, PropState); got != "running" {
		t.Fatalf("a late report set the state to %q", got)
	}
	if got := report(m.Token, "paused", t0.Add(3*time.Second)); got != "paused" || f.prop(key, PropState) != "paused" {
		t.Fatalf("a newer report was not applied: answered %q, state %q", got, f.prop(key, PropState))
	}
	// Survives a restart: the order is kept with the workspace.
	f.reopen()
	if got := report(m.Token, "running", t0.Add(2500*time.Millisecond)); got != "paused" {
		t.Errorf("after a restart, a late report answered %q; want paused", got)
	}
	if _, _, err := f.r.CheckIn(ctx, key, CheckInRequest{Token: m.Token, OverlayDigest: m.Images[len(m.Images)-1].Digest, OverlaySize: -1, MemorySize: -1, State: "shutdown"}); err != nil {
		t.Fatal(err)
	}
	m2, err := f.r.CheckOut(ctx, key, "host-a", "", nil, &tester)
	if err != nil {
		t.Fatal(err)
	}
	if got := report(m2.Token, "running", t0); got != "running" {
		t.Errorf("the first report of a new check-out, observed earlier than the last one's, answered %q; want running", got)
	}
}
