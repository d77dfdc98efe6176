package store

import (
	"errors"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsFull recognizes a full disk: ENOSPC, wrapped or as text (qemu-img reports it in
// its output), or SQLite's SQLITE_FULL ("database or disk is full", code 13, also
// when the database reached its maximum size), or PostgreSQL's disk_full (53100).
func IsFull(err error) bool {
	if err == nil {
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53100" { // disk_full
		return true
	}
	msg := strings.ToLower(err.Error())
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "no space left on device") || strings.Contains(msg, "database or disk is full")
}

// IsDatabaseServerFull says whether err is PostgreSQL's disk_full: the database
// server's disk, not this host's, has no room.
func IsDatabaseServerFull(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "53100"
}
