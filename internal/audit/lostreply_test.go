package audit

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/vws-grid/vws/internal/store"
)

// lostReplies is a driver whose next armed statements run, and commit, but whose
// reply is lost, as when the connection to PostgreSQL drops after its commit: the
// caller gets an error for a write that happened.
type lostReplies struct {
	sqlite driver.Driver
	dsn    string
	armed  atomic.Int32 // statements still to lose the reply of
}

func (d *lostReplies) Connect(context.Context) (driver.Conn, error) {
	c, err := d.sqlite.Open(d.dsn)
	if err != nil {
		return nil, err
	}
	return &lostReplyConn{Conn: c, d: d}, nil
}

func (d *lostReplies) Driver() driver.Driver { return d.sqlite }

func (d *lostReplies) lose() bool {
	for {
		n := d.armed.Load()
		if n <= 0 {
			return false
		}
		if d.armed.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

var errReplyLost = errors.New("unexpected EOF (the connection dropped after the commit)")

type lostReplyConn struct {
	driver.Conn
	d *lostReplies
}

func (c *lostReplyConn) Prepare(q string) (driver.Stmt, error) {
	s, err := c.Conn.Prepare(q)
	if err != nil {
		return nil, err
	}
	return &lostReplyStmt{Stmt: s, d: c.d}, nil
}

func (c *lostReplyConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	r, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
	if err == nil && c.d.lose() {
		return nil, errReplyLost
	}
	return r, err
}

func (c *lostReplyConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c *lostReplyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

type lostReplyStmt struct {
	driver.Stmt
	d *lostReplies
}

func (s *lostReplyStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	r, err := s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
	if err == nil && s.d.lose() {
		return nil, errReplyLost
	}
	return r, err
}

// An insert that committed although its caller got an error (the connection to
// PostgreSQL dropped before the reply) is not appended a second time by the retry:
// the trail would say a user destroyed a workspace twice.
func TestLostReplyIsNotAppendedTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := &lostReplies{sqlite: s.SQL().Driver(), dsn: store.SQLiteURI(filepath.Join(dir, "vws.db")) + "?_pragma=busy_timeout(5000)"}
	db := sql.OpenDB(d)
	defer db.Close()
	l := New(db, nil)
	seed(t, l, 2)

	d.armed.Store(1)
	if err := l.RecordDecision(as("/O=Grid/CN=Alice"), "destroy", "ws-lost", true, "r:1", ""); err != nil {
		t.Errorf("record whose reply was lost: %v", err)
	}
	l.Record(as("/O=Grid/CN=Alice"), "destroy", "ws-after", "done", "")

	es, err := l.List(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Resource)
	}
	if len(got) != 4 || got[2] != "ws-lost" || got[3] != "ws-after" {
		t.Errorf("records: %v, want ws-1 ws-2 ws-lost ws-after", got)
	}
	if n, err := l.Verify(ctx); err != nil || n != len(got) {
		t.Errorf("verify: %d, %v", n, err)
	}
}
