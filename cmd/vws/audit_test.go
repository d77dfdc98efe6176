package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/store"
)

// auditCLI runs `vws audit args...` in process.
func auditCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"audit"}, args...))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// openAudit opens a fresh data directory's database and its audit log.
func openAudit(t *testing.T) (string, *store.DB, *audit.Log) {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, db, audit.New(db.SQL(), nil)
}

func TestAuditCommand(t *testing.T) {
	dir, db, l := openAudit(t)
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=Example/CN=Alice Smith"})
	bob := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/OU=Other/CN=Bob"})
	l.Record(alice, "create", "ws-1", "done", "name=alpha")
	l.RecordDecision(bob, "manage Destroy", "ws-1", false, "rules.conf:4, but not the owner and no share rule", "")
	l.Record(alice, "destroy", "ws-1", "done", "name=alpha")
	db.Close()

	out, err := auditCLI(t, "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[2], "rules.conf:4, but not the owner") ||
		!strings.Contains(lines[1], "/O=Grid/OU=Example/CN=Alice Smith") {
		t.Fatalf("table:\n%s", out)
	}

	out, err = auditCLI(t, "--data", dir, "--decision", "denied", "--caller", "/O=Grid/OU=Other/*", "--since", "1h", "--json")
	if err != nil {
		t.Fatal(err)
	}

	var got []struct {
		ID     int64
		Caller string
		Rule   string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 || got[0].ID != 2 || got[0].Caller != "/O=Grid/OU=Other/CN=Bob" {
		t.Fatalf("json %v: %s", err, out)
	}
	if out, err = auditCLI(t, "--data", dir, "--resource", "ws-1", "--limit", "1", "--json"); err != nil || !strings.Contains(out, `"operation": "destroy"`) || strings.Count(out, `"id"`) != 1 {
		t.Fatalf("limit: %v %s", err, out)
	}

	out, err = auditCLI(t, "--data", dir, "--verify")
	if err != nil || !strings.Contains(out, "audit chain intact: 3 records") {
		t.Fatalf("verify: %v %s", err, out)
	}

	// Tamper with the database behind vws's back: the second record hides Bob.
	raw, err := sql.Open("sqlite", "file:"+dir+"/vws.db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec(`UPDATE audit SET caller = '/O=Grid/CN=Nobody' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err = auditCLI(t, "--data", dir, "--verify")
	var ce *audit.ChainError
	if !errors.As(err, &ce) || ce.ID != 2 || !strings.Contains(err.Error(), "record 2 was altered or removed") {
		t.Fatalf("verify after tampering: %v", err)
	}

	if _, err := auditCLI(t, "--data", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no vws database") {
		t.Fatalf("empty data dir: %v", err)
	}
	if _, err := auditCLI(t, "--data", dir, "--since", "yesterday"); err == nil {
		t.Fatal("--since yesterday accepted")
	}
}

func TestAuditPrune(t *testing.T) {
	dir, db, l := openAudit(t)
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"})
	for range 3 {
		l.Record(alice, "create", "ws", "done", "")
	}
	db.Close()
	if _, err := auditCLI(t, "--data", dir, "--prune-before", "yesterday"); err == nil {
		t.Fatal("a --prune-before that is no time was accepted")
	}
	// Removing the last day's records (here: all of them) takes --yes.
	for _, when := range []string{"2099-01-01T00:00:00Z", "0", "1s", "23h"} {
		if _, err := auditCLI(t, "--data", dir, "--prune-before", when); err == nil || !strings.Contains(err.Error(), "--yes") ||
			!strings.Contains(err.Error(), "nothing was removed") {
			t.Fatalf("--prune-before %s without --yes: %v", when, err)
		}
	}
	if out, err := auditCLI(t, "--data", dir, "--prune-before", "24h"); err != nil || !strings.Contains(out, "removed 0 records") {
		t.Fatalf("--prune-before 24h: %v\n%s", err, out)
	}
	if _, err := auditCLI(t, "--data", dir, "--prune-before", "24h", "--caller", "/O=Grid/CN=alice"); err == nil ||
		!strings.Contains(err.Error(), "whatever --caller says") {
		t.Fatalf("--prune-before with a filter it ignores: %v", err)
	}
	out, err := auditCLI(t, "--data", dir, "--prune-before", "2099-01-01T00:00:00Z", "--yes")
	if err != nil || !strings.Contains(out, "removed 3 records") || !strings.Contains(out, "after record 3") {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	if out, err := auditCLI(t, "--data", dir, "--verify"); err != nil || !strings.Contains(out, "intact: 0 records; head: record 3") {
		t.Fatalf("verify after pruning everything: %v\n%s", err, out)
	}
}

// A database rewritten consistently verifies on its own; the head the server logged
// catches it.
func TestAuditAnchor(t *testing.T) {
	dir, db, l := openAudit(t)
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"})
	l.Record(alice, "create", "ws", "done", "")
	l.Record(alice, "destroy", "ws", "done", "")
	id, head, err := l.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := auditCLI(t, "--data", dir, "--verify", "--anchor", fmt.Sprintf("%d:%s", id, head)); err != nil || !strings.Contains(out, "logged head 2 is in the chain") {
		t.Fatalf("the true head: %v\n%s", err, out)
	}
	// Rewrite record 2 with a correct hash of its own: the chain still verifies.
	var e audit.Entry
	list, _ := l.List(context.Background(), 10)
	e = list[1]
	e.Caller = "/O=Grid/CN=mallory"
	if _, err := db.SQL().Exec(`UPDATE audit SET caller = $1, hash = $2 WHERE id = $3`, e.Caller, e.ComputeHash(), e.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out, err := auditCLI(t, "--data", dir, "--verify"); err != nil {
		t.Fatalf("a consistent rewrite should pass the chain check alone: %v\n%s", err, out)
	}
	anchor := fmt.Sprintf("%d:%s", id, head)
	if out, err := auditCLI(t, "--data", dir, "--verify", "--anchor", anchor); err == nil || !strings.Contains(err.Error(), "rewritten") {
		t.Fatalf("the logged head did not catch the rewrite: %v\n%s", err, out)
	}
	if _, err := auditCLI(t, "--data", dir, "--verify", "--anchor", "two:abc"); err == nil {
		t.Fatal("a malformed --anchor was accepted")
	}
}

// Flags that would be ignored, or match nothing, are refused before the database
// is read.
func TestAuditRefusesFlagsThatDoNothing(t *testing.T) {
	dir, db, l := openAudit(t)
	l.Record(identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"}), "create", "ws", "done", "")
	db.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--anchor", "1:abc"}, "--anchor is checked by --verify: add --verify"},
		{[]string{"--decision", "nope"}, `--decision "nope" is not a decision: give allowed, denied, done, failed, withdrawn or while-deployed`},
		{[]string{"--limit", "-1"}, "--limit -1 is negative"},
	} {
		if out, err := auditCLI(t, append([]string{"--data", dir}, tc.args...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("audit %v: want an error saying %q, got %v\n%s", tc.args, tc.want, err, out)
		}
	}
	if out, err := auditCLI(t, "--data", dir, "--decision", "while-deployed"); err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("a decision the Repository records: %v\n%s", err, out)
	}
}

// TestAuditJSONKeepsAngleBrackets: --json writes "<anonymous>" as the table and
// --caller do, not "\u003canonymous\u003e", which grep would not find.
func TestAuditJSONKeepsAngleBrackets(t *testing.T) {
	dir, db, l := openAudit(t)
	l.Record(context.Background(), "create", "ws-1", "done", "name=<x>")
	db.Close()
	out, err := auditCLI(t, "--data", dir, "--json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"<anonymous>"`) || strings.Contains(out, `\u003c`) {
		t.Fatalf("--json:\n%s", out)
	}
}

// A --since later than --until matches nothing by construction (--since 1h --until
// 2h, the two swapped): it is refused, saying so, rather than shown as an empty
// trail, which reads as "nothing happened then".
func TestAuditRefusesSinceAfterUntil(t *testing.T) {
	dir, db, l := openAudit(t)
	l.Record(identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"}), "create", "ws", "done", "")
	db.Close()
	out, err := auditCLI(t, "--data", dir, "--since", "1h", "--until", "2h")
	if err == nil || !strings.Contains(err.Error(), "--since 1h is after --until 2h") {
		t.Fatalf("--since 1h --until 2h: want refused, got %v\n%s", err, out)
	}
	if out, err := auditCLI(t, "--data", dir, "--since", "2h", "--until", "0s"); err != nil || strings.Count(out, "\n") != 2 {
		t.Fatalf("--since 2h --until 0s: %v\n%s", err, out)
	}
}

// TestAuditPruneSaysWhyItStopsAtAFutureRecord: after the clock was briefly set into
// the future, pruning stops at the record written then on every later run (the chain
// is removed in order) and said only "removed 0 records". It now names the record,
// its date, and what the administrator can do.
func TestAuditPruneSaysWhyItStopsAtAFutureRecord(t *testing.T) {
	dir, db, l := openAudit(t)
	alice := identity.With(context.Background(), identity.Identity{DN: "/O=Grid/CN=alice"})
	for range 4 {
		l.Record(alice, "create", "ws", "done", "")
	}
	// Record 2 was written while the clock was in 2099; the others are 200 days, 100
	// days and an hour old. Rewritten with their hashes, as vws would have written them.
	now := time.Now()
	stamps := []time.Time{now.Add(-200 * 24 * time.Hour), time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC), now.Add(-100 * 24 * time.Hour), now.Add(-time.Hour)}
	list, err := l.List(context.Background(), 10)
	if err != nil || len(list) != 4 {
		t.Fatalf("list: %v %v", list, err)
	}
	prev := audit.Genesis
	for i, e := range list {
		e.Time, e.Prev = time.UnixMilli(stamps[i].UnixMilli()).UTC(), prev
		e.Hash = e.ComputeHash()
		prev = e.Hash
		if _, err := db.SQL().Exec(`UPDATE audit SET time = $1, prev = $2, hash = $3 WHERE id = $4`, e.Time.UnixMilli(), e.Prev, e.Hash, e.ID); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	out, err := auditCLI(t, "--data", dir, "--prune-before", "90d")
	if err != nil || !strings.Contains(out, "removed 1 records") {
		t.Fatalf("prune: %v\n%s", err, out)
	}
	for _, want := range []string{"stopped at record 2, dated 2099-01-01T00:00:00Z, in the future", "1 record after it", "NTP", "--prune-before"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report does not say %q:\n%s", want, out)
		}
	}
}
