package audit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// vws audit --prune-before beside a busy server: the server appends continuously
// through its own handle while the prune runs through another (two processes). The
// prune must succeed, the server must lose no record, and the chain must verify.
func TestPruneBesideABusyWriter(t *testing.T) {
	ctx := context.Background()
	place := storetest.New(t, "")
	db1, err := place.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db1.Close()
	server := New(db1.SQL(), nil)
	seed(t, server, 200)
	before := time.Now().Add(time.Millisecond)
	time.Sleep(5 * time.Millisecond)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var appended, lost atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := server.RecordDecision(as("/O=Grid/CN=Bob"), "inspect", "ws", true, "allow inspect *", ""); err != nil {
				lost.Add(1)
				t.Errorf("the server's append during the prune: %v", err)
			}
			appended.Add(1)
		}
	})
	for appended.Load() < 50 { // the writer is going
		time.Sleep(time.Millisecond)
	}

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
	start := time.Now()
	n, perr := New(db2.SQL(), nil).Prune(ctx, before)
	took := time.Since(start)
	for appended.Load() < 100 { // and goes on after it
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()

	if perr != nil || n != 200 {
		t.Fatalf("prune beside a busy writer (after %v, %d appended meanwhile): %d, %v", took, appended.Load(), n, perr)
	}
	if took > 10*time.Second {
		t.Errorf("prune took %v", took)
	}
	got, err := New(db2.SQL(), nil).Verify(ctx)
	if err != nil {
		t.Fatalf("verify after the prune: %v", err)
	}
	if want := appended.Load() - lost.Load(); int64(got) != want {
		t.Errorf("verify after the prune: %d records hold, want the %d appended", got, want)
	}
}
