package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthzKeepsTheDatabaseErrorToTheLog: /healthz answers anyone past TLS; the
// database's error (PostgreSQL's names its host and user) goes to the log only, and
// the answer says to look there.
func TestHealthzKeepsTheDatabaseErrorToTheLog(t *testing.T) {
	var logged bytes.Buffer
	srv, err := New(context.Background(), Config{DataDir: t.TempDir(), Roles: []string{"factory"}, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.db.SQL().Close() // the database stops answering
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(body, "sql:") || !strings.Contains(body, "log") {
		t.Errorf("/healthz with the database gone: %d %q; want 503 without the database's error", rec.Code, body)
	}
	if !strings.Contains(logged.String(), "database is closed") {
		t.Errorf("the log does not carry the database's error:\n%s", logged.String())
	}
}
