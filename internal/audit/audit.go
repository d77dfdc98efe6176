// Package audit appends what happened — creations, clones, destructions, check-outs,
// check-ins and policy decisions — with the caller's identity to the audit table.
//
// The table is a hash chain: each record stores the hash of the one before it (prev)
// and its own hash, SHA-256 over a length-prefixed encoding of (id, time, caller,
// operation, resource, decision, rule, detail, prev); the first record's prev is 64
// zeros. Altering or removing a record breaks the chain at that point, which Verify
// (and `vws audit --verify`) reports. Someone able to rewrite the database can
// recompute every later hash, so the head (id and hash) is also logged every
// anchorEvery records and when the server starts and stops (Start, Stop): a log
// shipped off the host pins the chain.
//
// Records written before the chain existed (hash ”) are chained by the first record
// appended after the upgrade; from then on an unhashed record is a break.
package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vws-grid/vws/internal/errdefs"
	"github.com/vws-grid/vws/internal/identity"
	"github.com/vws-grid/vws/internal/store"
)

// Genesis is the prev hash of the first record.
var Genesis = strings.Repeat("0", 64)

// anchorEvery is how often (in record ids) the chain head is logged.
const anchorEvery = 1000

// ErrChainBroken is wrapped by Verify's error when a record was altered or removed.
var ErrChainBroken = errors.New("audit chain broken")

// ChainError names the first record at which the chain does not hold.
type ChainError struct {
	ID     int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("record %d was altered or removed: %s", e.ID, e.Reason)
}
func (e *ChainError) Unwrap() error { return ErrChainBroken }

// Log is the append-only audit trail.
type Log struct {
	db    *sql.DB
	log   *slog.Logger
	now   func() time.Time
	chain *chain
}

// chain is the cached head of one database's chain. Records are appended under its
// mutex so that reading the head and inserting after it are one step; it is shared by
// every Log on the same *sql.DB. Records queue while a batch is being written, and go
// together in the next one.
type chain struct {
	mu       sync.Mutex // held by the appender writing a batch; guards the head
	loaded   bool
	lastID   int64
	lastHash string
	// insert is the prepared INSERT: every request appends, and parsing the
	// statement each time was a third of an append's cost.
	insert *sql.Stmt

	queueMu sync.Mutex
	queue   []*pending // records waiting for the next batch
}

var chains sync.Map // *sql.DB -> *chain

// New writes to db's audit table. A nil logger logs to slog's default.
func New(db *sql.DB, log *slog.Logger) *Log {
	if log == nil {
		log = slog.Default()
	}
	c, _ := chains.LoadOrStore(db, &chain{})
	return &Log{db: db, log: log, now: time.Now, chain: c.(*chain)}
}

// Record appends one entry. An audit write that fails is logged loudly; it does not
// undo the operation it describes, which has already happened.
func (l *Log) Record(ctx context.Context, operation, resource, decision, detail string) {
	_ = l.append(ctx, operation, resource, decision, "", detail) // logged when lost
}

// RecordDecision appends a policy decision ("allowed" or "denied") with the rule that
// made it (policy.Decision.Rule). Its error is a record that could not be written
// (logged too): an allowed operation must then not go ahead unaudited.
func (l *Log) RecordDecision(ctx context.Context, operation, resource string, allowed bool, rule, detail string) error {
	decision := "denied"
	if allowed {
		decision = "allowed"
	}
	return l.append(ctx, operation, resource, decision, rule, detail)
}

func (l *Log) append(ctx context.Context, operation, resource, decision, rule, detail string) error {
	ctx = context.WithoutCancel(ctx)
	id := identity.From(ctx)
	if id.DeliveredBy != "" {
		// A signed message passed on by another: who carried it counts too.
		if detail == "" {
			detail = "delivered by " + id.DeliveredBy
		} else {
			detail += "; delivered by " + id.DeliveredBy
		}
	}
	e := Entry{Caller: text(id.String()), Operation: text(operation), Resource: text(resource),
		Decision: text(decision), Rule: text(rule), Detail: text(detail)}
	p := &pending{entry: e, done: make(chan error, 1)}
	c := l.chain
	c.queueMu.Lock()
	c.queue = append(c.queue, p)
	c.queueMu.Unlock()

	// Group commit: whoever holds the head writes every record queued by then, in
	// one transaction, so that concurrent requests share a commit (PostgreSQL flushes
	// each one to disk) instead of queueing for one each. A writer signals its
	// records before letting go, so ours is either written or still queued.
	c.mu.Lock()
	select {
	case err := <-p.done:
		c.mu.Unlock()
		return err
	default:
	}
	// Ours is queued, behind at most what came first: write batches until it went.
	for done := false; !done; {
		c.queueMu.Lock()
		n := min(len(c.queue), maxBatch)
		batch := c.queue[:n:n]
		c.queue = c.queue[n:]
		c.queueMu.Unlock()
		done = slices.Contains(batch, p)
		l.writeBatch(ctx, batch)
	}
	c.mu.Unlock()
	return <-p.done
}

// writeTimeout bounds the write of one batch of records (as internal/store bounds a
// record write): a database that stops answering fails the requests waiting for their
// audit record, rather than holding them until TCP gives up.
var writeTimeout = 30 * time.Second

// maxBatch bounds the records one INSERT carries (10 parameters each; SQLite takes
// 32766 parameters in a statement).
const maxBatch = 256

// pending is a record waiting to be written, and where its writer says how that went.
type pending struct {
	entry Entry
	done  chan error
	// sent: an insert of entry (as it is now, id and hash) failed, which does not
	// say it was not written: the connection can drop after PostgreSQL committed.
	sent bool
}

// writeBatch writes batch after the head (with c.mu held) and tells each record's
// appender. A batch that fails is written again one record at a time, so that a
// record the database refuses fails alone, not the requests that shared its commit.
// All of it within writeTimeout: the appenders queued behind a stalled batch wait
// for c.mu, and each batch then fails in its turn instead of holding them all.
func (l *Log) writeBatch(ctx context.Context, batch []*pending) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	write := func(records []*pending) error {
		err := l.writeRecords(ctx, records)
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("the database did not answer within %v: %w", writeTimeout, err)
		}
		return err
	}
	err := write(batch)
	if err != nil && len(batch) > 1 {
		for _, p := range batch {
			l.finish(p, write([]*pending{p}))
		}
		return
	}
	for _, p := range batch {
		l.finish(p, err)
	}
}

func (l *Log) finish(p *pending, err error) {
	if err != nil {
		e := p.entry
		l.log.Error("audit record lost", "operation", e.Operation, "resource", e.Resource, "caller", e.Caller, "err", err)
		err = fmt.Errorf("write the audit record: %w", err)
	}
	p.done <- err
}

// writeRecords chains records after the head and inserts them in one transaction
// (one statement without), moving the head only once they are committed.
func (l *Log) writeRecords(ctx context.Context, records []*pending) error {
	c := l.chain
	var err error
	// Two tries: the cached head can be stale if another handle on the same file
	// wrote in between; the insert then collides on the id and the head is re-read.
	for try := 0; try < 2; try++ {
		if !c.loaded {
			if err = l.loadHead(ctx); err != nil {
				continue
			}
		}
		if c.insert == nil {
			if c.insert, err = l.db.PrepareContext(ctx, `INSERT INTO audit (id, time, caller, operation, resource, decision, detail, rule, prev, hash)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`); err != nil {
				continue
			}
		}
		if records, err = l.unwritten(ctx, records); err != nil {
			continue
		}
		if len(records) == 0 {
			return nil // the failed insert had committed; the head was read after it
		}
		id, prev := c.lastID, c.lastHash
		now := time.UnixMilli(l.now().UnixMilli()).UTC()
		for _, p := range records {
			e := &p.entry
			id++
			e.ID, e.Time, e.Prev = id, now, prev
			e.Hash = e.ComputeHash()
			prev = e.Hash
		}
		if err = l.insert(ctx, records); err == nil {
			for _, p := range records {
				if p.entry.ID%anchorEvery == 0 {
					l.anchor(p.entry.ID, p.entry.Hash)
				}
			}
			c.lastID, c.lastHash = id, prev
			return nil
		}
		for _, p := range records {
			p.sent = true
		}
		c.loaded = false
	}
	return err
}

// unwritten is records less those a failed insert wrote after all (found at the id
// with the hash it sent): appended again, they would be in the trail twice.
func (l *Log) unwritten(ctx context.Context, records []*pending) ([]*pending, error) {
	out := records[:0:0]
	for _, p := range records {
		if p.sent {
			var hash string
			err := l.db.QueryRowContext(ctx, `SELECT hash FROM audit WHERE id = $1`, p.entry.ID).Scan(&hash)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return records, fmt.Errorf("read audit record %d: %w", p.entry.ID, err)
			}
			if err == nil && hash == p.entry.Hash {
				continue
			}
			p.sent = false
		}
		out = append(out, p)
	}
	return out, nil
}

func (l *Log) insert(ctx context.Context, records []*pending) error {
	if len(records) == 1 {
		e := &records[0].entry
		_, err := l.chain.insert.ExecContext(ctx,
			e.ID, e.Time.UnixMilli(), e.Caller, e.Operation, e.Resource, e.Decision, e.Detail, e.Rule, e.Prev, e.Hash)
		return err
	}
	// One statement for the batch: one round trip and one commit (a transaction of
	// single INSERTs took one round trip each, which on PostgreSQL cost more than the
	// flush the batch shares).
	var q strings.Builder
	q.WriteString(`INSERT INTO audit (id, time, caller, operation, resource, decision, detail, rule, prev, hash) VALUES `)
	args := make([]any, 0, 10*len(records))
	for i, p := range records {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(")
		for j := range 10 {
			if j > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "$%d", 10*i+j+1)
		}
		q.WriteString(")")
		e := &p.entry
		args = append(args, e.ID, e.Time.UnixMilli(), e.Caller, e.Operation, e.Resource, e.Decision, e.Detail, e.Rule, e.Prev, e.Hash)
	}
	if store.IsPostgres(l.db) {
		_, err := l.db.ExecContext(ctx, q.String(), args...) // a statement is all or nothing
		return err
	}
	// SQLite keeps what a statement did before an error raised with FAIL; a
	// transaction keeps nothing, and costs no round trip there.
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return err
	}
	return tx.Commit()
}

// text is s as a database's text column takes it: PostgreSQL refuses NUL and bytes
// that are not UTF-8, which a caller can put in a URL path or a certificate. They
// become U+FFFD, before the hash, so the record says what was stored.
func text(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

// anchor logs the chain head so it exists outside the database, which an intruder
// with write access could otherwise rewrite consistently from the first change on.
func (l *Log) anchor(id int64, hash string) {
	l.log.Info("audit chain head", "id", id, "hash", hash)
}

// Start reads the chain head and logs it, for a server that starts: the records
// written since the last anchor of the previous run are then anchored before this
// run's first append, which could otherwise be hours (or never) away.
func (l *Log) Start(ctx context.Context) error {
	c := l.chain
	c.mu.Lock()
	defer c.mu.Unlock()
	return l.loadHead(ctx)
}

// Stop logs the chain head, for a server that stops (once nothing appends any
// more): the newest records, fewer than anchorEvery since the last anchor, are then
// anchored outside the database too, and removing them while the server is down
// fails `vws audit --verify --anchor`.
func (l *Log) Stop() {
	c := l.chain
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.loaded {
		l.anchor(c.lastID, c.lastHash)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.loadHead(ctx); err != nil { // logs the head when read
		l.log.Warn("the audit chain head was not logged at stop", "err", err)
	}
}

// loadHead reads the last record (with c.mu held), chaining pre-chain records first.
func (l *Log) loadHead(ctx context.Context) error {
	c := l.chain
	var id int64
	var hash string
	err := l.db.QueryRowContext(ctx, `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&id, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			return err
		}
		id, hash = cp.LastID, cp.LastHash
	case err != nil:
		return fmt.Errorf("read audit chain head: %w", err)
	case hash == "":
		var chained int
		if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM audit WHERE hash != ''`).Scan(&chained); err != nil {
			return fmt.Errorf("read audit chain: %w", err)
		}
		if chained == 0 {
			if hash, err = l.chainLegacy(ctx); err != nil {
				return err
			}
		} else {
			// Unhashed after hashed ones: not written by vws. Keep appending after it;
			// Verify reports it as the break.
			l.log.Error("the last audit record is not chained: it was not written by vws; vws audit --verify reports it", "id", id)
		}
	}
	c.lastID, c.lastHash, c.loaded = id, hash, true
	l.anchor(id, hash)
	return nil
}

// chainLegacy hashes the records written before the audit table was a chain, once.
// The chain vouches for them only from this moment on.
func (l *Log) chainLegacy(ctx context.Context) (string, error) {
	all, err := l.query(ctx, `SELECT id, time, caller, operation, resource, decision, detail, rule, prev, hash FROM audit ORDER BY id`)
	if err != nil {
		return "", err
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("chain old audit records: %w", err)
	}
	defer tx.Rollback()
	prev := Genesis
	for _, e := range all {
		e.Prev = prev
		e.Hash = e.ComputeHash()
		if _, err := tx.ExecContext(ctx, `UPDATE audit SET prev = $1, hash = $2 WHERE id = $3`, e.Prev, e.Hash, e.ID); err != nil {
			return "", fmt.Errorf("chain old audit record %d: %w", e.ID, err)
		}
		prev = e.Hash
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("chain old audit records: %w", err)
	}
	l.log.Warn("chained audit records written before the audit hash chain existed", "records", len(all))
	return prev, nil
}

// Entry is one audit record.
type Entry struct {
	ID                                            int64
	Time                                          time.Time
	Caller, Operation, Resource, Decision, Detail string
	Rule                                          string // the policy rule behind a decision, if any
	Prev, Hash                                    string
}

// ComputeHash is the hash e should carry: SHA-256, hex, over each field as an 8-byte
// big-endian length and its bytes, so no two different records encode alike.
func (e *Entry) ComputeHash() string {
	h := sha256.New()
	var n [8]byte
	for _, f := range []string{strconv.FormatInt(e.ID, 10), strconv.FormatInt(e.Time.UnixMilli(), 10),
		e.Caller, e.Operation, e.Resource, e.Decision, e.Rule, e.Detail, e.Prev} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

const columns = `id, time, caller, operation, resource, decision, detail, rule, prev, hash`

func scanEntry(rows *sql.Rows) (Entry, error) {
	var e Entry
	var ms int64
	if err := rows.Scan(&e.ID, &ms, &e.Caller, &e.Operation, &e.Resource, &e.Decision, &e.Detail, &e.Rule, &e.Prev, &e.Hash); err != nil {
		return e, fmt.Errorf("read audit record: %w", err)
	}
	e.Time = time.UnixMilli(ms).UTC()
	return e, nil
}

func (l *Log) query(ctx context.Context, q string, args ...any) ([]Entry, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// List returns the entries oldest first, at most limit.
func (l *Log) List(ctx context.Context, limit int) ([]Entry, error) {
	return l.query(ctx, `SELECT `+columns+` FROM audit ORDER BY id LIMIT $1`, limit)
}

// Filter selects audit entries; zero fields select everything.
type Filter struct {
	Caller              string // glob: * matches any run of characters
	Operation, Resource string
	Decision            string // allowed | denied | done | failed | ...
	Since, Until        time.Time
	Limit               int // the most recent Limit matches; 0 = all
}

// Query returns the entries matching f, oldest first.
func (l *Log) Query(ctx context.Context, f Filter) ([]Entry, error) {
	var where []string
	var args []any
	// arg adds a parameter and returns its placeholder ($n: both SQLite and PostgreSQL
	// take it).
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Caller != "" {
		if store.IsPostgres(l.db) {
			where = append(where, "caller LIKE "+arg(likePattern(f.Caller))+` ESCAPE '\'`)
		} else {
			where = append(where, "caller GLOB "+arg(sqliteGlob(f.Caller)))
		}
	}
	for _, c := range []struct{ col, v string }{{"operation", f.Operation}, {"resource", f.Resource}, {"decision", f.Decision}} {
		if c.v != "" {
			where = append(where, c.col+" = "+arg(c.v))
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+arg(f.Since.UnixMilli()))
	}
	if !f.Until.IsZero() {
		where = append(where, "time <= "+arg(f.Until.UnixMilli()))
	}
	q := `SELECT ` + columns + ` FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	out, err := l.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	// Newest first picks the most recent Limit; a trail reads oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// sqliteGlob turns a glob where only * is special into SQLite GLOB syntax (which also
// treats ? and [ specially, and is case-sensitive as DNs are).
func sqliteGlob(s string) string {
	r := strings.NewReplacer("?", "[?]", "[", "[[]")
	return r.Replace(s)
}

// likePattern turns the same glob into a PostgreSQL LIKE pattern with \ as its escape
// (LIKE is case-sensitive there).
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`, "*", "%")
	return r.Replace(s)
}

// Verify walks the whole chain and returns how many records hold; the error
// (a *ChainError wrapping ErrChainBroken) names the first one that does not.
func (l *Log) Verify(ctx context.Context) (int, error) {
	// One snapshot for the checkpoint and the records: a Prune committing between the
	// two reads (vws audit --prune-before beside the server) would otherwise look
	// like a break.
	opts := &sql.TxOptions{ReadOnly: true}
	if store.IsPostgres(l.db) {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := l.db.BeginTx(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("read audit log: %w", err)
	}
	defer tx.Rollback()
	// The checkpoint first: the database may have one connection, which the rows hold.
	cp, err := checkpoint(ctx, tx)
	if err != nil {
		return 0, err
	}
	verifyRead()
	rows, err := tx.QueryContext(ctx, `SELECT `+columns+` FROM audit ORDER BY id`)
	if err != nil {
		return 0, fmt.Errorf("read audit log: %w", err)
	}
	defer rows.Close()
	n := 0
	prevID, prevHash := cp.LastID, cp.LastHash
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return n, err
		}
		switch {
		case e.Hash == "":
			return n, &ChainError{ID: e.ID, Reason: "it carries no hash (not written by vws, or written before the chain and never chained)"}
		case e.Prev != prevHash:
			what := "the start of the chain"
			if prevID > 0 && prevID == cp.LastID {
				what = fmt.Sprintf("the checkpoint of pruned record %d", prevID)
			} else if prevID > 0 {
				what = fmt.Sprintf("record %d", prevID)
			}
			return n, &ChainError{ID: e.ID, Reason: fmt.Sprintf("its prev hash %.12s… does not match %s (%.12s…): a record before it was removed, or the one before it altered", e.Prev, what, prevHash)}
		case e.ComputeHash() != e.Hash:
			return n, &ChainError{ID: e.ID, Reason: "its contents do not match its hash"}
		}
		n++
		prevID, prevHash = e.ID, e.Hash
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("read audit log: %w", err)
	}
	return n, nil
}

// Head returns the last record's id and hash (0 and Genesis for an empty log), to
// compare with the heads the server logged.
func (l *Log) Head(ctx context.Context) (int64, string, error) {
	var id int64
	var hash string
	err := l.db.QueryRowContext(ctx, `SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1`).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) { // empty, or pruned to nothing: the checkpoint
		cp, err := l.Checkpoint(ctx)
		return cp.LastID, cp.LastHash, err
	}
	if err != nil {
		return 0, "", fmt.Errorf("read audit chain head: %w", err)
	}
	return id, hash, nil
}

// Checkpoint is where the kept chain starts: after pruning, the last removed record's
// id and hash; before any, record 0 and Genesis.
type Checkpoint struct {
	LastID   int64
	LastHash string
	Pruned   int64
	At       time.Time
}

// Checkpoint reads the chain's starting point.
func (l *Log) Checkpoint(ctx context.Context) (Checkpoint, error) {
	return checkpoint(ctx, l.db)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// verifyRead runs between Verify's two reads (tests put a Prune there).
var verifyRead = func() {}

func checkpoint(ctx context.Context, q querier) (Checkpoint, error) {
	cp := Checkpoint{LastHash: Genesis}
	var at int64
	err := q.QueryRowContext(ctx, `SELECT last_id, last_hash, pruned, at FROM audit_checkpoint WHERE id = 1`).Scan(&cp.LastID, &cp.LastHash, &cp.Pruned, &at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return cp, nil
	case err != nil:
		return cp, fmt.Errorf("read audit checkpoint: %w", err)
	}
	cp.At = time.UnixMilli(at).UTC()
	return cp, nil
}

// Prune removes the records older than before — an audit table that records every
// decision grows without end — once they verify, and keeps the last one's id and hash
// as the checkpoint the rest of the chain continues from. A broken stretch is kept as
// evidence: pruning refuses. It returns how many records went, also when it stops
// with an error after some batches did.
//
// It removes them pruneBatch at a time, each batch with the checkpoint in one short
// transaction: on SQLite a transaction holds the write lock the server's every append
// (every request's audit record) waits for, and one over a large trail outlasted
// busy_timeout, failing the server's requests. Stopped between batches (an error, an
// interrupt, a crash), the trail verifies from the checkpoint of the last one.
func (l *Log) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	var lastID int64
	var lastHash string
	for {
		start := time.Now()
		n, id, hash, err := l.pruneOnce(ctx, before, pruneBatch)
		if n > 0 {
			total, lastID, lastHash = total+n, id, hash
		}
		if err != nil {
			if total > 0 {
				l.log.Info("audit log pruned in part", "removed", total, "checkpoint id", lastID, "checkpoint hash", lastHash, "err", err)
			}
			return total, err
		}
		if n < pruneBatch {
			break
		}
		// As long again without the lock: a waiting writer's busy handler retries
		// every few ms (at most every 100), and would otherwise rarely find it free.
		select {
		case <-ctx.Done():
			l.log.Info("audit log pruned in part", "removed", total, "checkpoint id", lastID, "checkpoint hash", lastHash, "err", ctx.Err())
			return total, fmt.Errorf("prune audit log: %w", ctx.Err())
		case <-time.After(time.Since(start)):
		}
	}
	if total > 0 {
		l.log.Info("audit log pruned", "removed", total, "checkpoint id", lastID, "checkpoint hash", lastHash)
	}
	return total, nil
}

// FutureStop is the record at which Prune(before) stops when it is dated in the
// future — written while the clock was ahead — and held is how many records after it
// are older than before, which Prune keeps because it removes the chain in order:
// until that date is older than before too, every Prune stops there. ok is false
// when Prune does not stop at such a record, or none are held.
func (l *Log) FutureStop(ctx context.Context, before time.Time) (e Entry, held int64, ok bool, err error) {
	all, err := l.query(ctx, `SELECT `+columns+` FROM audit WHERE time >= $1 ORDER BY id LIMIT 1`, before.UnixMilli())
	if err != nil || len(all) == 0 || !all[0].Time.After(l.now()) {
		return Entry{}, 0, false, err
	}
	e = all[0]
	if err := l.db.QueryRowContext(ctx, `SELECT count(*) FROM audit WHERE id > $1 AND time < $2`, e.ID, before.UnixMilli()).Scan(&held); err != nil {
		return Entry{}, 0, false, fmt.Errorf("read audit log: %w", err)
	}
	return e, held, held > 0, nil
}

// pruneBatch is the most records one of Prune's transactions removes: a few
// milliseconds of holding the write lock.
var pruneBatch int64 = 1000

// pruneOnce removes up to limit of the oldest records older than before, with the
// checkpoint, in one transaction, and returns how many went and the new checkpoint.
func (l *Log) pruneOnce(ctx context.Context, before time.Time, limit int64) (int64, int64, string, error) {
	tx, commit, rollback, err := l.beginPrune(ctx)
	if err != nil {
		return 0, 0, "", err
	}
	defer rollback()
	cp := Checkpoint{LastHash: Genesis}
	var pruned, at int64
	err = tx.QueryRowContext(ctx, `SELECT last_id, last_hash, pruned, at FROM audit_checkpoint WHERE id = 1`).Scan(&cp.LastID, &cp.LastHash, &pruned, &at)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, 0, "", fmt.Errorf("read audit checkpoint: %w", err)
	}
	// In chain order up to the first record at or after before, not every record
	// older than before: after the clock stepped back, one written before the step
	// has a later time than those after it, and skipping it would break the chain.
	rows, err := tx.QueryContext(ctx, `SELECT `+columns+` FROM audit ORDER BY id LIMIT $1`, limit)
	if err != nil {
		return 0, 0, "", fmt.Errorf("prune audit log: %w", err)
	}
	lastID, lastHash, n := cp.LastID, cp.LastHash, int64(0)
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			rows.Close()
			return 0, 0, "", err
		}
		if !e.Time.Before(before) {
			break
		}
		if e.Prev != lastHash || e.ComputeHash() != e.Hash {
			rows.Close()
			return 0, 0, "", &ChainError{ID: e.ID, Reason: "it does not verify; records up to it are kept as evidence (vws audit --verify)"}
		}
		lastID, lastHash, n = e.ID, e.Hash, n+1
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, "", fmt.Errorf("prune audit log: %w", err)
	}
	if n == 0 {
		return 0, 0, "", nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE id <= $1`, lastID); err != nil {
		return 0, 0, "", fmt.Errorf("prune audit log: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_checkpoint (id, last_id, last_hash, pruned, at) VALUES (1, $1, $2, $3, $4)
		ON CONFLICT (id) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash, pruned = excluded.pruned, at = excluded.at`,
		lastID, lastHash, pruned+n, l.now().UnixMilli()); err != nil {
		return 0, 0, "", fmt.Errorf("prune audit log: %w", err)
	}
	if err := commit(); err != nil {
		return 0, 0, "", fmt.Errorf("prune audit log: %w", err)
	}
	return n, lastID, lastHash, nil
}

type pruneTx interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// beginPrune begins Prune's transaction. On SQLite it is BEGIN IMMEDIATE: a deferred
// one reads the chain in a snapshot and its DELETE must then upgrade to the write
// lock, which SQLite refuses at once (SQLITE_BUSY, without waiting) once the server
// beside it has appended since the snapshot — on a busy server, nearly always. Taken
// first, the write lock waits (busy_timeout) for the server's append in progress.
func (l *Log) beginPrune(ctx context.Context) (tx pruneTx, commit func() error, rollback func(), err error) {
	if store.IsPostgres(l.db) {
		t, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("prune audit log: %w", err)
		}
		return t, t.Commit, func() { _ = t.Rollback() }, nil
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("prune audit log: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		conn.Close()
		return nil, nil, nil, errdefs.WithAdvice(fmt.Errorf("prune audit log: lock the database for writing (the server beside it holds the lock): %w", err),
			"the records not yet removed are intact; retry")
	}
	commit = func() error { _, err := conn.ExecContext(ctx, `COMMIT`); return err }
	rollback = func() {
		// After a COMMIT there is nothing to roll back, and SQLite says so: ignored.
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		conn.Close()
	}
	return conn, commit, rollback, nil
}

// HasAnchor reports whether the chain still holds record id with hash — a head the
// server logged ("audit chain head") — as a record or as the pruning checkpoint. A
// database rewritten consistently from some record on passes Verify but fails this
// for any head logged after that record.
func (l *Log) HasAnchor(ctx context.Context, id int64, hash string) error {
	var got string
	err := l.db.QueryRowContext(ctx, `SELECT hash FROM audit WHERE id = $1`, id).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		cp, cerr := l.Checkpoint(ctx)
		if cerr != nil {
			return cerr
		}
		switch {
		case cp.LastID == id:
			got = cp.LastHash
		case id <= cp.LastID:
			return fmt.Errorf("record %d was pruned (the chain starts after record %d): check a later logged head", id, cp.LastID)
		default:
			return &ChainError{ID: id, Reason: "the logged head is not in the database: records were removed"}
		}
	} else if err != nil {
		return fmt.Errorf("read audit record %d: %w", id, err)
	}
	if got != hash {
		return &ChainError{ID: id, Reason: fmt.Sprintf("its hash %.16s… is not the logged %.16s…: the log was rewritten from this record or before", got, hash)}
	}
	return nil
}

// Unrecorded is the refusal of an allowed operation whose decision the trail could
// not record (err, from RecordDecision): every decision is in the trail, or the
// operation does not happen. dir is where the trail is kept, named when the cause is
// a full disk, so that the administrator knows where to make room.
func Unrecorded(err error, dir string) error {
	if store.IsFull(err) {
		return errdefs.WithAdvice(errdefs.OfKind(fmt.Errorf("the server's storage is full (%s): the audit trail cannot record this decision, so nothing was done: %w", dir, err), errdefs.ErrStorageFull),
			"the site administrator must free space there, then retry")
	}
	// The cause (the database's words) is the server's own failure, which the caller
	// cannot act on: an incident, told without it. That nothing was done, which makes
	// a retry safe, is the caller's to know: said in the advice, which the incident's
	// fault keeps and ends with whom to tell.
	return errdefs.WithAdvice(fmt.Errorf("the audit trail could not record this decision, so nothing was done: %w", err),
		"nothing was done; retry later")
}
