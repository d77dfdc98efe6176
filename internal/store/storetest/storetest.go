// Package storetest gives tests a database of the kind the suite runs against:
// SQLite in a temporary directory, or, when VWS_TEST_POSTGRES names a PostgreSQL
// server (postgres:///postgres?host=/var/run/postgresql), a database of their own on
// it, created for the test and dropped after it. `make test` runs the packages that
// keep records once more against PostgreSQL.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/vws-grid/vws/internal/store"
)

// Env names the PostgreSQL server tests use instead of SQLite.
const Env = "VWS_TEST_POSTGRES"

// Place is where one test's database lives; Open opens it again after a Close, as
// a restarted server would.
type Place struct {
	Dir string // SQLite's directory (also the data directory of a server on it)
	URL string // the PostgreSQL database, "" for SQLite
}

// New is a fresh place: dir (a new temporary directory when "") for SQLite, or a new
// PostgreSQL database when the suite runs against PostgreSQL.
func New(t testing.TB, dir string) Place {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	p := Place{Dir: dir}
	if server := os.Getenv(Env); server != "" {
		p.URL = NewPostgres(t, server)
	}
	return p
}

// Open opens the place's database.
func (p Place) Open(ctx context.Context) (*store.DB, error) {
	if p.URL != "" {
		return store.OpenPostgres(ctx, p.URL)
	}
	return store.Open(ctx, p.Dir)
}

// Postgres says whether the suite runs against PostgreSQL.
func Postgres() bool { return os.Getenv(Env) != "" }

// Open is a fresh database, closed when the test ends.
func Open(t testing.TB) *store.DB {
	t.Helper()
	db, err := New(t, "").Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// NewPostgres creates an empty database on the PostgreSQL server serverURL names,
// drops it when the test ends, and returns its URL.
func NewPostgres(t testing.TB, serverURL string) string {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	admin, err := sql.Open("pgx", serverURL) // store registers the driver
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	name := "vws_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(`CREATE DATABASE ` + name); err != nil {
		admin.Close()
		t.Fatalf("create test database on %s: %v", store.RedactURL(serverURL), err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// LockHolder is the backend pid of the session holding a vws server's lock on the
// database db is connected to, 0 when none does (advisory locks are per database).
func LockHolder(t testing.TB, db *sql.DB) int {
	t.Helper()
	var pid int
	if err := db.QueryRow(`SELECT COALESCE(max(pid), 0) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// CutLock ends the session holding the server's lock, as a database restart would,
// and returns its pid; the backend goes away asynchronously.
func CutLock(t testing.TB, db *sql.DB) int {
	t.Helper()
	pid := LockHolder(t, db)
	if pid == 0 {
		t.Fatal("no session holds a vws server's lock on this database")
	}
	if _, err := db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// Server is the PostgreSQL server VWS_TEST_POSTGRES names; the test is skipped, saying
// so, when it names none.
func Server(t testing.TB) string {
	t.Helper()
	server := os.Getenv(Env)
	if server == "" {
		t.Skipf("%s is not set: no PostgreSQL server to test against (make test sets it: %s='postgres:///postgres?host=/var/run/postgresql')", Env, Env)
	}
	return server
}
