package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	neturl "net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// postgresMigrations are PostgreSQL's migrations: the first is the schema the SQLite
// migrations had reached when PostgreSQL support came (their 9), with PostgreSQL's
// types (BIGINT for unix milliseconds and sizes, BYTEA for blobs). Append a migration
// here whenever one is appended to migrations.
var postgresMigrations = []string{
	`CREATE TABLE resources (
		service     TEXT NOT NULL,
		key         TEXT NOT NULL,
		properties  BYTEA NOT NULL,
		termination BIGINT,             -- unix milliseconds; NULL = no scheduled termination
		updated     BIGINT NOT NULL,
		private     BYTEA,
		PRIMARY KEY (service, key)
	);
	CREATE TABLE images (
		digest        TEXT PRIMARY KEY,
		format        TEXT NOT NULL,
		size          BIGINT NOT NULL,
		virtual_size  BIGINT NOT NULL,
		created       BIGINT NOT NULL,
		chunk_bytes   BIGINT NOT NULL DEFAULT 0,
		chunk_digests TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE image_names (
		name      TEXT PRIMARY KEY,
		digest    TEXT NOT NULL REFERENCES images(digest),
		os        TEXT NOT NULL DEFAULT '',
		kernel    TEXT NOT NULL DEFAULT '',
		arch      TEXT NOT NULL DEFAULT '',
		libraries TEXT NOT NULL DEFAULT '',
		created   BIGINT NOT NULL
	);
	CREATE INDEX image_names_digest ON image_names(digest);
	CREATE TABLE audit (
		id        BIGINT PRIMARY KEY,
		time      BIGINT NOT NULL,
		caller    TEXT NOT NULL,
		operation TEXT NOT NULL,
		resource  TEXT NOT NULL DEFAULT '',
		decision  TEXT NOT NULL,
		detail    TEXT NOT NULL DEFAULT '',
		rule      TEXT NOT NULL DEFAULT '',
		prev      TEXT NOT NULL DEFAULT '',
		hash      TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE audit_checkpoint (
		id        INTEGER PRIMARY KEY CHECK (id = 1),
		last_id   BIGINT NOT NULL,
		last_hash TEXT NOT NULL,
		pruned    BIGINT NOT NULL,
		at        BIGINT NOT NULL
	);
	CREATE TABLE manifest_signers (
		fingerprint TEXT PRIMARY KEY,
		subject     TEXT NOT NULL,
		first_used  BIGINT NOT NULL
	);
	CREATE TABLE manifests_sealed (
		id    INTEGER PRIMARY KEY CHECK (id = 1),
		since BIGINT NOT NULL
	)`,
	`CREATE TABLE known_hosts (
		name         TEXT PRIMARY KEY,
		announced_by TEXT NOT NULL,
		offer        TEXT NOT NULL,
		last_seen    BIGINT NOT NULL,
		expires      BIGINT NOT NULL
	)`,
}

// ErrInUse is wrapped by the refusal of a database another vws server holds.
var ErrInUse = errors.New("in use by another vws server")

// lockCheckEvery is how often a server checks that its lock is still its own, and
// takes it again after its session was cut (a database restart).
const lockCheckEvery = 2 * time.Second

// serverLockKey is the session advisory lock a vws server holds on its PostgreSQL
// database ("vws" in ASCII). The Repository keeps its workspaces in memory and
// serializes their changes in-process, so two servers writing one database would
// overwrite each other's changes: the second is refused instead.
const serverLockKey = 0x767773

// IsPostgresURL says whether a --database value names a PostgreSQL database.
func IsPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// RedactURL is a database URL fit for a message or a log: without its password —
// the user:password@ part, and the query's password and sslpassword, which PostgreSQL
// clients read too. What is not a URL at all (a libpq "key=value" string may carry
// password=) is not shown.
func RedactURL(s string) string {
	u, err := neturl.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" || strings.ContainsAny(s, " \t\n") {
		return "(not a URL; not shown, since it may hold a password)"
	}
	q := u.Query()
	hidden := false
	for k := range q {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			q.Set(k, "xxxxx")
			hidden = true
		}
	}
	if hidden {
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// IsPostgres says whether db is a PostgreSQL database (else it is SQLite), for the
// few statements the two dialects write differently.
func IsPostgres(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

// OpenPostgres connects to the PostgreSQL database url names
// (postgres://user:password@host:port/database?sslmode=…, or host=/var/run/postgresql
// for a Unix socket), takes it for this server, and migrates it.
func OpenPostgres(ctx context.Context, url string) (*DB, error) {
	// A handful of connections: the Repository's writes are serialized in-process
	// anyway, and the audit trail appends from one writer at a time (in batches);
	// one connection holds the server's lock.
	db, what, err := connectPostgres(ctx, url, "vws", nil, 8)
	if err != nil {
		return nil, err
	}
	lock := &serverLock{db: db, what: what, lost: make(chan error, 1), stop: make(chan struct{})}
	if err := lock.takeAtStart(ctx); err != nil {
		db.Close()
		return nil, err
	}
	lock.wg.Add(1)
	go lock.watch()
	s := &DB{db: db, what: what, closeLock: lock.release, ping: lock.check, lost: lock.lost}
	if err := s.migratePostgres(ctx, len(postgresMigrations)); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate %s: %w", what, err)
	}
	return s, nil
}

// connectPostgres opens a pool of at most conns connections to url whose sessions
// carry params, and checks the database answers. app starts the application_name
// PostgreSQL shows for them (pg_stat_activity), which also names the lock's holder.
func connectPostgres(ctx context.Context, url, app string, params map[string]string, conns int) (*sql.DB, string, error) {
	cfg, err := pgx.ParseConfig(url) // its errors never repeat the password
	if err != nil {
		return nil, "", fmt.Errorf("database URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = appName(app, os.Getpid())
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	what := fmt.Sprintf("PostgreSQL %s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, "", &ConnectError{What: what, Err: err}
	}
	return db, what, nil
}

// ConnectError is a PostgreSQL database that took no session: not running, not
// reachable, or refusing this client.
type ConnectError struct {
	What string // PostgreSQL USER@HOST:PORT/DATABASE, no password
	Err  error
}

// Error is one line: the driver's text spans one line per attempt, each repeating
// the address.
func (e *ConnectError) Error() string {
	cause := e.Err
	var ce *pgconn.ConnectError
	if errors.As(cause, &ce) {
		cause = ce.Unwrap()
		// The last attempt is the telling one: with sslmode=prefer the first is often
		// only a server that does no TLS.
		if j, ok := cause.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
			cause = j.Unwrap()[len(j.Unwrap())-1]
		}
	}
	return "connect to " + e.What + ": " + strings.Join(strings.Fields(cause.Error()), " ")
}

func (e *ConnectError) Unwrap() error { return e.Err }

// PingPostgres checks that the PostgreSQL database url names takes a session, and
// leaves it: a server checks it before it locks its data directory, which an
// unreachable database then leaves as it was.
func PingPostgres(ctx context.Context, url string) error {
	db, _, err := connectPostgres(ctx, url, "vws", nil, 1)
	if err != nil {
		return err
	}
	return db.Close()
}

// Access is what OpenPostgresBeside's sessions may do.
type Access int

const (
	// ReadOnly sessions refuse every write (default_transaction_read_only), so that
	// a reading command cannot change the records even by a bug.
	ReadOnly Access = iota
	// ReadWrite sessions may write, in SERIALIZABLE transactions.
	ReadWrite
)

// OpenPostgresBeside opens the PostgreSQL database url names for the site
// administrator's commands (vws audit), which run beside the vws server holding it:
// without the server's lock, which that server keeps, and without migrating, which is
// that server's to do. It refuses a database without vws's schema, or at another
// version of it than this vws's, whose records it would misread.
//
// ReadWrite sessions' transactions are SERIALIZABLE: of two audit prunings at once,
// one fails and changes nothing (could not serialize access), where under READ
// COMMITTED the later to commit could set the checkpoint back before records the
// other removed, and the kept chain would no longer verify. The server's own
// transactions are unaffected.
func OpenPostgresBeside(ctx context.Context, url string, access Access) (*DB, error) {
	params := map[string]string{"default_transaction_read_only": "on"}
	app := "vws (read-only)"
	if access == ReadWrite {
		params = map[string]string{"default_transaction_isolation": "serializable"}
		app = "vws (administration)"
	}
	db, what, err := connectPostgres(ctx, url, app, params, 2)
	if err != nil {
		return nil, err
	}
	s := &DB{db: db, what: what}
	if err := s.checkPostgresSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// checkPostgresSchema refuses a database that is not at this vws's schema version.
func (s *DB) checkPostgresSchema(ctx context.Context) error {
	var exists bool
	if err := s.db.QueryRowContext(ctx, `SELECT to_regclass('vws_schema') IS NOT NULL`).Scan(&exists); err != nil {
		return fmt.Errorf("read the schema version of %s: %w", s.what, err)
	}
	var version int
	err := sql.ErrNoRows
	if exists {
		err = s.db.QueryRowContext(ctx, `SELECT version FROM vws_schema`).Scan(&version)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s is not a vws database (it has no vws schema): check the URL; a server started with --database on it sets it up", s.what)
	case err != nil:
		return fmt.Errorf("read the schema version of %s: %w", s.what, err)
	case version < len(postgresMigrations):
		return fmt.Errorf("%s has schema version %d, older than this vws's (%d): start this vws's serve on it once to migrate it, then run this again", s.what, version, len(postgresMigrations))
	case version > len(postgresMigrations):
		return fmt.Errorf("%s has schema version %d, newer than this vws's (%d): use a newer vws", s.what, version, len(postgresMigrations))
	}
	return nil
}

// serverLock holds the server's advisory lock on one dedicated connection: the lock
// lives as long as that session does.
type serverLock struct {
	db   *sql.DB
	what string
	mu   sync.Mutex // held for a whole check or take: one at a time
	conn *sql.Conn
	// session is the backend pid of the session that took the lock last, and app its
	// application_name: one a check gave up on may live on at the server, holding the
	// lock (retake). Both must match: after a database restart the pid may be another
	// server's.
	session  int32
	app      string
	released bool

	lost chan error // the lock went to another server (once)
	stop chan struct{}
	wg   sync.WaitGroup
}

// watch checks the lock every lockCheckEvery. A session cut by a database restart is
// locked again once the database answers; a lock another server took meanwhile is
// lost for good: that server holds the records now, and this one's view of them is
// stale, so it is told to stop (DB.Lost).
func (l *serverLock) watch() {
	defer l.wg.Done()
	t := time.NewTicker(lockCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), lockCheckEvery)
		err := l.check(ctx)
		cancel()
		if errors.Is(err, ErrInUse) {
			l.lost <- err
			return
		}
	}
}

func (l *serverLock) take(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.takeLocked(ctx)
}

func (l *serverLock) takeLocked(ctx context.Context) error {
	if l.released {
		return fmt.Errorf("lock %s: this server has released it", l.what)
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", l.what, err)
	}
	var got bool
	var session int32
	var self string
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1), pg_backend_pid(), current_setting('application_name')`,
		int64(serverLockKey)).Scan(&got, &session, &self); err != nil {
		conn.Close()
		return fmt.Errorf("lock %s for this server: %w", l.what, err)
	}
	if !got {
		app, addr, holder, err := l.holder(ctx, conn)
		if err == nil && l.session != 0 && holder == l.session && app == l.app {
			// This server's own earlier session, which a check gave up on (the network
			// stalled, and PostgreSQL never saw the connection end): nobody uses it.
			if err := l.retake(ctx, conn, holder, app); err != nil {
				conn.Close()
				return err // not ErrInUse: no other server holds the database
			}
		} else {
			conn.Close()
			return &heldError{what: l.what, app: app, addr: addr, pid: holder, unknown: err != nil}
		}
	}
	l.conn, l.session, l.app = conn, session, self
	return nil
}

// retake ends the session stale (this server's own, or a dead server's of this
// host), which holds the lock, and takes the lock on conn once PostgreSQL has let it
// go (ending a backend is asynchronous).
//
// Only a session idle for longer than a live server leaves its lock's session (it
// pings it every lockCheckEvery), and still named app, is ended: a live server of
// another PID namespace under the same host name is not "dead", and a backend pid
// may have gone to another session meanwhile.
func (l *serverLock) retake(ctx context.Context, conn *sql.Conn, stale int32, app string) error {
	var ended bool
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
		WHERE pid = $1 AND application_name = $2 AND state = 'idle' AND state_change < now() - make_interval(secs => $3)`,
		stale, app, (3 * lockCheckEvery).Seconds()).Scan(&ended); err != nil || !ended {
		why := "it was in use within the last " + (3 * lockCheckEvery).String() + ", or this role may not end it"
		if err != nil {
			why = err.Error()
		}
		return fmt.Errorf("lock %s: the session %d of a vws server that no longer uses it holds the lock, and it was not ended (%s); "+
			"PostgreSQL ends it once it notices its connection is gone, or a superuser can: SELECT pg_terminate_backend(%d)", l.what, stale, why, stale)
	}
	for {
		var got bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, int64(serverLockKey)).Scan(&got); err != nil {
			return fmt.Errorf("lock %s for this server: %w", l.what, err)
		}
		if got {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock %s: the stale session %d was ended, but still held the lock: %w", l.what, stale, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// deadHolderPatience is how long a starting server waits for the session of a vws
// process of this host that no longer runs, where it may not end that session itself:
// killed a moment before (a crash, then a restart by hand or by systemd), its session
// keeps the lock until PostgreSQL notices the connection is gone.
const deadHolderPatience = 15 * time.Second

// takeAtStart takes the lock, ending the session of a dead server of this host: over
// TCP, PostgreSQL may not notice for hours that its connection is gone (TCP
// keepalive), and no server could start on the database meanwhile. Where ending it
// is not allowed, it waits for PostgreSQL to notice, up to deadHolderPatience.
func (l *serverLock) takeAtStart(ctx context.Context) error {
	deadline := time.Now().Add(deadHolderPatience)
	var endErr error
	for {
		err := l.take(ctx)
		var held *heldError
		if err == nil || !errors.As(err, &held) || !held.deadLocal() {
			return err
		}
		if time.Now().After(deadline) {
			if endErr != nil { // say how to end it
				return fmt.Errorf("%w; that server no longer runs, but %w", err, endErr)
			}
			return err
		}
		if held.pid != 0 {
			if endErr = l.takeFromDead(ctx, held.pid, held.app); endErr == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// takeFromDead takes the lock from the session pid of a dead server (retake).
func (l *serverLock) takeFromDead(ctx context.Context, pid int32, app string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, lockCheckEvery)
	defer cancel()
	var session int32
	var self string
	if err := conn.QueryRowContext(rctx, `SELECT pg_backend_pid(), current_setting('application_name')`).Scan(&session, &self); err != nil {
		conn.Close()
		return err
	}
	if err := l.retake(rctx, conn, pid, app); err != nil {
		conn.Close()
		return err
	}
	l.conn, l.session, l.app = conn, session, self
	return nil
}

// heldError is the refusal of a database another server's session holds.
type heldError struct {
	what, app, addr string
	pid             int32 // the holder's backend
	unknown         bool  // PostgreSQL did not show this user the holder's session
}

func (e *heldError) Error() string {
	holder := fmt.Sprintf("%q, connected from %s", e.app, e.addr)
	if e.unknown {
		holder = "whose session PostgreSQL does not show this user"
	}
	return fmt.Sprintf("%s is %s (%s): one server with the repository role per database. Stop that one, or give this one a database of its own", e.what, ErrInUse, holder)
}

func (e *heldError) Unwrap() error { return ErrInUse }

// appName is the application_name of process pid's sessions: "APP on HOST (pid N)",
// HOST shortened so that the whole fits the 63 bytes PostgreSQL keeps (NAMEDATALEN).
func appName(app string, pid int) string {
	host, _ := os.Hostname()
	tail := fmt.Sprintf(" (pid %d)", pid)
	if max := 63 - len(app) - len(" on ") - len(tail); len(host) > max && max > 0 {
		host = host[:max]
	}
	return app + " on " + host + tail
}

var vwsAppRE = regexp.MustCompile(`^vws on (.+) \(pid (\d+)\)$`)

// deadLocal says the holder is a vws server of this host whose process is gone.
func (e *heldError) deadLocal() bool {
	m := vwsAppRE.FindStringSubmatch(e.app)
	if m == nil || !fromThisHost(e.addr) {
		return false
	}
	pid, err := strconv.Atoi(m[2])
	if err != nil || e.app != appName("vws", pid) || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// fromThisHost says PostgreSQL saw a session come from this host: by its Unix socket,
// over loopback, or from one of this host's own addresses (a database on another
// machine). Behind NAT the address is the router's, and nothing is concluded.
func fromThisHost(addr string) bool {
	if addr == "local socket" {
		return true
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// holder says who holds the lock, from PostgreSQL's own view of the sessions. Advisory
// locks are per database: the servers of other databases on the same PostgreSQL
// server hold the same key, and are not the holder.
func (l *serverLock) holder(ctx context.Context, conn *sql.Conn) (app, addr string, pid int32, err error) {
	err = conn.QueryRowContext(ctx, `SELECT COALESCE(a.application_name, ''), CASE WHEN a.client_port = -1 THEN 'local socket' ELSE COALESCE(host(a.client_addr), 'not shown') END, a.pid
		FROM pg_locks k JOIN pg_stat_activity a ON a.pid = k.pid
		WHERE k.locktype = 'advisory' AND k.objid = $1 AND k.granted
			AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1`, int64(serverLockKey)).Scan(&app, &addr, &pid)
	return app, addr, pid, err
}

// check is the server's health check: the database answers and the lock is still
// this server's. A session lost with its connection (a database restart) lost the
// lock too; it is taken again if no other server took it meanwhile.
//
// Checks run one at a time: two that both found the session cut would each take the
// lock, the second on a session of its own, dropping the first's from sight while it
// still holds the lock — and every later check would find the lock held by "another
// server". And never on the caller's context: a ping cancelled midway (a /healthz
// whose client hung up) closes the session, and with it the lock.
func (l *serverLock) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockCheckEvery)
	defer cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		if err := l.conn.PingContext(ctx); err == nil {
			return nil
		}
		l.conn.Close()
		l.conn = nil
	}
	return l.takeLocked(ctx)
}

func (l *serverLock) release() error {
	close(l.stop)
	l.wg.Wait() // no check re-takes the lock after this
	l.mu.Lock()
	defer l.mu.Unlock()
	l.released = true // and no /healthz either
	if l.conn == nil {
		return nil
	}
	// Unlocked here, not left to the session's end: sql.Conn.Close hands the session
	// back to the pool, and PostgreSQL ends a closed session's backend (and its locks)
	// only some moments later — a server started right after this one stops must not
	// find the database still held by it.
	ctx, cancel := context.WithTimeout(context.Background(), lockCheckEvery)
	defer cancel()
	_, uerr := l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, int64(serverLockKey))
	err := l.conn.Close()
	l.conn = nil
	if err == nil && uerr != nil {
		err = fmt.Errorf("unlock %s: %w", l.what, uerr)
	}
	return err
}

// migratePostgres applies PostgreSQL's migrations up to the first upTo, each in one
// transaction with the version it reaches.
func (s *DB) migratePostgres(ctx context.Context, upTo int) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS vws_schema (version INTEGER NOT NULL)`); err != nil {
		return err
	}
	var version int
	err := s.db.QueryRowContext(ctx, `SELECT version FROM vws_schema`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := s.db.ExecContext(ctx, `INSERT INTO vws_schema (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return err
	}
	if version > len(postgresMigrations) {
		return fmt.Errorf("database schema version %d is newer than this vws (%d); use a newer vws", version, len(postgresMigrations))
	}
	return s.apply(ctx, postgresMigrations, version, upTo, func(tx *sql.Tx, v int) error {
		_, err := tx.ExecContext(ctx, `UPDATE vws_schema SET version = $1`, v)
		return err
	})
}
