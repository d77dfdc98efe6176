package repository

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// TestCreateWithPostgresDiskFullNamesTheDatabase: README: "A full database disk
// (SQLSTATE disk_full) refuses operations as a full data directory does, naming the
// database." A Create whose record PostgreSQL refuses with disk_full is answered
// naming the database, not the data directory (which has room).
func TestCreateWithPostgresDiskFullNamesTheDatabase(t *testing.T) {
	needQemu(t)
	storetest.Server(t)
	f := newFixture(t)
	for _, q := range []string{
		`CREATE FUNCTION resources_full() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = 'disk_full'; END $$`,
		`CREATE TRIGGER resources_full BEFORE INSERT ON resources FOR EACH ROW EXECUTE FUNCTION resources_full()`,
	} {
		if _, err := f.db.SQL().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.r.Create(context.Background(), CreateSpec{Name: "new", Owner: "o", Description: description(), BaseImage: f.base, Termination: time.Now().Add(time.Hour)})
	if !errors.Is(err, errdefs.ErrCreation) {
		t.Fatalf("want a creation failure, got %v", err)
	}
	text := err.Error() + "; " + errdefs.Advice(err)
	if !strings.Contains(text, "PostgreSQL") || strings.Contains(text, "no room left in its data directory") {
		t.Fatalf("a full PostgreSQL database is answered as: %s", text)
	}
}
