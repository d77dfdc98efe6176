package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// TestRedactURLHidesEveryPassword: RedactURL is what errors and the copy's "Next"
// text print of a database URL; pgx takes the password from the query too
// (?password=, ?sslpassword=), and a libpq key=value string may hold one.
func TestRedactURLHidesEveryPassword(t *testing.T) {
	for _, u := range []string{
		"postgres://vws@db/vws?password=s3cret",
		"postgres://vws@db/vws?sslmode=verify-full&sslpassword=s3cret",
		"host=db user=vws password=s3cret dbname=vws",
	} {
		if got := store.RedactURL(u); strings.Contains(got, "s3cret") {
			t.Errorf("RedactURL(%q) = %q: the password is shown", u, got)
		}
	}
	// The rest stays readable.
	if got := store.RedactURL("postgres://vws:s3cret@db:5432/vws?sslmode=verify-full&password=s3cret"); got != "postgres://vws:xxxxx@db:5432/vws?password=xxxxx&sslmode=verify-full" {
		t.Errorf("RedactURL = %q", got)
	}
}

// TestConcurrentHealthChecksAfterACut: after a database restart cut the server's lock
// session, health checks that run at the same time (several /healthz, or one beside
// the 2 s watcher) take the lock again once, on one session: none reports "in use by
// another vws server", and the server is not told (Lost) to stop.
func TestConcurrentHealthChecksAfterACut(t *testing.T) {
	ctx := context.Background()
	db, _ := serverOnNewDatabase(t)
	var falseInUse atomic.Int64
	var sample atomic.Value
	lost := make(chan error, 1)
	go func() {
		if err, ok := <-db.Lost(); ok {
			lost <- err
		}
	}()
	for cycle := 0; cycle < 2; cycle++ {
		storetest.CutLock(t, db.SQL())
		time.Sleep(50 * time.Millisecond) // the backend goes away
		var wg sync.WaitGroup
		stop := time.Now().Add(2200 * time.Millisecond) // past one watcher tick
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(stop) {
					if err := db.Ping(ctx); errors.Is(err, store.ErrInUse) {
						falseInUse.Add(1)
						sample.CompareAndSwap(nil, err.Error())
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
		wg.Wait()
		select {
		case err := <-lost:
			t.Fatalf("cycle %d: with no other server, the server was told to stop (Lost): %v; false in-use health checks: %d (%v)", cycle, err, falseInUse.Load(), sample.Load())
		default:
		}
	}
	if n := falseInUse.Load(); n > 0 {
		t.Fatalf("no other server exists, yet %d health checks said: %v", n, sample.Load())
	}
}

// TestTwoHealthChecksAfterACut: two health checks at once after one cut (a /healthz
// beside the watcher's tick, or two /healthz): the lock is taken again once, and
// neither later checks nor the watcher find it held by "another vws server".
func TestTwoHealthChecksAfterACut(t *testing.T) {
	ctx := context.Background()
	db, _ := serverOnNewDatabase(t)
	storetest.CutLock(t, db.SQL())
	time.Sleep(50 * time.Millisecond)
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); <-start; errs[i] = db.Ping(ctx) }()
	}
	close(start)
	wg.Wait()
	t.Logf("the two concurrent health checks: %v / %v", errs[0], errs[1])
	time.Sleep(100 * time.Millisecond)
	lone := db.Ping(ctx)
	select {
	case err := <-db.Lost():
		t.Fatalf("no other server exists, yet the server was told to stop: %v (a lone health check before: %v)", err, lone)
	case <-time.After(5 * time.Second):
	}
	if lone != nil {
		t.Fatalf("a lone health check after the two: %v", lone)
	}
}

// TestCancelledHealthCheckKeepsTheLock: a health check whose request is cancelled
// (the /healthz client gave up) does not close the lock's session — pgx closes a
// connection whose Ping failed, and with it the lock — so a second server started
// then is still refused.
func TestCancelledHealthCheckKeepsTheLock(t *testing.T) {
	db, url := serverOnNewDatabase(t)
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	t.Logf("cancelled health check: %v", db.Ping(cctx))
	other, err := store.OpenPostgres(context.Background(), url)
	if err == nil {
		defer other.Close()
		t.Fatalf("a second server got the database of a running server, after one of its health checks was cancelled")
	}
}

// serverOnNewDatabase is a server's store, holding the lock of a new PostgreSQL
// database (the test is skipped without one), and that database's URL.
func serverOnNewDatabase(t *testing.T) (*store.DB, string) {
	t.Helper()
	url := storetest.NewPostgres(t, storetest.Server(t))
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, url
}
