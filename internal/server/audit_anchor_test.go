package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"testing"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/store"
)

var loggedHead = regexp.MustCompile(`msg="audit chain head" id=(\d+) hash=([0-9a-f]{64})`)

// lastLoggedHead is the last "audit chain head" line in log, as `vws audit --verify
// --anchor ID:HASH` takes it (-1 when there is none).
func lastLoggedHead(log string) (int64, string) {
	all := loggedHead.FindAllStringSubmatch(log, -1)
	if len(all) == 0 {
		return -1, ""
	}
	m := all[len(all)-1]
	id, _ := strconv.ParseInt(m[1], 10, 64)
	return id, m[2]
}

// TestAuditHeadAnchoredAtStartAndStop: the chain head was logged only every 1000
// records (and at the first append), so someone with write access to the database
// who removed the newest records while the server was stopped left a chain that
// verified and passed every logged anchor. The server now logs the head when it
// starts and when it stops; the anchor the stop logged catches the removal.
func TestAuditHeadAnchoredAtStartAndStop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var logged bytes.Buffer
	srv, err := New(ctx, Config{DataDir: dir, Roles: []string{"factory"}, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if id, hash := lastLoggedHead(logged.String()); id != 0 || hash != audit.Genesis {
		t.Errorf("head logged at start: %d %s, want 0 and the genesis hash\n%s", id, hash, logged.String())
	}
	al := audit.New(srv.DB(), srv.log) // the server's chain and log, as its handlers'
	alice := identity.With(ctx, identity.Identity{DN: "/O=Grid/CN=alice"})
	for range 5 {
		al.Record(alice, "destroy", "ws", "done", "")
	}
	srv.Close()
	id, hash := lastLoggedHead(logged.String())
	if id != 5 {
		t.Fatalf("head logged at stop: record %d, want 5 (the last appended)\n%s", id, logged.String())
	}

	// While the server is down, the two newest records are removed.
	db, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().Exec(`DELETE FROM audit WHERE id > 3`); err != nil {
		t.Fatal(err)
	}
	l := audit.New(db.SQL(), slog.New(slog.DiscardHandler))
	if n, err := l.Verify(ctx); err != nil || n != 3 {
		t.Fatalf("verify: %d, %v (the removal of the newest records leaves a chain that verifies)", n, err)
	}
	if err := l.HasAnchor(ctx, id, hash); !errors.Is(err, audit.ErrChainBroken) {
		t.Errorf("the head logged at stop (%d) did not catch the removal of the newest records: %v", id, err)
	}
}
