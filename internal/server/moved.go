package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// movedFile, in a data directory, names the PostgreSQL database vws database copy
// moved its records to (password hidden). Its vws.db is then the backup of the
// records as they were at the copy: a server that took it for the records would
// sweep away the files of every workspace made since, which have no record there.
const movedFile = "vws.db.moved"

// MarkRecordsMoved records in dir that its records are in the PostgreSQL database
// redactedURL from now on.
func MarkRecordsMoved(dir, redactedURL string) error {
	path := filepath.Join(dir, movedFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(redactedURL+"\n"), 0o600); err != nil {
		return fmt.Errorf("mark %s as moved to PostgreSQL: %w", dir, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
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
