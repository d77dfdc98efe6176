package audit

import (
	"context"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store/storetest"
)

// TestPruneAfterTheClockSteppedBack: the system clock is stepped back an hour (NTP
// correcting a fast clock) while the server runs. Prune selects records by time, not
// by id, so the record written just before the step is skipped between older-stamped
// ones; the next one's prev hash then does not match and Prune refuses, reporting an
// intact record as altered ("it does not verify; ... kept as evidence") — although
// Verify says the chain holds.
func TestPruneAfterTheClockSteppedBack(t *testing.T) {
	ctx := context.Background()
	db, err := storetest.New(t, "").Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := New(db.SQL(), nil)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// Records 1..4 at 01:00..04:00, record 5 at 05:30, then the clock steps back an
	// hour: records 6..8 at 04:40, 04:50, 05:00.
	stamps := []time.Duration{1 * time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 5*time.Hour + 30*time.Minute,
		4*time.Hour + 40*time.Minute, 4*time.Hour + 50*time.Minute, 5 * time.Hour}
	i := 0
	l.now = func() time.Time { d := stamps[i]; i++; return base.Add(d) }
	for range stamps {
		if err := l.RecordDecision(as("/O=Grid/CN=a"), "inspect GetResourceProperty", "ws", true, "rules.conf:1", ""); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := l.Verify(ctx); err != nil || n != 8 {
		t.Fatalf("verify: %d, %v", n, err)
	}
	// Keep the last five hours' worth: everything before 05:10.
	l.now = func() time.Time { return base.Add(6 * time.Hour) }
	n, err := l.Prune(ctx, base.Add(5*time.Hour+10*time.Minute))
	if err != nil || n != 4 {
		t.Fatalf("prune of an intact chain: %d, %v; want the 4 records before the first at or after 05:10", n, err)
	}
	if got, err := l.Verify(ctx); err != nil {
		t.Fatalf("verify after prune: %d, %v", got, err)
	}
}
