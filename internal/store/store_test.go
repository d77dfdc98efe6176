package store

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// openAt opens a database in dir migrated only as far as an earlier vws would have.
func openAt(t *testing.T, dir string, version int) *DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "vws.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	s := &DB{db: db}
	if err := s.migrate(context.Background(), version); err != nil {
		t.Fatal(err)
	}
	return s
}

func dump(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%#v", vals))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// auditRebuild is the schema version before the migration that rebuilds the audit
// table (migrations[auditRebuild]): no longer the last one since known_hosts came.
const auditRebuild = 9

// The migration that drops AUTOINCREMENT from the audit table keeps every column, row
// and id (gaps included: pruned or removed records must stay visible to Verify), leaves
// nothing behind, and the table takes appends with explicit ids as before.
func TestMigrationAuditWithoutAutoincrement(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if !strings.Contains(migrations[auditRebuild], "audit_new") {
		t.Fatalf("migration %d is not the audit table's rebuild: %.60s", auditRebuild+1, migrations[auditRebuild])
	}
	old := openAt(t, dir, auditRebuild)
	for _, q := range []string{
		// A pre-chain row (unhashed), chained rows and a gap where records were removed.
		`INSERT INTO audit (id, time, caller, operation, decision) VALUES (1, 10, 'old', 'create', 'done')`,
		`INSERT INTO audit VALUES (2, 20, '/O=Grid/CN=a', 'manage', 'ws-1', 'denied', 'Destroy', 'rules.conf:4', 'p2', 'h2')`,
		`INSERT INTO audit VALUES (5, 50, '/O=Grid/CN=b', 'create', 'ws-2', 'done', 'x''y', '', 'h2', 'h5')`,
		`INSERT INTO audit VALUES (7, 70, '<anonymous>', 'inspect', '', 'allowed', '', 'r:1', 'h5', 'h7')`,
		`INSERT INTO audit_checkpoint VALUES (1, 0, 'g', 0, 1)`,
	} {
		if _, err := old.db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	const all = `SELECT * FROM audit ORDER BY id`
	before := dump(t, old.db, all)
	beforeCols := dump(t, old.db, `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info('audit') ORDER BY cid`)
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := dump(t, s.db, all); !reflect.DeepEqual(got, before) {
		t.Fatalf("rows changed:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	if got := dump(t, s.db, `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info('audit') ORDER BY cid`); !reflect.DeepEqual(got, beforeCols) {
		t.Fatalf("columns changed:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(beforeCols, "\n"))
	}
	var version int
	if err := s.db.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("user_version %d (%v), want %d", version, err, len(migrations))
	}
	var schema string
	if err := s.db.QueryRow(`SELECT sql FROM sqlite_schema WHERE name = 'audit'`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToUpper(schema), "AUTOINCREMENT") {
		t.Errorf("audit is still AUTOINCREMENT: %s", schema)
	}
	if got := dump(t, s.db, `SELECT type, name FROM sqlite_schema WHERE tbl_name LIKE 'audit%' OR name LIKE 'audit%' ORDER BY name`); len(got) != 2 ||
		!strings.Contains(got[0], `"audit"`) || !strings.Contains(got[1], `"audit_checkpoint"`) {
		t.Errorf("schema objects for audit: %v", got)
	}
	if got := dump(t, s.db, `SELECT name FROM sqlite_sequence WHERE name = 'audit'`); len(got) != 0 {
		t.Errorf("sqlite_sequence still has audit: %v", got)
	}
	if _, err := s.db.Exec(`INSERT INTO audit VALUES (8, 80, 'c', 'create', 'ws-3', 'done', '', '', 'h7', 'h8')`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.Exec(`INSERT INTO audit VALUES (8, 81, 'c', 'create', 'ws-3', 'done', '', '', 'h7', 'h8')`); err == nil {
		t.Error("a second record 8 was accepted")
	}
}

// The copy to PostgreSQL knows every table and column of the records: a migration that
// adds one fails here until copyTables has it, instead of a copy that leaves it behind.
func TestCopyTablesCoverTheSchema(t *testing.T) {
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	schema := dump(t, s.db, `SELECT m.name || '.' || p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY 1`)
	var copied []string
	for _, tb := range copyTables {
		for _, c := range tb.columns {
			copied = append(copied, fmt.Sprintf("[]interface {}{%q}", tb.name+"."+c.name))
		}
	}
	sort.Strings(copied)
	if !reflect.DeepEqual(schema, copied) {
		t.Fatalf("the copy's columns differ from the schema's:\nschema %v\ncopy   %v", schema, copied)
	}
}

// TestDurable: Durable syncs SQLite's log after commits (and is a no-op where every
// commit is flushed already).
func TestDurable(t *testing.T) {
	db, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().Exec(`CREATE TABLE durable_probe (x INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if err := Durable(context.Background(), db.SQL()); err != nil {
		t.Fatalf("Durable: %v", err)
	}
}

// TestDeadServerOfThisHostOverTCP: a dead vws server of this host whose session came
// from one of this host's own addresses (a database on another machine) is this
// host's, as one over the Unix socket or loopback is; one from another address is not.
func TestDeadServerOfThisHostOverTCP(t *testing.T) {
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf("vws on %s (pid %d)", host, dead.Process.Pid)
	var own string
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() {
			own = n.IP.String()
			break
		}
	}
	cases := map[string]bool{"local socket": true, "127.0.0.1": true, "::1": true, "192.0.2.7": false, "not an address": false}
	if own != "" {
		cases[own] = true
	}
	for addr, want := range cases {
		if got := (&heldError{app: app, addr: addr}).deadLocal(); got != want {
			t.Errorf("a dead server of this host connected from %s: deadLocal %v, want %v", addr, got, want)
		}
	}
}
