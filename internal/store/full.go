package store

import (
	"errors"
	"strings"
	"syscall"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// IsFull recognizes a full disk: ENOSPC, wrapped or as text (qemu-img reports it in
// its output), or SQLite's SQLITE_FULL ("database or disk is full", code 13, also
// when the database reached its maximum size).
func IsFull(err error) bool {
	if err == nil {
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL {
		return true
	}
	msg := strings.ToLower(err.Error())
	return errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "no space left on device") || strings.Contains(msg, "database or disk is full")
}
