// Package store is vws's persistence: one SQLite database by default (pure Go driver,
// no cgo, so `vws` stays a static binary), or a PostgreSQL database when the
// Repository's records should live off its machine (postgres.go), each with versioned
// schema migrations.
//
// SQL written for either takes $1, $2, … placeholders, which both drivers bind by
// position, and the statements both dialects share (ON CONFLICT … DO UPDATE/NOTHING,
// LIMIT); what differs (types in DDL, GLOB) is chosen by IsPostgres.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/vws-grid/vws/internal/wsrf"
)

// DB is the database.
type DB struct {
	db *sql.DB
	// what says which database this is in logs and errors, with no password.
	what string
	// closeLock releases what keeps other servers off a shared database (PostgreSQL).
	closeLock func() error
	// ping checks more than that the database answers (PostgreSQL: the lock is held).
	ping func(context.Context) error
	// lost says the database was taken by another server (PostgreSQL); nil: never.
	lost <-chan error
}

// Lost delivers an error once the database is no longer this server's: another
// server took a PostgreSQL database while this one's session was cut. The server
// must stop, since its view of the records is stale. SQLite: never.
func (s *DB) Lost() <-chan error { return s.lost }

// migrations are applied in order; the database records how many it has seen. Never
// edit an applied one: append — here and to postgresMigrations, which must end in
// the same schema.
var migrations = []string{
	`CREATE TABLE resources (
		service     TEXT NOT NULL,
		key         TEXT NOT NULL,
		properties  BLOB NOT NULL,
		termination INTEGER,            -- unix milliseconds; NULL = no scheduled termination
		updated     INTEGER NOT NULL,
		PRIMARY KEY (service, key)
	)`,
	// The image pool: blobs by content digest, and the names (with the software they
	// carry) that point at them. Identical content is stored once.
	`CREATE TABLE images (
		digest   TEXT PRIMARY KEY,      -- "sha256:<64 hex>"
		format   TEXT NOT NULL,         -- qcow2 | raw
		size     INTEGER NOT NULL,      -- bytes of the stored file
		virtual_size INTEGER NOT NULL,  -- bytes the guest sees
		created  INTEGER NOT NULL
	);
	CREATE TABLE image_names (
		name      TEXT PRIMARY KEY,
		digest    TEXT NOT NULL REFERENCES images(digest),
		os        TEXT NOT NULL DEFAULT '',
		kernel    TEXT NOT NULL DEFAULT '',
		arch      TEXT NOT NULL DEFAULT '',
		libraries TEXT NOT NULL DEFAULT '', -- space-separated
		created   INTEGER NOT NULL
	);
	CREATE INDEX image_names_digest ON image_names(digest)`,
	// Append-only audit trail of create, clone, destroy, check-out/in and denials.
	`CREATE TABLE audit (
		id        INTEGER PRIMARY KEY AUTOINCREMENT,
		time      INTEGER NOT NULL,     -- unix milliseconds
		caller    TEXT NOT NULL,
		operation TEXT NOT NULL,
		resource  TEXT NOT NULL DEFAULT '',
		decision  TEXT NOT NULL,        -- allowed | denied | done | failed
		detail    TEXT NOT NULL DEFAULT ''
	)`,
	// Service-private state of a resource (e.g. a workspace's disk chain), committed
	// in the same row as its properties so the two never disagree after a crash.
	`ALTER TABLE resources ADD COLUMN private BLOB`,
	// The audit trail becomes a hash chain (internal/audit): the deciding policy rule,
	// and each record's predecessor hash and own hash. Rows from before stay '' until
	// the first record after the upgrade chains them.
	`ALTER TABLE audit ADD COLUMN rule TEXT NOT NULL DEFAULT '';
	ALTER TABLE audit ADD COLUMN prev TEXT NOT NULL DEFAULT '';
	ALTER TABLE audit ADD COLUMN hash TEXT NOT NULL DEFAULT ''`,
	// Where the kept audit chain starts once older records were pruned: the id and
	// hash of the last removed record, which the first kept one names as its prev.
	`CREATE TABLE audit_checkpoint (
		id        INTEGER PRIMARY KEY CHECK (id = 1),
		last_id   INTEGER NOT NULL,
		last_hash TEXT NOT NULL,
		pruned    INTEGER NOT NULL,     -- records removed so far
		at        INTEGER NOT NULL      -- unix milliseconds of the last pruning
	)`,
	// A pool image's SHA-256 digests of its chunk_bytes-long pieces (space-separated
	// hex, internal/chunkhash), computed from bytes that hashed to the image's digest,
	// for the signed manifest: managers check the pieces on every core. 0 and '': not
	// computed yet (the pool computes them after an import, or when first asked).
	`ALTER TABLE images ADD COLUMN chunk_bytes INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE images ADD COLUMN chunk_digests TEXT NOT NULL DEFAULT ''`,
	// Every certificate the Repository has signed manifests with (recorded when it
	// opens): without CAs (--insecure) a stored manifest signed by an earlier key is
	// signed again at check-out only when that key is one of these.
	`CREATE TABLE manifest_signers (
		fingerprint TEXT PRIMARY KEY,   -- hex SHA-256 of the certificate's DER
		subject     TEXT NOT NULL,
		first_used  INTEGER NOT NULL    -- unix milliseconds
	)`,
	// One row once the Repository's start-up sweep found every workspace record with a
	// signed manifest (the upgrade from records without one is done): from then on a
	// record without one is refused, not signed. Defence in depth against partial or
	// careless edits of the store, which it lives in, not against a full rewrite.
	`CREATE TABLE manifests_sealed (
		id    INTEGER PRIMARY KEY CHECK (id = 1),
		since INTEGER NOT NULL          -- unix milliseconds
	)`,
	// The audit table without AUTOINCREMENT, same columns, rows and ids: internal/audit
	// always supplies the id (its chain head + 1, or the pruning checkpoint's last_id + 1
	// on an emptied table), so the sqlite_sequence row AUTOINCREMENT kept was only an
	// extra page written by every append's commit. No index, trigger or view names audit.
	`CREATE TABLE audit_new (
		id        INTEGER PRIMARY KEY,
		time      INTEGER NOT NULL,     -- unix milliseconds
		caller    TEXT NOT NULL,
		operation TEXT NOT NULL,
		resource  TEXT NOT NULL DEFAULT '',
		decision  TEXT NOT NULL,        -- allowed | denied | done | failed
		detail    TEXT NOT NULL DEFAULT '',
		rule      TEXT NOT NULL DEFAULT '',
		prev      TEXT NOT NULL DEFAULT '',
		hash      TEXT NOT NULL DEFAULT ''
	);
	INSERT INTO audit_new (id, time, caller, operation, resource, decision, detail, rule, prev, hash)
		SELECT id, time, caller, operation, resource, decision, detail, rule, prev, hash FROM audit;
	DROP TABLE audit;
	ALTER TABLE audit_new RENAME TO audit`,
	// The hosts managers announced (placement): kept so that a restarted Repository
	// places workspaces at once, not after each manager's next announcement.
	`CREATE TABLE known_hosts (
		name         TEXT PRIMARY KEY,
		announced_by TEXT NOT NULL,
		offer        TEXT NOT NULL,     -- the repo:Host element as the Repository read it
		last_seen    INTEGER NOT NULL,  -- unix milliseconds
		expires      INTEGER NOT NULL   -- unix milliseconds
	)`,
}

// Open opens (creating if needed) the database in dir and migrates it.
func Open(ctx context.Context, dir string) (*DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	path := filepath.Join(dir, "vws.db")
	// WAL + synchronous=NORMAL: a commit survives a process crash (kill -9) at no fsync
	// cost per write; busy_timeout makes concurrent writers wait instead of failing.
	dsn := SQLiteURI(path) + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // SQLite has one writer; one connection avoids SQLITE_BUSY churn
	s := &DB{db: db, what: "SQLite " + path}
	if err := s.migrate(ctx, len(migrations)); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	return s, nil
}

// SQLiteURI is the "file:" URI of the SQLite database at path, for a DSN to append
// its query to. SQLite reads '#' and '?' in a URI as the end of the path and decodes
// '%': left as they are, a data directory "lab#1" kept its database in a file "lab"
// beside it (which "lab#2" shared), and "lab%41" could not open one.
func SQLiteURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path)
}

// SQL exposes the database to the packages that own tables in it (image pool, audit).
func (s *DB) SQL() *sql.DB { return s.db }

// String says which database this is ("SQLite /var/lib/vws/vws.db", "PostgreSQL
// vws@db.example.org:5432/vws"), never with a password.
func (s *DB) String() string { return s.what }

// Close closes the database.
func (s *DB) Close() error {
	var err error
	if s.closeLock != nil {
		err = s.closeLock()
	}
	return errors.Join(err, s.db.Close())
}

// migrate applies the migrations the database has not seen, up to the first upTo (all
// but in tests, which build a database as an earlier vws left it).
func (s *DB) migrate(ctx context.Context, upTo int) error {
	version, err := CheckSQLiteVersion(ctx, s.db)
	if err != nil {
		return err
	}
	return s.apply(ctx, migrations, version, upTo, func(tx *sql.Tx, v int) error {
		_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v))
		return err
	})
}

// CheckSQLiteVersion returns the schema version of the SQLite database db, refusing
// one a newer vws wrote: its records are of a schema this vws does not know. Readers
// that do not migrate (vws audit) check it too.
func CheckSQLiteVersion(ctx context.Context, db *sql.DB) (int, error) {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, err
	}
	if version > len(migrations) {
		return version, fmt.Errorf("database schema version %d is newer than this vws (%d); use a newer vws", version, len(migrations))
	}
	return version, nil
}

// apply runs list[from:upTo], each in one transaction with setVersion recording the
// version it reaches, so that a failed migration leaves the database as it was.
func (s *DB) apply(ctx context.Context, list []string, from, upTo int, setVersion func(*sql.Tx, int) error) error {
	for i := from; i < upTo; i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, list[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if err := setVersion(tx, i+1); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// LoadResources implements wsrf.Store.
func (s *DB) LoadResources(ctx context.Context, service string) ([]wsrf.StoredResource, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, properties, termination, private FROM resources WHERE service = $1`, service)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []wsrf.StoredResource
	for rows.Next() {
		var r wsrf.StoredResource
		var term sql.NullInt64
		if err := rows.Scan(&r.Key, &r.Properties, &term, &r.Private); err != nil {
			return nil, err
		}
		if term.Valid {
			t := time.UnixMilli(term.Int64).UTC()
			r.Termination = &t
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// writeTimeout bounds a record write once begun (writeContext).
const writeTimeout = 30 * time.Second

// writeContext is ctx for a record write, which a caller hanging up does not end:
// cancelled mid-statement, the driver answers the context's error whether or not the
// statement committed, and the caller, told it failed, undoes what the record may now
// name (files it linked, a directory it made). Bounded still, for a database server
// that stops answering.
func writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// PutResource implements wsrf.Store.
func (s *DB) PutResource(ctx context.Context, service string, r wsrf.StoredResource) error {
	ctx, cancel := writeContext(ctx)
	defer cancel()
	var term any
	if r.Termination != nil {
		term = r.Termination.UnixMilli()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO resources (service, key, properties, termination, updated, private)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (service, key) DO UPDATE SET properties = excluded.properties,
			termination = excluded.termination, updated = excluded.updated, private = excluded.private`,
		service, r.Key, r.Properties, term, time.Now().UnixMilli(), r.Private)
	return err
}

// DeleteResource implements wsrf.Store. Deleting a missing resource is not an error.
func (s *DB) DeleteResource(ctx context.Context, service, key string) error {
	ctx, cancel := writeContext(ctx)
	defer cancel()
	_, err := s.db.ExecContext(ctx, `DELETE FROM resources WHERE service = $1 AND key = $2`, service, key)
	return err
}

// Ping checks the database answers (and, on PostgreSQL, that it is still this
// server's).
func (s *DB) Ping(ctx context.Context) error {
	if s.ping != nil {
		return s.ping(ctx)
	}
	return s.db.PingContext(ctx)
}

// Durable makes the commits made so far through db survive an operating-system crash,
// not only a process crash, before something they made obsolete is removed (a
// replaced file): SQLite in WAL mode with synchronous=NORMAL appends commits to its
// log without syncing it, so the log is synced here; PostgreSQL flushes every commit.
func Durable(ctx context.Context, db *sql.DB) error {
	if IsPostgres(db) {
		return nil
	}
	var seq int
	var name, file string
	if err := db.QueryRowContext(ctx, `PRAGMA database_list`).Scan(&seq, &name, &file); err != nil {
		return fmt.Errorf("make the database's last commits durable: %w", err)
	}
	if file == "" {
		return nil // in memory
	}
	for _, f := range []string{file + "-wal", file} {
		h, err := os.Open(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("make the database's last commits durable: %w", err)
		}
		err = h.Sync()
		h.Close()
		if err != nil {
			return fmt.Errorf("make the database's last commits durable: sync %s: %w", f, err)
		}
	}
	return nil
}
