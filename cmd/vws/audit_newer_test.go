package main

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/store"
)

// vws audit refuses a SQLite database a newer vws wrote, as it refuses such a
// PostgreSQL one and as vws serve refuses it: it reads without migrating, and would
// misread records of a schema it does not know (a --verify could call an intact
// chain altered).
func TestAuditRefusesASQLiteDatabaseOfANewerVws(t *testing.T) {
	dir, db, l := openAudit(t)
	l.Record(identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"}), "create", "ws", "done", "")
	var version int
	if err := db.SQL().QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	db.Close()
	raw, err := sql.Open("sqlite", store.SQLiteURI(filepath.Join(dir, "vws.db")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, version+1)); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	for _, args := range [][]string{{"--verify"}, {}, {"--json"}} {
		out, err := auditCLI(t, append([]string{"--data", dir}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "newer than this vws") {
			t.Errorf("audit %v on a database of a newer vws: want refused, got %v\n%s", args, err, out)
		}
	}
}
