package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// A copy killed after PostgreSQL committed the records but before it marked the data
// directory (its vws.db still in use) is finished by running it again: the target
// holds these very records, so nothing is copied, the chain is checked and the
// directory marked. It was refused as a target holding records, leaving the
// administrator to drop a database that was right, or to start a server on it with
// the data directory unmarked, whose vws.db a later start without --database would
// take for the records.
func TestDatabaseCopyFinishesACopyCutShortAfterItsCommit(t *testing.T) {
	srv := postgresServer(t)
	dir, _, _ := sqliteLab(t)
	url := storetest.NewPostgres(t, srv)

	// What the first run had done when it was killed: the records committed.
	ctx := context.Background()
	lite, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := store.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CopyRecords(ctx, lite, pg); err != nil {
		t.Fatal(err)
	}
	pg.Close()
	lite.Close()

	out, err := databaseCLI(t, "copy", "--data", dir, "--to", url)
	if err != nil {
		t.Fatalf("copy again: %v\n%s", err, out)
	}
	if !strings.Contains(out, "already holds every record") || !strings.Contains(out, "audit chain intact in PostgreSQL") {
		t.Errorf("copy again:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "vws.db.moved")); err != nil {
		t.Errorf("the data directory was not marked: %v", err)
	}
	if err := server.CheckRecordsHere(dir); err == nil {
		t.Error("the data directory's vws.db is still taken for the records")
	}
}
