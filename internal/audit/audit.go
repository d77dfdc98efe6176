// Package audit appends what happened — creations, clones, destructions, check-outs,
// check-ins and every policy denial — with the caller's identity to the audit table.
package audit

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/vws-grid/vws/internal/identity"
)

// Log is the append-only audit trail.
type Log struct {
	db  *sql.DB
	log *slog.Logger
	now func() time.Time
}

// New writes to db's audit table.
func New(db *sql.DB, log *slog.Logger) *Log {
	return &Log{db: db, log: log, now: time.Now}
}

// Record appends one entry. An audit write that fails is logged loudly; it does not
// undo the operation it describes, which has already happened.
func (l *Log) Record(ctx context.Context, operation, resource, decision, detail string) {
	caller := identity.From(ctx).String()
	_, err := l.db.ExecContext(context.WithoutCancel(ctx),
		`INSERT INTO audit (time, caller, operation, resource, decision, detail) VALUES (?, ?, ?, ?, ?, ?)`,
		l.now().UnixMilli(), caller, operation, resource, decision, detail)
	if err != nil {
		l.log.Error("audit record lost", "operation", operation, "resource", resource, "caller", caller, "err", err)
	}
}

// Entry is one audit record.
type Entry struct {
	Time                                          time.Time
	Caller, Operation, Resource, Decision, Detail string
}

// List returns the entries after id 0, oldest first, at most limit.
func (l *Log) List(ctx context.Context, limit int) ([]Entry, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT time, caller, operation, resource, decision, detail FROM audit ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var ms int64
		if err := rows.Scan(&ms, &e.Caller, &e.Operation, &e.Resource, &e.Decision, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = time.UnixMilli(ms).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
