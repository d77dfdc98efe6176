package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vws-grid/vws/internal/fsutil"
	"github.com/vws-grid/vws/internal/store"
)

// movedFile, in a data directory, names the PostgreSQL database vws database copy
// moved its records to (password hidden). Its vws.db is then the backup of the
// records as they were at the copy: a server that took it for the records would
// sweep away the files of every workspace made since, which have no record there.
const movedFile = "vws.db.moved"

// MarkRecordsMoved records in dir that its records are in the PostgreSQL database
// redactedURL from now on.
func MarkRecordsMoved(dir, redactedURL string) error {
	// Durable before the copy is reported done: a mark lost in a crash would leave the
	// backup to be taken for the records.
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, movedFile), []byte(redactedURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("mark %s as moved to PostgreSQL: %w", dir, err)
	}
	return nil
}

// RecordsMovedError refuses the SQLite database of a data directory whose records
// were moved to PostgreSQL.
type RecordsMovedError struct {
	Dir, To string
}

func (e *RecordsMovedError) Error() string {
	return fmt.Sprintf("the records of data directory %s are in PostgreSQL (vws database copy moved them; its vws.db is their backup as they were then): give --database %s; to go back to that backup deliberately, remove %s",
		e.Dir, e.To, filepath.Join(e.Dir, movedFile))
}

// CheckRecordsHere refuses dir's SQLite database when its records were moved to
// PostgreSQL.
func CheckRecordsHere(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, movedFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	return &RecordsMovedError{Dir: dir, To: strings.TrimSpace(string(data))}
}

// checkFilesHaveRecords refuses a database that holds no record at all beside a data
// directory holding workspaces' or pool images' files: it is not the database they
// belong to (a mistyped --database, a lost vws.db), and the Repository's start-up
// sweeps would remove every one of them as a leftover without a record.
func checkFilesHaveRecords(ctx context.Context, db *store.DB, dir string) error {
	var held []string
	if ws, _ := os.ReadDir(filepath.Join(dir, "workspaces")); len(ws) > 0 {
		held = append(held, fmt.Sprintf("%d workspace(s) in %s", len(ws), filepath.Join(dir, "workspaces")))
	}
	if blobs, _ := filepath.Glob(filepath.Join(dir, "images", "sha256-*")); len(blobs) > 0 {
		held = append(held, fmt.Sprintf("%d pool image(s) in %s", len(blobs), filepath.Join(dir, "images")))
	}
	if len(held) == 0 {
		return nil
	}
	empty, err := db.Empty(ctx)
	if err != nil || !empty {
		return err
	}
	return fmt.Errorf("%s holds no record, but data directory %s holds the files of %s: give the --database they belong to (or, with SQLite, put their vws.db back); "+
		"starting on this database would remove them. To start afresh, move those directories away", db, dir, strings.Join(held, " and "))
}
