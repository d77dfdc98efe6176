package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// seedFast writes n chained records straight into the table, in one transaction
// (appending them one by one would take minutes), aged an hour.
func seedFast(t *testing.T, db *store.DB, n int) {
	t.Helper()
	tx, err := db.SQL().Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	old := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli()).UTC()
	prev := Genesis
	const per = 500
	for first := 1; first <= n; first += per {
		var q strings.Builder
		q.WriteString(`INSERT INTO audit (` + columns + `) VALUES `)
		var args []any
		for id := first; id < first+per && id <= n; id++ {
			e := Entry{ID: int64(id), Time: old, Caller: "/O=Grid/CN=Alice", Operation: "destroy",
				Resource: fmt.Sprintf("ws-%d", id), Decision: "done", Prev: prev}
			e.Hash = e.ComputeHash()
			prev = e.Hash
			if id > first {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)") // numbered ones bind slowly by the thousand
			args = append(args, e.ID, e.Time.UnixMilli(), e.Caller, e.Operation, e.Resource, e.Decision, e.Detail, e.Rule, e.Prev, e.Hash)
		}
		if _, err := tx.Exec(q.String(), args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// vws audit --prune-before of a large trail beside the running server (SQLite): every
// request the server takes appends a record first, so a prune that held SQLite's write
// lock for its whole length stalled them all (and, past busy_timeout, failed them with
// "database is locked"). Pruned in short transactions, the server's appends go on
// between them: none waits for more than a small part of the prune.
func TestPruneDoesNotStallAppends(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db1, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	const old = 150000
	seedFast(t, db1, old)
	server := New(db1.SQL(), nil)
	before := time.Now()

	db2, err := store.Open(ctx, dir) // the CLI's own handle, as another process has
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()

	pruning := make(chan struct{})
	pruned := make(chan struct{})
	var appended atomic.Int64
	var maxWait atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		<-pruning
		for {
			select {
			case <-pruned:
				return
			default:
			}
			start := time.Now()
			if err := server.RecordDecision(as("/O=Grid/CN=Bob"), "inspect", "ws", true, "allow inspect *", ""); err != nil {
				t.Errorf("the server's append during the prune: %v", err)
				return
			}
			if w := int64(time.Since(start)); w > maxWait.Load() {
				maxWait.Store(w)
			}
			appended.Add(1)
			time.Sleep(5 * time.Millisecond) // a request now and then
		}
	})
	start := time.Now()
	close(pruning)
	n, perr := New(db2.SQL(), nil).Prune(ctx, before)
	took := time.Since(start)
	close(pruned)
	wg.Wait()
	if perr != nil || n != old {
		t.Fatalf("prune of %d records beside the server: %d, %v", old, n, perr)
	}
	t.Logf("prune of %d records took %v; %d appends meanwhile, the longest waited %v", old, took, appended.Load(), time.Duration(maxWait.Load()))
	if w := time.Duration(maxWait.Load()); w > took/4 {
		t.Errorf("an append waited %v of the prune's %v: the prune holds the write lock throughout", w, took)
	}
	if got, err := server.Verify(ctx); err != nil || int64(got) != appended.Load() {
		t.Errorf("verify after the prune: %d, %v; want the %d appended", got, err, appended.Load())
	}
}

// A prune stopped midway (here: interrupted between batches) keeps what it removed,
// says how much that was, and leaves a trail that verifies from its checkpoint; the
// same prune again removes the rest.
func TestPruneInterruptedKeepsAVerifiableTrail(t *testing.T) {
	defer func(n int64) { pruneBatch = n }(pruneBatch)
	pruneBatch = 10
	ctx := context.Background()
	db := storetest.Open(t)
	l := New(db.SQL(), nil)
	seed(t, l, 35)
	before := time.Now().Add(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	seed(t, l, 2) // kept

	cctx, cancel := context.WithCancel(ctx)
	batches := 0
	l.now = func() time.Time { // read once a batch, for its checkpoint
		if batches++; batches == 2 {
			cancel() // the interrupt comes during the second batch
		}
		return time.Now()
	}
	n, err := l.Prune(cctx, before)
	l.now = time.Now
	if !errors.Is(err, context.Canceled) || n < 10 || n%10 != 0 || n > 20 {
		t.Fatalf("interrupted prune: %d, %v; want the first batch or two removed and the cancellation", n, err)
	}
	if got, err := l.Verify(ctx); err != nil || int64(got) != 37-n {
		t.Fatalf("verify after an interrupted prune of %d: %d, %v; want %d", n, got, err, 37-n)
	}
	if rest, err := l.Prune(ctx, before); err != nil || rest != 35-n {
		t.Fatalf("the same prune again: %d, %v; want the other %d", rest, err, 35-n)
	}
	if cp, err := l.Checkpoint(ctx); err != nil || cp.LastID != 35 || cp.Pruned != 35 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
}
