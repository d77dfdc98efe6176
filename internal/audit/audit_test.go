package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	return storetest.Open(t).SQL()
}

func as(dn string) context.Context {
	return identity.With(context.Background(), identity.Identity{DN: dn})
}

func TestChainConcurrentAndVerify(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			// Two Logs on one database share the chain head.
			lg := l
			if g%2 == 1 {
				lg = New(db, nil)
			}
			for i := range 50 {
				lg.Record(as(fmt.Sprintf("/O=Grid/CN=u%d", g)), "create", fmt.Sprintf("ws-%d-%d", g, i), "done", "")
			}
		})
	}
	wg.Wait()
	n, err := l.Verify(context.Background())
	if err != nil || n != 1000 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
	all, err := l.List(context.Background(), 2000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range all {
		if e.ID != int64(i+1) {
			t.Fatalf("record %d has id %d", i, e.ID)
		}
	}
	if all[0].Prev != Genesis {
		t.Errorf("first prev %q", all[0].Prev)
	}
	id, hash, err := l.Head(context.Background())
	if err != nil || id != 1000 || hash != all[999].Hash {
		t.Errorf("Head = %d %s %v", id, hash, err)
	}
}

func seed(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		l.Record(as("/O=Grid/CN=Alice"), "destroy", fmt.Sprintf("ws-%d", i), "done", "")
	}
}

func exec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	for _, c := range []struct {
		name   string
		tamper string
		id     int64
		reason string
	}{
		{"altered detail", `UPDATE audit SET detail = 'nothing to see' WHERE id = 3`, 3, "contents do not match"},
		{"altered and rehashed", `UPDATE audit SET hash = 'f00d' WHERE id = 3`, 3, "contents do not match"},
		{"removed", `DELETE FROM audit WHERE id = 3`, 4, "record 2"},
		{"unhashed insert", `INSERT INTO audit (id, time, caller, operation, decision) VALUES (100, 0, 'x', 'y', 'done')`, 100, "no hash"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := openDB(t)
			l := New(db, nil)
			seed(t, l, 5)
			exec(t, db, c.tamper)
			n, err := l.Verify(context.Background())
			var ce *ChainError
			if !errors.As(err, &ce) || !errors.Is(err, ErrChainBroken) || ce.ID != c.id || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Verify = %d, %v; want record %d (%s)", n, err, c.id, c.reason)
			}
			if !strings.HasPrefix(err.Error(), fmt.Sprintf("record %d was altered or removed: ", c.id)) {
				t.Errorf("message %q", err)
			}
		})
	}
	// A record rewritten with a correct own hash still breaks its successor's prev.
	db := openDB(t)
	l := New(db, nil)
	seed(t, l, 5)
	all, _ := l.List(context.Background(), 10)
	e := all[2]
	e.Detail = "forged"
	exec(t, db, `UPDATE audit SET detail = $1, hash = $2 WHERE id = $3`, e.Detail, e.ComputeHash(), e.ID)
	if _, err := l.Verify(context.Background()); err == nil || !strings.Contains(err.Error(), "record 4 was altered or removed") {
		t.Fatalf("forged record 3: %v", err)
	}
}

// Records from before the chain exist only in SQLite stores (PostgreSQL came later).
func TestLegacyRecordsAreChained(t *testing.T) {
	sdb, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sdb.Close() })
	db := sdb.SQL()
	for i := 1; i <= 3; i++ {
		exec(t, db, `INSERT INTO audit (time, caller, operation, resource, decision, detail) VALUES ($1, 'old', 'create', $2, 'done', '')`, i, fmt.Sprint(i))
	}
	l := New(db, nil)
	if _, err := l.Verify(context.Background()); err == nil {
		t.Fatal("unchained records verified")
	}
	l.RecordDecision(as("/O=Grid/CN=Bob"), "manage", "ws-1", false, "rules.conf:4, but not the owner and no share rule", "Destroy")
	n, err := l.Verify(context.Background())
	if err != nil || n != 4 {
		t.Fatalf("after the first record: %d, %v", n, err)
	}
	got, err := l.Query(context.Background(), Filter{Decision: "denied"})
	if err != nil || len(got) != 1 || got[0].ID != 4 || got[0].Rule != "rules.conf:4, but not the owner and no share rule" || got[0].Caller != "/O=Grid/CN=Bob" {
		t.Fatalf("Query denied: %+v %v", got, err)
	}
}

func TestQuery(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	l.Record(as("/O=Grid/OU=A/CN=Alice [x]"), "create", "ws-1", "done", "")
	now = now.Add(time.Hour)
	l.RecordDecision(as("/O=Grid/OU=B/CN=Bob"), "manage", "ws-1", false, "r:1", "")
	now = now.Add(time.Hour)
	l.RecordDecision(context.Background(), "inspect", "ws-2", true, "r:2", "")
	now = now.Add(time.Hour)
	l.Record(as("/O=Grid/OU=A/CN=Alice [x]"), "destroy", "ws-1", "done", "")
	now = now.Add(time.Hour)
	// Characters that are patterns in SQL's LIKE (and a backslash) are literal in the
	// glob: record 6 must not match record 5's name.
	l.Record(as(`/O=Grid/CN=c_d%e\f`), "create", "ws-3", "done", "")
	now = now.Add(time.Hour)
	l.Record(as(`/O=Grid/CN=cXdYe\f`), "create", "ws-4", "done", "")

	ids := func(f Filter) string {
		t.Helper()
		es, err := l.Query(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, e := range es {
			s = append(s, fmt.Sprint(e.ID))
		}
		return strings.Join(s, ",")
	}
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		f    Filter
		want string
	}{
		{Filter{}, "1,2,3,4,5,6"},
		{Filter{Caller: "/O=Grid/OU=A/*"}, "1,4"},
		{Filter{Caller: "*[x]"}, "1,4"},
		{Filter{Caller: "<anonymous>"}, "3"},
		{Filter{Caller: `/O=Grid/CN=c_d%e\f`}, "5"},
		{Filter{Caller: `*_d%*`}, "5"},
		{Filter{Caller: "/o=grid/*"}, ""}, // DNs compare case-sensitively
		{Filter{Resource: "ws-1"}, "1,2,4"},
		{Filter{Resource: "ws-1", Operation: "manage"}, "2"},
		{Filter{Decision: "allowed"}, "3"},
		{Filter{Since: start.Add(90 * time.Minute)}, "3,4,5,6"},
		{Filter{Until: start.Add(time.Hour)}, "1,2"},
		{Filter{Limit: 2}, "5,6"},
	} {
		if got := ids(c.f); got != c.want {
			t.Errorf("Query(%+v) = %s, want %s", c.f, got, c.want)
		}
	}
}

// What a caller controls (a resource name from a URL path, a detail) may hold bytes
// that are not UTF-8, or NUL, which PostgreSQL's text refuses: the record is still
// written, with those bytes replaced, and the chain verifies. Otherwise such a request
// would be refused as unauditable, server trouble, on PostgreSQL only.
func TestRecordOfBytesThatAreNotText(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	ctx := as("/O=Grid/CN=a\x00b")
	if err := l.RecordDecision(ctx, "manage", "ws-\xff\xfe", true, "r:1", "detail \x00 \xc3"); err != nil {
		t.Fatalf("record: %v", err)
	}
	if n, err := l.Verify(context.Background()); err != nil || n != 1 {
		t.Fatalf("verify: %d, %v", n, err)
	}
	es, err := l.List(context.Background(), 10)
	if err != nil || len(es) != 1 {
		t.Fatalf("list: %v, %v", es, err)
	}
	e := es[0]
	if e.Resource != "ws-\uFFFD" || e.Caller != "/O=Grid/CN=a\uFFFDb" || e.Detail != "detail \uFFFD \uFFFD" {
		t.Errorf("stored %q %q %q", e.Caller, e.Resource, e.Detail)
	}
}

// Records queued while a batch is written go together in the next one; one the
// database refuses fails alone, and the others of its batch are written, chained.
func TestBatchWithARefusedRecord(t *testing.T) {
	db := openDB(t)
	l := New(db, nil)
	refuse := []string{`CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.resource = 'poison' BEGIN SELECT RAISE(FAIL, 'refused'); END`}
	if storetest.Postgres() {
		refuse = []string{`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.resource = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse()`}
	}
	for _, q := range refuse {
		exec(t, db, q)
	}
	c := l.chain
	c.mu.Lock() // a batch being written: the appends below queue
	resources := []string{"ws-1", "ws-2", "poison", "ws-3", "ws-4"}
	errs := make([]error, len(resources))
	var wg sync.WaitGroup
	for i, r := range resources {
		wg.Go(func() { errs[i] = l.RecordDecision(as("/O=Grid/CN=a"), "manage", r, true, "r:1", "") })
	}
	for queued := 0; queued < len(resources); {
		time.Sleep(time.Millisecond)
		c.queueMu.Lock()
		queued = len(c.queue)
		c.queueMu.Unlock()
	}
	c.mu.Unlock()
	wg.Wait()
	for i, r := range resources {
		if (errs[i] != nil) != (r == "poison") {
			t.Errorf("record of %s: %v", r, errs[i])
		}
	}
	if n, err := l.Verify(context.Background()); err != nil || n != 4 {
		t.Fatalf("verify: %d, %v", n, err)
	}
	es, _ := l.List(context.Background(), 10)
	var got []string
	for _, e := range es {
		got = append(got, e.Resource)
	}
	slices.Sort(got)
	if strings.Join(got, ",") != "ws-1,ws-2,ws-3,ws-4" {
		t.Errorf("records: %v", got)
	}
}
