package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsrf"
)

// recordTables are the tables vws database copy must carry over, written out here
// rather than taken from the code under test.
var recordTables = []string{"resources", "images", "image_names", "audit", "audit_checkpoint", "manifest_signers", "manifests_sealed"}

// databaseCLI runs `vws database args...` in process.
func databaseCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"database"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// dumpTable is every row of table, each as its columns' names and values (NULL,
// integers, texts and blobs told apart, blobs in hex), sorted: comparable between
// SQLite and PostgreSQL, whose column order and row order may differ.
func dumpTable(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query(`SELECT * FROM ` + table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
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
		var fields []string
		for i, v := range vals {
			var s string
			switch v := v.(type) {
			case nil:
				s = "NULL"
			case int64:
				s = fmt.Sprintf("int %d", v)
			case int32:
				s = fmt.Sprintf("int %d", v)
			case string:
				s = fmt.Sprintf("text %q", v)
			case []byte:
				s = fmt.Sprintf("blob %x", v)
			default:
				t.Fatalf("%s.%s: %T %v", table, cols[i], v, v)
			}
			fields = append(fields, cols[i]+"="+s)
		}
		slices.Sort(fields)
		out = append(out, strings.Join(fields, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func dumpAll(t *testing.T, db *sql.DB) map[string][]string {
	t.Helper()
	all := map[string][]string{}
	for _, table := range recordTables {
		all[table] = dumpTable(t, db, table)
	}
	return all
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// sqliteLab is a data directory whose SQLite database holds one of every kind of
// record: workspaces (NULL and set termination and private data, blobs with every
// byte value), pool images and their names, an audit trail pruned once (so with a
// checkpoint) and appended to after, manifest signers and the seal. It returns the
// directory and the audit chain's head.
func sqliteLab(t *testing.T) (string, int64, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	when := time.UnixMilli(1798761600123).UTC()
	for _, r := range []wsrf.StoredResource{
		{Key: "no-termination-no-private", Properties: []byte("<ws:Workspace>α</ws:Workspace>")},
		{Key: "termination-and-private", Properties: every, Termination: &when, Private: []byte("\x00chain\xff")},
		{Key: "empty-private", Properties: []byte{}, Private: []byte{}},
	} {
		if err := db.PutResource(ctx, "WorkspaceService", r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutResource(ctx, "SubscriptionManager", wsrf.StoredResource{Key: "sub-1", Properties: []byte("<s/>")}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO images (digest, format, size, virtual_size, created, chunk_bytes, chunk_digests)
			VALUES ('sha256:aaaa', 'qcow2', 1048576, 10737418240, 1700000000000, 33554432, 'ab cd')`,
		`INSERT INTO images (digest, format, size, virtual_size, created) VALUES ('sha256:bbbb', 'raw', 512, 512, 1700000000001)`,
		`INSERT INTO image_names VALUES ('debian-12', 'sha256:aaaa', 'Debian', '6.1', 'x86_64', 'libc6 libssl3', 1700000000002)`,
		`INSERT INTO image_names (name, digest, created) VALUES ('debian-latest', 'sha256:aaaa', 1700000000003)`,
		`INSERT INTO image_names (name, digest, created) VALUES ('scratch', 'sha256:bbbb', 1700000000004)`,
		`INSERT INTO manifest_signers VALUES ('0123abcd', 'CN=vws repository one', 1700000000005)`,
		`INSERT INTO manifest_signers VALUES ('4567ef01', 'CN=host/repo.example.org', 1700000000006)`,
		`INSERT INTO manifests_sealed VALUES (1, 1700000000007)`,
	} {
		if _, err := db.SQL().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	l := audit.New(db.SQL(), nil)
	alice := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=Alice"})
	for i := range 3 {
		l.Record(alice, "create", fmt.Sprintf("ws-%d", i), "done", "")
	}
	if n, err := l.Prune(ctx, time.Now().Add(time.Hour)); err != nil || n != 3 {
		t.Fatalf("prune: %d, %v", n, err)
	}
	l.Record(alice, "destroy", "ws-0", "done", "name=\"alpha\"\ttabbed")
	if err := l.RecordDecision(identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=Bob"}), "manage Destroy", "ws-1", false, "rules.conf:4", ""); err != nil {
		t.Fatal(err)
	}
	id, hash, err := l.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return dir, id, hash
}

// Every record of a SQLite lab arrives in PostgreSQL as it was — row for row, blobs
// byte for byte, NULLs as NULLs — the audit chain verifies there with the same head,
// and the SQLite file is untouched.
func TestDatabaseCopy(t *testing.T) {
	server := postgresServer(t)
	dir, headID, headHash := sqliteLab(t)
	lite, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := dumpAll(t, lite.SQL())
	lite.Close()
	for _, table := range recordTables {
		if len(want[table]) == 0 {
			t.Fatalf("the lab has no %s rows: the test would prove nothing about them", table)
		}
	}
	sum := fileSum(t, filepath.Join(dir, "vws.db"))

	url := storetest.NewPostgres(t, server)
	out, err := databaseCLI(t, "copy", "--data", dir, "--to", url)
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	t.Logf("vws database copy:\n%s", out)
	for _, s := range []string{"resources                  4 rows", "audit                      2 rows", "audit_checkpoint           1 row\n", "image_names                3 rows",
		fmt.Sprintf("audit chain intact in PostgreSQL: 2 records; head: record %d, hash %s, as in SQLite", headID, headHash),
		"--data " + dir + " --database " + url, "images/", "keys/", "manager/", "vws.db is no longer used"} {
		if !strings.Contains(out, s) {
			t.Errorf("the summary lacks %q:\n%s", s, out)
		}
	}

	pg, err := store.OpenPostgres(context.Background(), url) // also: the copy let go of the lock
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	got := dumpAll(t, pg.SQL())
	for _, table := range recordTables {
		if !reflect.DeepEqual(got[table], want[table]) {
			t.Errorf("%s in PostgreSQL:\n%s\nwant (SQLite)\n%s", table, strings.Join(got[table], "\n"), strings.Join(want[table], "\n"))
		}
	}
	var nullTerm, nullPrivate, emptyPrivate int
	if err := pg.SQL().QueryRow(`SELECT count(*) FILTER (WHERE termination IS NULL), count(*) FILTER (WHERE private IS NULL),
		count(*) FILTER (WHERE private = ''::bytea) FROM resources`).Scan(&nullTerm, &nullPrivate, &emptyPrivate); err != nil {
		t.Fatal(err)
	}
	if nullTerm != 3 || nullPrivate != 2 || emptyPrivate != 1 {
		t.Errorf("NULL terminations %d (want 3), NULL private %d (want 2), empty private %d (want 1)", nullTerm, nullPrivate, emptyPrivate)
	}
	loaded, err := pg.LoadResources(context.Background(), "WorkspaceService")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range loaded {
		if r.Key == "termination-and-private" && (r.Termination == nil || r.Termination.UnixMilli() != 1798761600123 || string(r.Private) != "\x00chain\xff") {
			t.Errorf("the workspace with a termination and private data reads back as %+v", r)
		}
	}
	if out, err := auditCLI(t, "--database", url, "--verify", "--anchor", fmt.Sprintf("%d:%s", headID, headHash)); err != nil ||
		!strings.Contains(out, "intact: 2 records") {
		t.Fatalf("vws audit --verify on the copy: %v\n%s", err, out)
	}
	if fileSum(t, filepath.Join(dir, "vws.db")) != sum {
		t.Error("the copy changed vws.db")
	}
}

// A target that holds records is refused, naming them, and nothing changes there.
func TestDatabaseCopyRefusesATargetWithRecords(t *testing.T) {
	server := postgresServer(t)
	dir, _, _ := sqliteLab(t)
	url := storetest.NewPostgres(t, server)
	pg, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.PutResource(context.Background(), "WorkspaceService", wsrf.StoredResource{Key: "other-lab", Properties: []byte("<x/>")}); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.SQL().Exec(`INSERT INTO manifest_signers VALUES ('ffff', 'CN=other', 1), ('eeee', 'CN=another', 2)`); err != nil {
		t.Fatal(err)
	}
	before := dumpAll(t, pg.SQL())
	pg.Close()

	_, err = databaseCLI(t, "copy", "--data", dir, "--to", url)
	if err == nil || !strings.Contains(err.Error(), "already holds vws records (resources has 1 row, manifest_signers has 2 rows): nothing was copied") {
		t.Fatalf("copy into a database with records: %v", err)
	}
	pg, err = store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if after := dumpAll(t, pg.SQL()); !reflect.DeepEqual(after, before) {
		t.Fatalf("the refused copy changed the target:\n%v\nwas\n%v", after, before)
	}
}

// A copy that fails part way — at a row PostgreSQL refuses, after earlier tables went
// over — leaves the target without a single record.
func TestDatabaseCopyFailingLeavesTheTargetEmpty(t *testing.T) {
	server := postgresServer(t)
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{"an image name whose image is gone", func(t *testing.T, dir string) {
			// SQLite checks foreign keys only on connections that ask (store.Open
			// does): a plain one removes the image under its names, as a careless
			// hand on the database would.
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "vws.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`DELETE FROM images WHERE digest = 'sha256:bbbb'`); err != nil {
				t.Fatal(err)
			}
		}, "copy table image_names"},
		{"an audit record with a NUL character", func(t *testing.T, dir string) {
			// As a vws before audit replaced NUL could write it: SQLite keeps it;
			// PostgreSQL's text refuses it (and the chain's hash covers it as it is).
			raw, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "vws.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`UPDATE audit SET resource = 'ws' || char(0) WHERE id = (SELECT max(id) FROM audit)`); err != nil {
				t.Fatal(err)
			}
		}, "copy table audit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, _ := sqliteLab(t)
			tc.spoil(t, dir)
			url := storetest.NewPostgres(t, server)
			_, err := databaseCLI(t, "copy", "--data", dir, "--to", url)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was written") {
				t.Fatalf("copy: %v, want an error naming %q", err, tc.want)
			}
			pg, err := store.OpenPostgres(context.Background(), url) // the copy let go of the lock
			if err != nil {
				t.Fatal(err)
			}
			defer pg.Close()
			for table, rows := range dumpAll(t, pg.SQL()) {
				if len(rows) != 0 {
					t.Errorf("%s has %d rows after a failed copy", table, len(rows))
				}
			}
		})
	}
}

// The copy refuses while a server runs on the data directory — it takes the lock
// vws serve takes — and touches neither the target nor the SQLite file.
func TestDatabaseCopyRefusesWhileTheServerRuns(t *testing.T) {
	srv := postgresServer(t)
	dir, _, _ := sqliteLab(t)
	sum := fileSum(t, filepath.Join(dir, "vws.db"))
	release, err := server.LockDataDir(dir) // what vws serve --data dir holds
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	url := storetest.NewPostgres(t, srv)
	_, err = databaseCLI(t, "copy", "--data", dir, "--to", url)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("in use by another vws serve (pid %d): stop it before copying its records", os.Getpid())) {
		t.Fatalf("copy beside a running server: %v", err)
	}
	raw, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var schema bool
	if err := raw.QueryRow(`SELECT to_regclass('vws_schema') IS NOT NULL`).Scan(&schema); err != nil || schema {
		t.Fatalf("the refused copy set up the target (vws_schema: %v, %v)", schema, err)
	}
	if fileSum(t, filepath.Join(dir, "vws.db")) != sum {
		t.Error("the refused copy changed vws.db")
	}
}

// What needs no PostgreSQL server: a data directory without a database (not created),
// and a --to that is no PostgreSQL URL.
func TestDatabaseCopyRefusesBadArguments(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere")
	if _, err := databaseCLI(t, "copy", "--data", missing, "--to", "postgres://db/vws"); err == nil || !strings.Contains(err.Error(), "no vws database in "+missing) {
		t.Fatalf("a data directory without vws.db: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("the copy created %s: %v", missing, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "--data", t.TempDir()}, "--to is required"},
		{[]string{"copy", "--data", t.TempDir(), "--to", "mysql://vws:s3cret@db/vws"}, "want a PostgreSQL URL"},
		{[]string{"copy", "extra"}, "copy"},
	} {
		if _, err := databaseCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("database %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// Once vws database copy has moved a data directory's records to PostgreSQL, vws
// serve on it without --database is refused, and so is vws audit --data: its vws.db
// is the backup of the records as they were at the copy. A server started on it
// used to take the backup for the records, and its start-up sweep removed the files
// of every workspace made since (they have no record there).
func TestDatabaseCopyKeepsTheDataDirectoryOffItsSQLite(t *testing.T) {
	srv := postgresServer(t)
	dir := t.TempDir()
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	url := storetest.NewPostgres(t, srv)
	if out, err := databaseCLI(t, "copy", "--data", dir, "--to", url); err != nil {
		t.Fatalf("copy: %v\n%s", err, out)
	}
	// A workspace created under PostgreSQL after the copy.
	since := filepath.Join(dir, "workspaces", "created-since")
	if err := os.MkdirAll(since, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(since, "overlay.qcow2"), []byte("the user's work"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r := vwsRun(t, ctx, "serve", "--insecure", "--role", "factory,repository", "--listen", "127.0.0.1:0", "--data", dir)
	if _, err := os.Stat(filepath.Join(since, "overlay.qcow2")); err != nil {
		t.Errorf("a server started without --database removed a workspace made since the copy: %v", err)
	}
	wantError(t, r, "--database", store.RedactURL(url))
	r = vwsRun(t, context.Background(), "audit", "--data", dir)
	wantError(t, r, "--database", store.RedactURL(url))
}
