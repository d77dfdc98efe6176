package server

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vws-grid/vws/internal/store/storetest"
)

// TestDatabaseRefusalHidesThePassword: a --database given as a libpq key=value string
// (or any other form than postgres://) is refused without showing its password.
func TestDatabaseRefusalHidesThePassword(t *testing.T) {
	for _, db := range []string{
		"host=/var/run/postgresql user=vws password=s3cret dbname=vws",
		"postgresql+ssl://vws@db/vws?password=s3cret",
	} {
		_, err := New(context.Background(), Config{DataDir: t.TempDir(), Database: db})
		if err == nil {
			t.Fatalf("%q accepted", db)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("the refusal shows the password: %v", err)
		}
	}
}

// TestCancelledHealthzKeepsTheDatabase: a /healthz whose client went away (its request
// context cancelled) does not make the server let go of its PostgreSQL database: a
// second server is still refused.
func TestCancelledHealthzKeepsTheDatabase(t *testing.T) {
	url := storetest.NewPostgres(t, storetest.Server(t))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := New(context.Background(), Config{DataDir: t.TempDir(), Database: url, Roles: []string{"factory"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	first.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil).WithContext(ctx))
	t.Logf("/healthz with its client gone: %d %s", rec.Code, rec.Body.String())
	second, err := New(context.Background(), Config{DataDir: t.TempDir(), Database: url, Roles: []string{"factory"}, Logger: quiet})
	if err == nil {
		defer second.Close()
		t.Fatal("a second server started on the database of a running server")
	}
}

// TestFenceStopsWritesAtOnce: once fenced (its database taken by another server), a
// server writes nothing more — a Create fails — and still closes cleanly.
func TestFenceStopsWritesAtOnce(t *testing.T) {
	url := storetest.NewPostgres(t, storetest.Server(t))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(context.Background(), Config{DataDir: t.TempDir(), Database: url, Roles: []string{"repository"}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv.Fence()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code == 200 {
		t.Errorf("a fenced server says it is healthy")
	}
	if _, err := srv.db.SQL().Exec(`SELECT 1`); err == nil {
		t.Error("a fenced server's database still takes statements")
	}
	srv.Close()
}
