package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/store"
)

// vws audit reads the trail of a server whose data directory's name holds '#' (or
// '?', '%'), which SQLite's URIs read specially, from DIR/vws.db as the server wrote it.
func TestAuditReadsADataDirectoryNamedWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lab#1")
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	audit.New(db.SQL(), nil).Record(context.Background(), "create", "ws-1", "done", "name=alpha")
	db.Close()

	out, err := auditCLI(t, "--data", dir)
	if err != nil || !strings.Contains(out, "name=alpha") {
		t.Fatalf("vws audit --data %s: %v\n%s", dir, err, out)
	}
	out, err = auditCLI(t, "--data", dir, "--verify")
	if err != nil || !strings.Contains(out, "1 records") {
		t.Fatalf("vws audit --data %s --verify: %v\n%s", dir, err, out)
	}
}
