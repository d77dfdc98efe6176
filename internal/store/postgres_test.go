package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
	"github.com/vws-grid/vws/internal/wsrf"
)

// postgresURL is a fresh PostgreSQL database, or a skip where the suite has none.
func postgresURL(t *testing.T) string {
	t.Helper()
	return storetest.NewPostgres(t, storetest.Server(t))
}

// openServer opens url's database as a server does (its lock held) until the test ends.
func openServer(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// columns lists table.column for every column of every vws table, sorted.
func columns(t *testing.T, db *store.DB) []string {
	t.Helper()
	q := `SELECT m.name || '.' || p.name FROM sqlite_schema m JOIN pragma_table_info(m.name) p
		WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY 1`
	if store.IsPostgres(db.SQL()) {
		q = `SELECT table_name || '.' || column_name FROM information_schema.columns
			WHERE table_schema = 'public' AND table_name <> 'vws_schema' ORDER BY 1`
	}
	rows, err := db.SQL().Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// Both dialects' migrations end in the same tables and columns: a migration added to
// one list only fails here.
func TestPostgresSchemaMatchesSQLite(t *testing.T) {
	ctx := context.Background()
	lite, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	pg, err := store.OpenPostgres(ctx, postgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if a, b := columns(t, lite), columns(t, pg); !reflect.DeepEqual(a, b) {
		t.Fatalf("SQLite and PostgreSQL schemas differ:\nSQLite     %v\nPostgreSQL %v", a, b)
	}
	if !strings.HasPrefix(pg.String(), "PostgreSQL ") || strings.Contains(pg.String(), "password") {
		t.Errorf("String() = %q", pg.String())
	}
}

// One server per database: a second one is refused, saying who holds it and what to
// do, and gets it once the first has closed. Records written meanwhile are there.
func TestPostgresOneServerPerDatabase(t *testing.T) {
	ctx := context.Background()
	url := postgresURL(t)
	first, err := store.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	r := wsrf.StoredResource{Key: "k1", Properties: []byte("<p/>")}
	if err := first.PutResource(ctx, "WorkspaceService", r); err != nil {
		t.Fatal(err)
	}
	second, err := store.OpenPostgres(ctx, url)
	if err == nil {
		second.Close()
		t.Fatal("a second server opened the database the first holds")
	}
	for _, want := range []string{"in use by another vws server", fmt.Sprintf("pid %d", os.Getpid()), "one server with the repository role per database"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q lacks %q", err, want)
		}
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := store.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	defer again.Close()
	got, err := again.LoadResources(ctx, "WorkspaceService")
	if err != nil || len(got) != 1 || string(got[0].Properties) != "<p/>" {
		t.Fatalf("LoadResources = %+v, %v", got, err)
	}
}

// A server whose session (and with it the lock) was cut, as by a database restart,
// takes the lock again at its next health check; if another server took it
// meanwhile, the health check fails and says so.
func TestPostgresLockLostAndRetaken(t *testing.T) {
	ctx := context.Background()
	url := postgresURL(t)
	db := openServer(t, url)
	kill := func() {
		t.Helper()
		storetest.CutLock(t, db.SQL())
		time.Sleep(100 * time.Millisecond) // the backend goes away asynchronously
	}
	kill()
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("health check after the session was cut: %v", err)
	}
	if _, err := store.OpenPostgres(ctx, url); err == nil {
		t.Fatal("the lock was not taken again: a second server got the database")
	}

	kill()
	other, err := store.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatalf("another server after the session was cut: %v", err)
	}
	defer other.Close()
	err = db.Ping(ctx)
	if err == nil || !strings.Contains(err.Error(), "in use by another vws server") {
		t.Fatalf("health check with the lock taken by another server: %v", err)
	}
	// Without a health check, the server learns it too: it must stop.
	select {
	case err := <-db.Lost():
		if !errors.Is(err, store.ErrInUse) {
			t.Errorf("Lost: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server was not told that another took its database")
	}
}

// A session cut while no other server waits is taken again by the server itself,
// without a health check, and Lost stays silent.
func TestPostgresLockRetakenUnasked(t *testing.T) {
	ctx := context.Background()
	url := postgresURL(t)
	db := openServer(t, url)
	cut := storetest.CutLock(t, db.SQL())
	held := func() bool { // by a session other than the one cut
		pid := storetest.LockHolder(t, db.SQL())
		return pid != 0 && pid != cut
	}
	for deadline := time.Now().Add(10 * time.Second); !held(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server did not take its lock again")
		}
	}
	if other, err := store.OpenPostgres(ctx, url); !errors.Is(err, store.ErrInUse) {
		if other != nil {
			other.Close()
		}
		t.Fatalf("a second server after the lock was taken again: %v", err)
	}
	select {
	case err := <-db.Lost():
		t.Fatalf("Lost: %v", err)
	default:
	}
}

// A URL that is no PostgreSQL server fails with the address, never the password.
func TestPostgresBadURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := store.OpenPostgres(ctx, "postgres://vws:s3cret@127.0.0.1:1/vws?connect_timeout=2")
	if err == nil {
		t.Fatal("opened a database on port 1")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("error %q", err)
	}
	if got := store.RedactURL("postgres://vws:s3cret@db/vws"); strings.Contains(got, "s3cret") {
		t.Errorf("RedactURL kept the password: %s", got)
	}
}

func TestIsFullPostgres(t *testing.T) {
	full := fmt.Errorf("write: %w", &pgconn.PgError{Code: "53100", Message: "could not extend file"})
	if !store.IsFull(full) {
		t.Error("disk_full (53100) is not IsFull")
	}
	if store.IsFull(&pgconn.PgError{Code: "23505"}) || store.IsFull(errors.New("x")) {
		t.Error("a unique violation or another error is IsFull")
	}
}

// The administrator's commands open the database beside the server holding it: no
// lock taken, read-only sessions refuse writes, and a database at another schema
// version than this vws's, or without vws's schema, is refused saying what to do.
func TestPostgresBeside(t *testing.T) {
	ctx := context.Background()
	url := postgresURL(t)
	if _, err := store.OpenPostgresBeside(ctx, url, store.ReadOnly); err == nil || !strings.Contains(err.Error(), "is not a vws database") {
		t.Fatalf("an empty database: %v", err)
	}
	server := openServer(t, url)
	if err := server.PutResource(ctx, "WorkspaceService", wsrf.StoredResource{Key: "k1", Properties: []byte("<p/>")}); err != nil {
		t.Fatal(err)
	}

	ro, err := store.OpenPostgresBeside(ctx, url, store.ReadOnly)
	if err != nil {
		t.Fatalf("beside a server: %v", err)
	}
	defer ro.Close()
	if got, err := ro.LoadResources(ctx, "WorkspaceService"); err != nil || len(got) != 1 {
		t.Fatalf("read beside a server: %v, %v", got, err)
	}
	var pe *pgconn.PgError
	if err := ro.PutResource(ctx, "WorkspaceService", wsrf.StoredResource{Key: "k2", Properties: []byte("x")}); !errors.As(err, &pe) || pe.Code != "25006" {
		t.Fatalf("a write in a read-only session: %v, want read_only_sql_transaction (25006)", err)
	}
	rw, err := store.OpenPostgresBeside(ctx, url, store.ReadWrite)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if err := rw.DeleteResource(ctx, "WorkspaceService", "k1"); err != nil {
		t.Fatalf("a write in a read-write session: %v", err)
	}
	var isolation string
	if err := rw.SQL().QueryRow(`SHOW default_transaction_isolation`).Scan(&isolation); err != nil || isolation != "serializable" {
		t.Fatalf("read-write sessions' isolation: %q, %v", isolation, err)
	}
	if err := server.Ping(ctx); err != nil {
		t.Fatalf("the server lost its database to the administrator's commands: %v", err)
	}

	for _, tc := range []struct {
		delta int
		want  string
	}{
		{-1, "older than this vws's"},
		{+1, "newer than this vws's"},
		{-1, "start this vws's serve on it once to migrate it"},
		{+1, "use a newer vws"},
	} {
		if _, err := server.SQL().Exec(`UPDATE vws_schema SET version = version + $1`, tc.delta); err != nil {
			t.Fatal(err)
		}
		_, err := store.OpenPostgresBeside(ctx, url, store.ReadOnly)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("schema version %+d: %v, want %q", tc.delta, err, tc.want)
		}
		if _, err := server.SQL().Exec(`UPDATE vws_schema SET version = version - $1`, tc.delta); err != nil {
			t.Fatal(err)
		}
	}
}

// holdLockAs holds the server lock of url's database in a session that calls itself
// app, as a vws server would, until the returned func closes it.
func holdLockAs(t *testing.T, url, app string) func() {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = app
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_lock(x'767773'::int)`); err != nil {
		t.Fatal(err)
	}
	closed := false
	release := func() {
		if !closed {
			closed = true
			conn.Close(context.Background())
		}
	}
	t.Cleanup(release)
	return release
}

// A server started right after one on this host was killed ends the dead one's
// session, which holds the lock until PostgreSQL notices the connection is gone (over
// TCP that can take hours); a live holder is refused at once.
func TestPostgresEndsADeadServersSession(t *testing.T) {
	ctx := context.Background()
	url := postgresURL(t)
	host, _ := os.Hostname()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	holdLockAs(t, url, fmt.Sprintf("vws on %s (pid %d)", host, dead.Process.Pid)) // never let go
	t0 := time.Now()
	db, err := store.OpenPostgres(ctx, url)
	if err != nil {
		t.Fatalf("a dead server's session, never ending by itself: %v", err)
	}
	if waited := time.Since(t0); waited > 10*time.Second {
		t.Errorf("opened after %s: the dead server's session was waited out, not ended", waited)
	}
	if other, err := store.OpenPostgres(ctx, url); !errors.Is(err, store.ErrInUse) {
		if other != nil {
			other.Close()
		}
		t.Fatalf("a second server beside the one that ended the dead one's session: %v", err)
	}
	db.Close()

	live := exec.Command("sleep", "30")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer live.Process.Kill()
	holdLockAs(t, url, fmt.Sprintf("vws on %s (pid %d)", host, live.Process.Pid))
	t0 = time.Now()
	if db, err := store.OpenPostgres(ctx, url); !errors.Is(err, store.ErrInUse) {
		if err == nil {
			db.Close()
		}
		t.Fatalf("a live server's lock: %v", err)
	}
	if waited := time.Since(t0); waited > 5*time.Second {
		t.Fatalf("refused only after %s; a live holder is refused at once", waited)
	}
}
