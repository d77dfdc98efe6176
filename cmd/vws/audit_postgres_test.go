package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// postgresServer is the PostgreSQL server the tests make databases on, or a skip.
func postgresServer(t *testing.T) string { return storetest.Server(t) }

// runningServer opens a fresh PostgreSQL database as vws serve --database does, and so
// holds its lock for the rest of the test, and its audit log.
func runningServer(t *testing.T) (string, *store.DB, *audit.Log) {
	t.Helper()
	url := storetest.NewPostgres(t, postgresServer(t))
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return url, db, audit.New(db.SQL(), nil)
}

// vws audit --database reads the trail beside the server that holds the database:
// listing, filters, JSON, --verify and --anchor as with SQLite.
func TestAuditPostgres(t *testing.T) {
	url, db, l := runningServer(t)
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=Example/CN=Alice Smith"})
	bob := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=Other/CN=Bob_1%"})
	l.Record(alice, "create", "ws-1", "done", "name=alpha")
	l.RecordDecision(bob, "manage Destroy", "ws-1", false, "rules.conf:4, but not the owner and no share rule", "")
	l.Record(alice, "destroy", "ws-1", "done", "name=alpha")

	out, err := auditCLI(t, "--database", url)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[2], "rules.conf:4, but not the owner") ||
		!strings.Contains(lines[1], "/O=Grid/OU=Example/CN=Alice Smith") {
		t.Fatalf("table:\n%s", out)
	}
	// The caller glob on PostgreSQL: * matches anything, _ and % only themselves.
	for _, tc := range []struct {
		glob string
		ids  []int64
	}{
		{"/O=Grid/OU=Other/*", []int64{2}},
		{"/O=Grid/OU=Other/CN=Bob_1%", []int64{2}},
		{"/O=Grid/OU=Other/CN=Bob_%", nil},
		{"/O=Grid/OU=Other/CN=Bob%1*", nil},
		{"/O=Grid/*", []int64{1, 2, 3}},
	} {
		out, err := auditCLI(t, "--database", url, "--caller", tc.glob, "--since", "1h", "--json")
		if err != nil {
			t.Fatal(err)
		}
		var got []struct{ ID int64 }
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("json %v: %s", err, out)
		}
		var ids []int64
		for _, e := range got {
			ids = append(ids, e.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
			t.Errorf("--caller %q: records %v, want %v", tc.glob, ids, tc.ids)
		}
	}
	if out, err = auditCLI(t, "--database", url, "--decision", "denied", "--json"); err != nil || strings.Count(out, `"id"`) != 1 || !strings.Contains(out, `"id": 2`) {
		t.Fatalf("--decision denied: %v %s", err, out)
	}

	id, head, err := l.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err = auditCLI(t, "--database", url, "--verify", "--anchor", fmt.Sprintf("%d:%s", id, head))
	if err != nil || !strings.Contains(out, "audit chain intact: 3 records; head: record 3") || !strings.Contains(out, "logged head 3 is in the chain") {
		t.Fatalf("verify: %v %s", err, out)
	}
	// The server goes on appending beside the reader.
	l.Record(alice, "create", "ws-2", "done", "")
	if out, err = auditCLI(t, "--database", url, "--verify"); err != nil || !strings.Contains(out, "intact: 4 records") {
		t.Fatalf("verify after another append: %v %s", err, out)
	}

	if _, err := db.SQL().Exec(`UPDATE audit SET caller = '/O=Grid/CN=Nobody' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	_, err = auditCLI(t, "--database", url, "--verify")
	var ce *audit.ChainError
	if !errors.As(err, &ce) || ce.ID != 2 || !strings.Contains(err.Error(), "PostgreSQL") {
		t.Fatalf("verify after tampering: %v", err)
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatalf("the server lost its lock to vws audit: %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--database", url, "--data", t.TempDir()}, "--data and --database name two stores"},
		{[]string{"--database", "mysql://vws:s3cret@db/vws"}, "want a PostgreSQL URL"},
	} {
		if _, err := auditCLI(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("audit %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// vws audit refuses a database at another schema version than its own, and one that
// is not a vws database at all, saying what to do.
func TestAuditPostgresRefusesOtherSchemas(t *testing.T) {
	blank := storetest.NewPostgres(t, postgresServer(t))
	if _, err := auditCLI(t, "--database", blank); err == nil || !strings.Contains(err.Error(), "is not a vws database") ||
		!strings.Contains(err.Error(), "check the URL") {
		t.Fatalf("a database without vws's schema: %v", err)
	}
	if _, err := auditCLI(t, "--database", blank, "--prune-before", "90d"); err == nil || !strings.Contains(err.Error(), "is not a vws database") {
		t.Fatalf("pruning a database without vws's schema: %v", err)
	}

	url, db, _ := runningServer(t)
	var version int
	if err := db.SQL().QueryRow(`SELECT version FROM vws_schema`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		version int
		want    string
	}{
		{version - 1, "start this vws's serve on it once to migrate it"},
		{version + 1, "newer than this vws's"},
	} {
		if _, err := db.SQL().Exec(`UPDATE vws_schema SET version = $1`, tc.version); err != nil {
			t.Fatal(err)
		}
		if _, err := auditCLI(t, "--database", url, "--verify"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("schema version %d: %v, want %q", tc.version, err, tc.want)
		}
	}
}

// --prune-before on PostgreSQL beside the running server: the server appends on after
// the pruning, and the chain still verifies from the checkpoint.
func TestAuditPrunePostgres(t *testing.T) {
	url, _, l := runningServer(t)
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"})
	for range 3 {
		l.Record(alice, "create", "ws", "done", "")
	}
	if _, err := auditCLI(t, "--database", url, "--prune-before", "1s"); err == nil || !strings.Contains(err.Error(), "nothing was removed") {
		t.Fatalf("--prune-before 1s without --yes: %v", err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	out, err := auditCLI(t, "--database", url, "--prune-before", future, "--yes")
	if err != nil || !strings.Contains(out, "removed 3 records") || !strings.Contains(out, "after record 3") {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	// The server's cached head is the pruned record 3: it chains on from it.
	l.Record(alice, "destroy", "ws", "done", "")
	out, err = auditCLI(t, "--database", url, "--verify")
	if err != nil || !strings.Contains(out, "intact: 1 records; head: record 4") {
		t.Fatalf("verify after pruning beside the server: %v\n%s", err, out)
	}
}
