package audit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// Pruning drops old records after checking them, leaves a checkpoint the kept chain
// verifies from, and a server started afterwards (even on an emptied table) goes on
// appending to the same chain; a broken stretch is not pruned.
func TestPrune(t *testing.T) {
	ctx := context.Background()
	place := storetest.New(t, "")
	db1, err := place.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(db1.SQL(), nil)
	l.now = func() time.Time { clock = clock.Add(time.Hour); return clock }
	for i := 0; i < 10; i++ {
		l.Record(as("/O=Grid/CN=a"), "create", "ws", "done", "")
	} // records 1..10 at 01:00 … 10:00
	n, err := l.Prune(ctx, time.Date(2026, 1, 1, 5, 30, 0, 0, time.UTC))
	if err != nil || n != 5 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil || cp.LastID != 5 || cp.Pruned != 5 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	if got, err := l.Verify(ctx); err != nil || got != 5 {
		t.Fatalf("verify after prune: %d, %v", got, err)
	}
	l.Record(as("/O=Grid/CN=a"), "destroy", "ws", "done", "")
	if _, err := l.Prune(ctx, clock.Add(time.Hour)); err != nil { // everything
		t.Fatal(err)
	}
	db1.Close()

	// A restart on the emptied table continues from the checkpoint.
	db2, err := place.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	l2 := New(db2.SQL(), nil)
	l2.Record(as("/O=Grid/CN=b"), "create", "ws2", "done", "")
	if got, err := l2.Verify(ctx); err != nil || got != 1 {
		t.Fatalf("verify after a restart on a pruned log: %d, %v", got, err)
	}
	if e, _ := l2.List(ctx, 10); len(e) != 1 || e[0].ID != 12 {
		t.Fatalf("the record after the checkpoint: %+v", e)
	}

	// A record altered before the cut: pruning keeps the evidence.
	l2.Record(as("/O=Grid/CN=b"), "destroy", "ws2", "done", "")
	exec(t, db2.SQL(), `UPDATE audit SET caller = 'mallory' WHERE id = 12`)
	_, err = l2.Prune(ctx, time.Now().Add(time.Hour))
	var ce *ChainError
	if !errors.As(err, &ce) || ce.ID != 12 {
		t.Fatalf("pruning over an altered record: %v", err)
	}
	if e, _ := l2.List(ctx, 10); len(e) != 2 {
		t.Fatalf("a refused prune removed records: %d left", len(e))
	}
}

// Without AUTOINCREMENT SQLite would hand an emptied table's next row the id 1 again;
// the chain supplies its ids, so after pruning everything appends still continue from
// the checkpoint's last_id — with the cached head and with one read afresh.
func TestPruneAllThenAppendKeepsIDsIncreasing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db1, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	l := New(db1.SQL(), nil)
	seed(t, l, 4)
	if n, err := l.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 4 {
		t.Fatalf("prune everything: %d, %v", n, err)
	}
	l.Record(as("/O=Grid/CN=a"), "create", "ws-5", "done", "")

	// A second handle on the same file has no cached head: it reads the table, which
	// holds record 5, so empty the table again first to make it read the checkpoint.
	if n, err := l.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("prune record 5: %d, %v", n, err)
	}
	db2, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	l2 := New(db2.SQL(), nil)
	l2.Record(as("/O=Grid/CN=b"), "create", "ws-6", "done", "")
	l.Record(as("/O=Grid/CN=a"), "destroy", "ws-5", "done", "") // stale cache: collides, re-reads

	cp, err := l.Checkpoint(ctx)
	if err != nil || cp.LastID != 5 || cp.Pruned != 5 {
		t.Fatalf("checkpoint %+v, %v", cp, err)
	}
	if n, err := l.Verify(ctx); err != nil || n != 2 {
		t.Fatalf("Verify after pruning everything: %d, %v", n, err)
	}
	all, err := l.List(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != 6 || all[1].ID != 7 || all[0].Resource != "ws-6" || all[0].Prev != cp.LastHash {
		t.Fatalf("records after the checkpoint of record %d: %+v", cp.LastID, all)
	}
}

// Verify reads the checkpoint and the records in one snapshot: a Prune committed
// between the two reads (vws audit --prune-before beside the server) is no break.
func TestVerifyWhilePruning(t *testing.T) {
	ctx := context.Background()
	place := storetest.New(t, "")
	db1, err := place.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	l := New(db1.SQL(), nil)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { clock = clock.Add(time.Hour); return clock }
	seed(t, l, 10)
	var db2 *store.DB
	if place.URL != "" {
		db2, err = store.OpenPostgresBeside(ctx, place.URL, store.ReadWrite)
	} else {
		db2, err = store.Open(ctx, place.Dir)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	pruned := int64(-1)
	verifyRead = func() {
		pruned, err = New(db2.SQL(), nil).Prune(ctx, time.Date(2026, 1, 1, 5, 30, 0, 0, time.UTC))
	}
	defer func() { verifyRead = func() {} }()
	n, verr := l.Verify(ctx)
	if err != nil || pruned != 5 {
		t.Fatalf("the prune between the reads: %d, %v", pruned, err)
	}
	if verr != nil || n != 10 {
		t.Fatalf("Verify with a prune between its reads: %d, %v", n, verr)
	}
	if n, err := l.Verify(ctx); err != nil || n != 5 {
		t.Fatalf("Verify after: %d, %v", n, err)
	}
}
