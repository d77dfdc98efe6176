package audit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/store"
)

// stalling is a driver whose statements, while stalled, wait for their context (or
// for release), as on a connection to PostgreSQL that stopped answering: pgx gives up
// only when the context ends, or when TCP does, minutes to hours later.
type stalling struct {
	sqlite  driver.Driver
	dsn     string
	stalled atomic.Bool
	release chan struct{}
}

func (d *stalling) Connect(context.Context) (driver.Conn, error) {
	c, err := d.sqlite.Open(d.dsn)
	if err != nil {
		return nil, err
	}
	return &stallingConn{Conn: c, d: d}, nil
}

func (d *stalling) Driver() driver.Driver { return d.sqlite }

func (d *stalling) wait(ctx context.Context) error {
	if !d.stalled.Load() {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-d.release:
		return errors.New("released by the test")
	}
}

type stallingConn struct {
	driver.Conn
	d *stalling
}

func (c *stallingConn) Prepare(q string) (driver.Stmt, error) {
	s, err := c.Conn.Prepare(q)
	if err != nil {
		return nil, err
	}
	return &stallingStmt{Stmt: s, d: c.d}, nil
}

func (c *stallingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.d.wait(ctx); err != nil {
		return nil, err
	}
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (c *stallingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.d.wait(ctx); err != nil {
		return nil, err
	}
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *stallingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

type stallingStmt struct {
	driver.Stmt
	d *stalling
}

func (s *stallingStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	if err := s.d.wait(ctx); err != nil {
		return nil, err
	}
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

// TestAppendToAStalledDatabaseIsBounded: an audit append had no time limit, so with
// the connection to PostgreSQL stalled every request waiting for its audit record —
// the one writing the batch and those queued behind it — hung until TCP gave up. A
// batch's write is now bounded (writeTimeout): each waiting request fails (the
// unrecorded-audit fault, nothing done), and once the database answers again the
// trail goes on, intact.
func TestAppendToAStalledDatabaseIsBounded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := &stalling{sqlite: s.SQL().Driver(), dsn: store.SQLiteURI(filepath.Join(dir, "vws.db")) + "?_pragma=busy_timeout(5000)",
		release: make(chan struct{})}
	db := sql.OpenDB(d)
	defer db.Close()
	l := New(db, nil)
	seed(t, l, 2)

	defer func(w time.Duration) { writeTimeout = w }(writeTimeout)
	writeTimeout = 200 * time.Millisecond
	d.stalled.Store(true)
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			errs <- l.RecordDecision(as("/O=Grid/CN=Alice"), "manage Destroy", "ws", true, "r:1", "")
		})
	}
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		close(d.release)
		<-ended
		t.Fatalf("%d audit appends to a stalled database still waited after 10s (write timeout %v)", n, writeTimeout)
	}
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("append to a stalled database: %v, want it to fail on the write timeout", err)
		}
	}

	d.stalled.Store(false)
	if err := l.RecordDecision(as("/O=Grid/CN=Alice"), "manage Destroy", "ws-after", true, "r:1", ""); err != nil {
		t.Fatalf("append once the database answers: %v", err)
	}
	if got, err := l.Verify(ctx); err != nil || got != 3 {
		t.Errorf("verify: %d, %v; want the 2 records before the stall and the one after", got, err)
	}
}
