package test

import (
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/vwsns"
	"github.com/vws-grid/vws/test/harness"
)

// With its database full, the server does nothing it cannot audit: a read and a
// Destroy are refused, saying why and what to do, and the workspace is still there
// once the database has room again.
func TestNothingHappensUnaudited(t *testing.T) {
	s := harness.Start(t)
	s.SeedWorkspace(t, "a1", "audited", nil)
	db := s.DB()
	// The insert fails as SQLite fails it on a full disk (a trigger stands in for the
	// disk: in WAL mode a full file system fails only some writes, whichever page or
	// WAL frame they happen to need), or as PostgreSQL does (disk_full).
	full, where := []string{`CREATE TRIGGER audit_full BEFORE INSERT ON audit BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END`}, s.DataDir
	if storetest.Postgres() {
		full = []string{`CREATE FUNCTION audit_full() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = 'disk_full'; END $$`,
			`CREATE TRIGGER audit_full BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION audit_full()`}
		where = "PostgreSQL "
	}
	for _, q := range full {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"VWS_URL=" + s.URL}
	key := []string{"-k", "{" + vwsns.Workspace + "}WorkspaceKey", "a1"}
	for _, args := range [][]string{
		append([]string{"wsrf", "get-property"}, append(key, "vw:state")...),
		append([]string{"wsrf", "destroy"}, key...),
	} {
		r := runVWS(t, env, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "the server's storage is full ("+where) ||
			!strings.Contains(r.stderr, "): the audit trail cannot record this decision, so nothing was done") ||
			!strings.Contains(r.stderr, "the site administrator must free space there, then retry") {
			t.Errorf("vws %v with the audit trail full: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	if _, err := db.Exec(`DROP TRIGGER audit_full` + map[bool]string{true: " ON audit"}[storetest.Postgres()]); err != nil {
		t.Fatal(err)
	}
	r := runVWS(t, env, append([]string{"wsrf", "get-property"}, append(key, "vw:state")...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "shutdown") {
		t.Fatalf("once the database has room: %+v (a refused Destroy must leave the workspace)", r)
	}
}
