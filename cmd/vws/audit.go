package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	_ "modernc.org/sqlite" // the database driver, read-only here

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/store"
)

type auditOptions struct {
	dataDir      string
	database     string // PostgreSQL instead of dataDir's SQLite
	filter       audit.Filter
	since, until string
	json, verify bool
	pruneBefore  string
	anchor       string
	yes          bool
}

// auditDecisions are the decisions the services record: a policy's allowed or
// denied, and an operation's outcome.
var auditDecisions = []string{"allowed", "denied", "done", "failed", "withdrawn", "while-deployed"}

// minRetention is the youngest --prune-before takes without --yes: a slip such as
// 1s or 0 would otherwise remove the whole trail, which nothing can bring back.
const minRetention = 24 * time.Hour

// check refuses flags that would be ignored, or would match nothing, before the
// database is opened.
func (o *auditOptions) check(cmd *cobra.Command) error {
	if o.database != "" {
		if cmd.Flags().Changed("data") {
			return errors.New("--data and --database name two stores: the audit trail is in PostgreSQL when the server runs with --database; leave --data out")
		}
		if !store.IsPostgresURL(o.database) {
			return fmt.Errorf("--database %q: want a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE, as the server's --database", store.RedactURL(o.database))
		}
	}
	if o.anchor != "" && !o.verify {
		return errors.New("--anchor is checked by --verify: add --verify")
	}
	if d := o.filter.Decision; d != "" && !slices.Contains(auditDecisions, d) {
		return fmt.Errorf("--decision %q is not a decision: give %s", d, orList(auditDecisions))
	}
	if o.filter.Limit < 0 {
		return fmt.Errorf("--limit %d is negative: give how many records to show, or 0 for all", o.filter.Limit)
	}
	if o.verify {
		for _, name := range []string{"caller", "operation", "resource", "decision", "since", "until", "limit", "json"} {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("--verify checks the whole chain and says so in a line of text, whatever --%s says: leave --%s out", name, name)
			}
		}
	}
	if o.pruneBefore != "" {
		for _, name := range []string{"caller", "operation", "resource", "decision", "since", "until", "limit", "json", "verify", "anchor"} {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("--prune-before removes every record older than it, whatever --%s says: leave --%s out", name, name)
			}
		}
	}
	return nil
}

func newAuditCommand() *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show or verify the audit log (on the service host: reads the database directly, read-only)",
		Long: `Show the audit trail of a vws server — who did what to which workspace, and which
policy rule allowed or denied it — or, with --verify, check its hash chain: the
command fails naming the first record that was altered or removed.

Run it on the service host with read access to the data directory; it never writes,
except with --prune-before, which removes older records once they verify and keeps a
checkpoint (the last removed record's id and hash) the rest of the chain continues from.
For a server whose records are in PostgreSQL (vws serve --database URL), give the same
--database URL instead of --data: it reads in read-only sessions beside the running
server, from any host that reaches the database.
A --prune-before younger than 24h (which would remove recent records, or with 0 all of
them) is refused unless --yes is given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(cmd); err != nil {
				return err
			}
			return runAudit(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", defaultDataDir(), "data directory of the server (holds vws.db)")
	f.StringVar(&o.database, "database", "", "the server's PostgreSQL database (its --database), instead of --data: postgres://USER@HOST:PORT/DB")
	f.StringVar(&o.filter.Caller, "caller", "", "caller DN glob (* matches anything, '/' included), or <anonymous>")
	f.StringVar(&o.filter.Operation, "operation", "", "operation, e.g. create, destroy, \"manage Destroy\"")
	f.StringVar(&o.filter.Resource, "resource", "", "resource, e.g. a workspace key")
	f.StringVar(&o.filter.Decision, "decision", "", orList(auditDecisions))
	f.StringVar(&o.since, "since", "", "only records from then on: a duration back from now (1h, 7d) or an RFC 3339 time")
	f.StringVar(&o.until, "until", "", "only records until then: a duration back from now or an RFC 3339 time")
	f.IntVar(&o.filter.Limit, "limit", 100, "show the most recent N matching records (0: all)")
	f.BoolVar(&o.json, "json", false, "print a JSON array instead of a table")
	f.BoolVar(&o.verify, "verify", false, "verify the whole hash chain; fail naming the first broken record")
	f.StringVar(&o.anchor, "anchor", "", `with --verify: a head the server logged ("audit chain head id=N hash=H"), as N:H; the chain must still hold it`)
	f.StringVar(&o.pruneBefore, "prune-before", "", "remove records older than this (a duration back, 90d, or an RFC 3339 time) after verifying them;\nat least 24h back unless --yes")
	f.BoolVar(&o.yes, "yes", false, "with --prune-before: remove records younger than 24h too")
	return cmd
}

func runAudit(ctx context.Context, out io.Writer, o *auditOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	now := time.Now()
	var err error
	if o.filter.Since, err = parseWhen(o.since, now); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if o.filter.Until, err = parseWhen(o.until, now); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	// Swapped, they match nothing, and an empty table would read as "nothing then".
	if !o.filter.Since.IsZero() && !o.filter.Until.IsZero() && o.filter.Since.After(o.filter.Until) {
		return fmt.Errorf("--since %s is after --until %s: no record is both; give the earlier time to --since", o.since, o.until)
	}
	if o.pruneBefore != "" {
		return pruneAudit(ctx, out, o, now)
	}
	db, where, err := openAuditReader(ctx, o)
	if err != nil {
		return err
	}
	defer db.Close()
	// A nil logger would log the chain head to stderr on every look; this is a reader.
	log := audit.New(db, slog.New(slog.DiscardHandler))

	if o.verify {
		n, err := log.Verify(ctx)
		if err != nil {
			return fmt.Errorf("audit log in %s: %d records verified, then: %w", where, n, err)
		}
		if o.anchor != "" {
			idText, hash, ok := strings.Cut(o.anchor, ":")
			aid, perr := strconv.ParseInt(idText, 10, 64)
			if !ok || perr != nil || len(hash) != 64 {
				return fmt.Errorf("--anchor: want ID:HASH as the server logged it (id=N hash=<64 hex>), got %q", o.anchor)
			}
			if err := log.HasAnchor(ctx, aid, hash); err != nil {
				return fmt.Errorf("audit log in %s: the chain verifies, but against the logged head: %w", where, err)
			}
			fmt.Fprintf(out, "logged head %d is in the chain\n", aid)
		}
		id, hash, err := log.Head(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "audit chain intact: %d records; head: record %d, hash %s\n", n, id, hash)
		fmt.Fprintln(out, "compare the head with the last \"audit chain head\" the server logged: a rewritten database cannot match it")
		return nil
	}

	entries, err := log.Query(ctx, o.filter)
	if err != nil {
		if o.database != "" { // its schema version was checked on opening
			return fmt.Errorf("audit log in %s: %w", where, err)
		}
		return fmt.Errorf("audit log in %s: %w (a database from before the audit chain: run this vws's serve once to upgrade it)", where, err)
	}
	if o.json {
		type jsonEntry struct {
			ID        int64     `json:"id"`
			Time      time.Time `json:"time"`
			Caller    string    `json:"caller"`
			Operation string    `json:"operation"`
			Resource  string    `json:"resource"`
			Decision  string    `json:"decision"`
			Rule      string    `json:"rule,omitempty"`
			Detail    string    `json:"detail,omitempty"`
			Hash      string    `json:"hash"`
		}
		list := make([]jsonEntry, 0, len(entries))
		for _, e := range entries {
			list = append(list, jsonEntry{e.ID, e.Time, e.Caller, e.Operation, e.Resource, e.Decision, e.Rule, e.Detail, e.Hash})
		}
		enc := json.NewEncoder(out)
		enc.SetEscapeHTML(false) // "<anonymous>", as the table and --caller write it
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tCALLER\tOPERATION\tRESOURCE\tDECISION\tRULE\tDETAIL")
	for _, e := range entries {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Time.Local().Format("2006-01-02 15:04:05"),
			cell(e.Caller), cell(e.Operation), cell(e.Resource), e.Decision, cell(e.Rule), cell(e.Detail))
	}
	return tw.Flush()
}

// cell keeps one record on one line, and the terminal's: tabs and newlines in a
// field would break the table, and a caller chooses some fields (a plain-HTTP path
// decodes %1b to ESC), whose control characters would move the cursor, erase the
// records above or overwrite the caller column. Those are shown escaped (\x1b).
func cell(s string) string {
	if s == "" {
		return "-"
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case unicode.IsControl(r):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// parseWhen reads a time as RFC 3339 or as a duration back from now ("90m", "7d").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var days time.Duration
	rest := s
	// A duration holds some 292 years; past that, days*24h and days+d wrap around
	// (213600d became 96 days: a --prune-before removing what it should have kept).
	const maxDays = math.MaxInt64 / int64(24*time.Hour)
	tooLong := fmt.Errorf("%q: longer than a duration can be (%d days)", s, maxDays)
	if i := strings.IndexByte(s, 'd'); i > 0 {
		var n int64
		if _, err := fmt.Sscanf(s[:i], "%d", &n); err == nil && fmt.Sprint(n) == s[:i] {
			if n > maxDays || n < -maxDays {
				return time.Time{}, tooLong
			}
			days, rest = time.Duration(n)*24*time.Hour, s[i+1:]
		}
	}
	var d time.Duration
	if rest != "" {
		var err error
		if d, err = time.ParseDuration(rest); err != nil {
			return time.Time{}, fmt.Errorf("%q: want a duration (1h, 7d) or an RFC 3339 time (2026-05-01T12:00:00Z)", s)
		}
	}
	if (d > 0 && days > math.MaxInt64-d) || (d < 0 && days <= math.MinInt64-d) {
		return time.Time{}, tooLong
	}
	return now.Add(-(days + d)), nil
}

// openAuditReader opens the audit trail's database for reading: the server's SQLite
// file, or its PostgreSQL database in read-only sessions, and says where it is.
func openAuditReader(ctx context.Context, o *auditOptions) (*sql.DB, string, error) {
	if o.database == "" {
		db, err := openAuditDB(o.dataDir)
		return db, o.dataDir, err
	}
	// Beside the server: its lock is the server's, and it alone migrates.
	pg, err := store.OpenPostgresBeside(ctx, o.database, store.ReadOnly)
	if err != nil {
		return nil, "", err
	}
	return pg.SQL(), pg.String(), nil
}

// openAuditDB opens the server's database read-only: no migration, no writes, and an
// error rather than a new empty database when the directory is wrong.
func openAuditDB(dir string) (*sql.DB, error) {
	path := filepath.Join(dir, "vws.db")
	if err := server.CheckRecordsHere(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no vws database in %s (pass --data DIR, the server's data directory): %w", dir, err)
	}
	db, err := sql.Open("sqlite", store.SQLiteURI(path)+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	// Not migrated here, so checked: a newer vws's records could be misread.
	if _, err := store.CheckSQLiteVersion(context.Background(), db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// pruneAudit removes old records through the server's own store (migrated, writable).
func pruneAudit(ctx context.Context, out io.Writer, o *auditOptions, now time.Time) error {
	before, err := parseWhen(o.pruneBefore, now)
	if err != nil || before.IsZero() {
		return fmt.Errorf("--prune-before: want a duration back (90d) or an RFC 3339 time, got %q", o.pruneBefore)
	}
	if before.After(now.Add(-minRetention)) && !o.yes {
		return fmt.Errorf("--prune-before %s would remove records of the last 24h (everything before %s): give 24h or more, e.g. 90d, or add --yes to remove them; nothing was removed",
			o.pruneBefore, before.Format(time.RFC3339))
	}
	var db *store.DB
	if o.database != "" {
		// Beside the running server, which is safe: each of Prune's transactions
		// removes verified records up to the last one older than --prune-before and
		// moves the checkpoint to it, while the server only appends after the chain's
		// head (never at or below a record that exists, so never among those removed)
		// and reads the checkpoint only when the table is empty, which it is only
		// once the transaction has committed the checkpoint too.
		db, err = store.OpenPostgresBeside(ctx, o.database, store.ReadWrite)
	} else {
		if err := server.CheckRecordsHere(o.dataDir); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(o.dataDir, "vws.db")); err != nil {
			return fmt.Errorf("no vws database in %s (pass --data DIR, the server's data directory): %w", o.dataDir, err)
		}
		db, err = store.Open(ctx, o.dataDir)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	where := o.dataDir
	if o.database != "" {
		where = db.String()
	}
	log := audit.New(db.SQL(), slog.New(slog.DiscardHandler))
	n, err := log.Prune(ctx, before)
	switch {
	case err != nil && n == 0:
		return fmt.Errorf("audit log in %s: nothing removed: %w", where, err)
	case err != nil:
		// Prune goes in batches, each with its checkpoint: those done stay done.
		msg := fmt.Sprintf("audit log in %s: removed %d records older than %s, then stopped; the chain verifies from the checkpoint (vws audit --verify), and the same --prune-before again removes the rest", where, n, before.Format(time.RFC3339))
		if errors.Is(err, context.Canceled) {
			return &interruptedError{msg}
		}
		return fmt.Errorf("%s: %w", msg, err)
	}
	cp, err := log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "removed %d records older than %s; the chain now starts after record %d (hash %s), %d removed in all\n",
		n, before.Format(time.RFC3339), cp.LastID, cp.LastHash, cp.Pruned)
	// A record dated in the future stops every prune until its date is old enough.
	stop, held, ok, err := log.FutureStop(ctx, before)
	if err != nil {
		return err
	}
	if ok {
		records := "records after it older than %s are"
		if held == 1 {
			records = "record after it older than %s is"
		}
		records = fmt.Sprintf(records, before.Format(time.RFC3339))
		at := stop.Time.Format(time.RFC3339)
		fmt.Fprintf(out, "pruning stopped at record %d, dated %s, in the future (the server's clock was ahead when it was written): "+
			"the chain is removed in order, so the %d %s kept until %s, when the same --prune-before reaches it; "+
			"check the server's clock (NTP); to remove them sooner, give --prune-before a time after %s with --yes, which removes every record up to the first dated at or after that time, recent ones included\n",
			stop.ID, at, held, records, stop.Time.Add(now.Sub(before)).Format(time.RFC3339), at)
	}
	return nil
}
