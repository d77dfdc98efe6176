package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vws-grid/vws/internal/wsrf"
)

// A data directory whose name holds what a URI reads specially ('#', '?', '%') keeps
// its database in it, as DIR/vws.db, in WAL mode: read as a URI, "lab#1/vws.db" named
// the file "lab" beside it, which "lab#2" shared.
func TestDataDirectoryNamedWithURICharacters(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	for _, name := range []string{"lab#1", "lab#2", "lab?3", "lab%41"} {
		dir := filepath.Join(base, name)
		db, err := Open(ctx, dir)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		if err := db.PutResource(ctx, "test", wsrf.StoredResource{Key: name, Properties: []byte("<properties/>")}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var mode string
		if err := db.SQL().QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		stored, err := db.LoadResources(ctx, "test")
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(stored) != 1 || stored[0].Key != name {
			t.Errorf("the database of %s holds %d resources (another directory's records too)", name, len(stored))
		}
		if mode != "wal" {
			t.Errorf("the database of %s is in journal mode %q, not wal", name, mode)
		}
		if _, err := os.Stat(filepath.Join(dir, "vws.db")); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "lab")); err == nil {
		t.Errorf("a database was written beside the data directories, as %s", filepath.Join(base, "lab"))
	}
}
