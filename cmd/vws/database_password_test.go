package main

import (
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/store/storetest"
)

// TestDatabaseCopyHidesAQueryPassword: the copy's closing instructions print the
// --database URL without a ?password= query parameter's value (pgx honours it).
func TestDatabaseCopyHidesAQueryPassword(t *testing.T) {
	server := postgresServer(t)
	dir, _, _ := sqliteLab(t)
	url := storetest.NewPostgres(t, server) + "&password=s3cret"
	out, err := databaseCLI(t, "copy", "--data", dir, "--to", url)
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	if strings.Contains(out, "s3cret") {
		t.Fatalf("the copy's output shows the password:\n%s", out)
	}
}
