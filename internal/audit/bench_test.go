package audit

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/store"
	"github.com/vws-grid/vws/internal/store/storetest"
)

// BenchmarkAppend measures one audit append (Log.Record: head, hash, INSERT, commit)
// next to the raw operation it rests on — a prepared INSERT of an equal row into a
// plain table of the same database — so the chain's own cost is the difference. The
// server appends from a goroutine per request, hence the parallel pair (16 at once,
// where the chain's group commit shares one commit among those waiting). It runs on
// SQLite, and on PostgreSQL too when VWS_TEST_POSTGRES names a server (make bench).
func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.Run("sqlite", func(b *testing.B) { benchAppend(b, db) })
	if server := os.Getenv(storetest.Env); server != "" {
		pg, err := store.OpenPostgres(ctx, storetest.NewPostgres(b, server))
		if err != nil {
			b.Fatal(err)
		}
		defer pg.Close()
		b.Run("postgres", func(b *testing.B) { benchAppend(b, pg) })
	}
}

func benchAppend(b *testing.B, db *store.DB) {
	ctx := context.Background()
	sqlDB := db.SQL()
	id := "id INTEGER PRIMARY KEY"
	if store.IsPostgres(sqlDB) {
		id = "id BIGSERIAL PRIMARY KEY"
	}
	if _, err := sqlDB.ExecContext(ctx, `CREATE TABLE plain (
		`+id+`, time BIGINT NOT NULL, caller TEXT NOT NULL, operation TEXT NOT NULL,
		resource TEXT NOT NULL, decision TEXT NOT NULL, detail TEXT NOT NULL, rule TEXT NOT NULL,
		prev TEXT NOT NULL, hash TEXT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	insert, err := sqlDB.PrepareContext(ctx, `INSERT INTO plain (time, caller, operation, resource, decision, detail, rule, prev, hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`)
	if err != nil {
		b.Fatal(err)
	}
	defer insert.Close()

	const (
		caller    = "/O=Grid/OU=Example/CN=Alice Smith"
		operation = "manage Destroy"
		resource  = "6f1c1d3e-4b8a-4f7e-9a55-0c2b7d9e1a42"
		rule      = "rules.conf:4"
	)
	who := identity.With(ctx, identity.Identity{DN: caller})
	hash := strings.Repeat("a", 64)
	l := New(sqlDB, slog.New(slog.DiscardHandler))

	// appended checks that every Record of a run was committed: a lost record is
	// only logged, and a benchmark of failures would look fast.
	appended := func(b *testing.B, run func()) {
		before, _, err := l.Head(ctx)
		if err != nil {
			b.Fatal(err)
		}
		run()
		b.StopTimer()
		after, _, err := l.Head(ctx)
		if err != nil || after-before != int64(b.N) {
			b.Fatalf("%d records appended for b.N = %d (%v)", after-before, b.N, err)
		}
	}
	plainOnce := func(b *testing.B) {
		if _, err := insert.ExecContext(ctx, time.Now().UnixMilli(), caller, operation, resource, "allowed", "", rule, hash, hash); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("chain", func(b *testing.B) {
		appended(b, func() {
			for b.Loop() {
				l.RecordDecision(who, operation, resource, true, rule, "")
			}
		})
	})
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			plainOnce(b)
		}
	})
	// 16 appenders: a server busy with 16 requests at once (goroutines, not cores).
	b.Run("chain-parallel", func(b *testing.B) {
		b.SetParallelism(8)
		appended(b, func() {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					l.RecordDecision(who, operation, resource, true, rule, "")
				}
			})
		})
	})
	b.Run("plain-parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				plainOnce(b)
			}
		})
	})
}
