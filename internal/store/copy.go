package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// colKind is how a column's values are read from SQLite, whose columns take any type,
// and written to PostgreSQL, whose columns take one.
type colKind int

const (
	kindInt   colKind = iota // INTEGER / BIGINT
	kindText                 // TEXT
	kindBytes                // BLOB / BYTEA
)

type copyColumn struct {
	name string
	kind colKind
}

// copyTable is one table of the records, with every one of its columns.
type copyTable struct {
	name    string
	columns []copyColumn
}

// copyTables are every table of the records, in an order the foreign keys allow
// (images before the names that point at them), with every column: a test compares
// them with the schema, so a migration that adds either fails it until they are here.
// PostgreSQL's vws_schema is not a record.
var copyTables = []copyTable{
	{"resources", []copyColumn{{"service", kindText}, {"key", kindText}, {"properties", kindBytes},
		{"termination", kindInt}, {"updated", kindInt}, {"private", kindBytes}}},
	{"images", []copyColumn{{"digest", kindText}, {"format", kindText}, {"size", kindInt}, {"virtual_size", kindInt},
		{"created", kindInt}, {"chunk_bytes", kindInt}, {"chunk_digests", kindText}}},
	{"image_names", []copyColumn{{"name", kindText}, {"digest", kindText}, {"os", kindText}, {"kernel", kindText},
		{"arch", kindText}, {"libraries", kindText}, {"created", kindInt}}},
	{"audit", []copyColumn{{"id", kindInt}, {"time", kindInt}, {"caller", kindText}, {"operation", kindText},
		{"resource", kindText}, {"decision", kindText}, {"detail", kindText}, {"rule", kindText}, {"prev", kindText}, {"hash", kindText}}},
	{"audit_checkpoint", []copyColumn{{"id", kindInt}, {"last_id", kindInt}, {"last_hash", kindText}, {"pruned", kindInt}, {"at", kindInt}}},
	{"manifest_signers", []copyColumn{{"fingerprint", kindText}, {"subject", kindText}, {"first_used", kindInt}}},
	{"manifests_sealed", []copyColumn{{"id", kindInt}, {"since", kindInt}}},
	{"known_hosts", []copyColumn{{"name", kindText}, {"announced_by", kindText}, {"offer", kindText}, {"last_seen", kindInt}, {"expires", kindInt}}},
}

func (t copyTable) columnNames() []string {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	return names
}

// TableCopy is one table copied.
type TableCopy struct {
	Table string
	Rows  int64
}

// NotEmptyError refuses a copy into a database that already holds records: merging
// two labs' records is not a copy, and a second run must not duplicate the first's.
type NotEmptyError struct {
	Target string
	Tables []TableCopy // the tables holding rows, with how many
}

func (e *NotEmptyError) Error() string {
	var held []string
	for _, t := range e.Tables {
		rows := "rows"
		if t.Rows == 1 {
			rows = "row"
		}
		held = append(held, fmt.Sprintf("%s has %d %s", t.Table, t.Rows, rows))
	}
	return fmt.Sprintf("%s already holds vws records (%s): nothing was copied. Copy into a new, empty database", e.Target, strings.Join(held, ", "))
}

// CopyRecords copies every record of src, a SQLite database, into dst, an empty
// PostgreSQL database at this vws's schema (OpenPostgres migrates it), and returns
// how many rows each table had. It is all or nothing: one PostgreSQL transaction,
// committed only once every table has as many rows on dst as on src, with the same
// contents (a checksum of each row's values, read back inside the transaction). src
// is read in one transaction too, so the copy is of one moment of it.
//
// A dst that already holds exactly src's records (row for row, by the same checksums)
// is what an earlier copy committed before it was cut short (kill -9 before it marked
// the data directory): earlier is then true, and nothing is written.
//
// Values go over as they are: blobs byte for byte, NULL as NULL, an empty blob as an
// empty one. A value PostgreSQL refuses (a NUL in a text, an image name whose image
// is missing) fails the copy naming its table, with nothing written.
func CopyRecords(ctx context.Context, src, dst *DB) (copied []TableCopy, earlier bool, err error) {
	if IsPostgres(src.db) || !IsPostgres(dst.db) {
		return nil, false, errors.New("copy records: from a SQLite database to a PostgreSQL one only")
	}
	// A read transaction: SQLite (WAL) keeps its snapshot until the end.
	stx, err := src.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", src.what, err)
	}
	defer stx.Rollback()

	conn, err := dst.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("connect to %s: %w", dst.what, err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		// pgx's own connection: COPY, not a statement per row, which would take
		// minutes for an audit trail of millions of records.
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		// Rollback after a failure, even a cancelled ctx's: nothing stays half-copied.
		defer tx.Rollback(context.WithoutCancel(ctx))
		if err := checkEmpty(ctx, tx, dst.what); err != nil {
			var ne *NotEmptyError
			if !errors.As(err, &ne) {
				return err
			}
			held, same, serr := sameRecords(ctx, stx, tx)
			if serr != nil || !same {
				return err // the refusal says what the target holds
			}
			copied, earlier = held, true
			return nil
		}
		for _, t := range copyTables {
			n, err := copyTableRows(ctx, stx, tx, t)
			if err != nil {
				return fmt.Errorf("copy table %s: %w", t.name, err)
			}
			copied = append(copied, TableCopy{t.name, n})
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
	if err != nil {
		var ne *NotEmptyError
		if errors.As(err, &ne) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("copy the records of %s to %s: nothing was written: %w", src.what, dst.what, err)
	}
	return copied, earlier, nil
}

// sameRecords says whether PostgreSQL holds exactly SQLite's records: in every
// table, as many rows with the same checksums.
func sameRecords(ctx context.Context, stx *sql.Tx, tx pgx.Tx) ([]TableCopy, bool, error) {
	var held []TableCopy
	for _, t := range copyTables {
		rows, err := stx.QueryContext(ctx, `SELECT `+strings.Join(t.columnNames(), ", ")+` FROM `+t.name)
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", t.name, err)
		}
		source := &sqliteRows{rows: rows, table: t}
		for source.Next() { // counts and checksums each row
		}
		rows.Close()
		if err := source.Err(); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", t.name, err)
		}
		n, sum, err := postgresRows(ctx, tx, t)
		if err != nil {
			return nil, false, err
		}
		if n != source.n || sum != source.sum {
			return nil, false, nil
		}
		held = append(held, TableCopy{t.name, n})
	}
	return held, true, nil
}

// postgresRows counts and checksums t's rows in PostgreSQL, as sqliteRows does
// SQLite's.
func postgresRows(ctx context.Context, tx pgx.Tx, t copyTable) (int64, rowSum, error) {
	var sum rowSum
	back, err := tx.Query(ctx, `SELECT `+strings.Join(t.columnNames(), ", ")+` FROM `+pgx.Identifier{t.name}.Sanitize())
	if err != nil {
		return 0, sum, fmt.Errorf("read back: %w", err)
	}
	defer back.Close()
	var count int64
	for back.Next() {
		vals, err := back.Values()
		if err != nil {
			return 0, sum, fmt.Errorf("read back: %w", err)
		}
		sum.add(vals)
		count++
	}
	if err := back.Err(); err != nil {
		return 0, sum, fmt.Errorf("read back: %w", err)
	}
	return count, sum, nil
}

// checkEmpty refuses a target holding any record, naming every table that does.
func checkEmpty(ctx context.Context, tx pgx.Tx, what string) error {
	var held []TableCopy
	for _, t := range copyTables {
		var n int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{t.name}.Sanitize()).Scan(&n); err != nil {
			return fmt.Errorf("count the rows of %s: %w", t.name, err)
		}
		if n > 0 {
			held = append(held, TableCopy{t.name, n})
		}
	}
	if len(held) > 0 {
		return &NotEmptyError{Target: what, Tables: held}
	}
	return nil
}

// copyTableRows streams t's rows from SQLite into PostgreSQL with COPY, then checks
// PostgreSQL holds the same number of rows with the same sum of row checksums.
func copyTableRows(ctx context.Context, stx *sql.Tx, tx pgx.Tx, t copyTable) (int64, error) {
	cols := t.columnNames()
	rows, err := stx.QueryContext(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM `+t.name)
	if err != nil {
		return 0, fmt.Errorf("read: %w", err)
	}
	defer rows.Close()
	source := &sqliteRows{rows: rows, table: t}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{t.name}, cols, source)
	if err != nil {
		return 0, err
	}
	if n != source.n {
		return 0, fmt.Errorf("PostgreSQL took %d of %d rows", n, source.n)
	}

	count, got, err := postgresRows(ctx, tx, t)
	if err != nil {
		return 0, err
	}
	if count != source.n {
		return 0, fmt.Errorf("%d rows in SQLite, %d in PostgreSQL", source.n, count)
	}
	if got != source.sum {
		return 0, fmt.Errorf("the %d rows in PostgreSQL are not those of SQLite (their checksums differ)", count)
	}
	return count, nil
}

// sqliteRows is a pgx.CopyFromSource over a SQLite query of a table's columns,
// counting and checksumming what it hands over.
type sqliteRows struct {
	rows  *sql.Rows
	table copyTable
	vals  []any
	err   error
	n     int64
	sum   rowSum
}

func (s *sqliteRows) Next() bool {
	if s.err != nil || !s.rows.Next() {
		return false
	}
	raw := make([]any, len(s.table.columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	if s.err = s.rows.Scan(ptrs...); s.err != nil {
		return false
	}
	for i, c := range s.table.columns {
		if raw[i], s.err = c.value(raw[i]); s.err != nil {
			s.err = fmt.Errorf("row %d: %w", s.n+1, s.err)
			return false
		}
	}
	s.vals = raw
	s.n++
	s.sum.add(raw)
	return true
}

func (s *sqliteRows) Values() ([]any, error) { return s.vals, s.err }

func (s *sqliteRows) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.rows.Err()
}

// value is what PostgreSQL gets for SQLite's v in column c. SQLite keeps any type in
// any column; a text in a blob column (or the reverse) goes over as its bytes.
func (c copyColumn) value(v any) (any, error) {
	if v == nil {
		return nil, nil // NULL stays NULL; a NOT NULL column refuses it as in SQLite
	}
	switch c.kind {
	case kindInt:
		if i, ok := v.(int64); ok {
			return i, nil
		}
	case kindText:
		switch v := v.(type) {
		case string:
			return v, nil
		case []byte:
			return string(v), nil
		}
	case kindBytes:
		switch v := v.(type) {
		case []byte:
			// SQLite's driver hands an empty blob over as a nil slice, which pgx would
			// send as NULL.
			if v == nil {
				v = []byte{}
			}
			return v, nil
		case string:
			return []byte(v), nil
		}
	}
	return nil, fmt.Errorf("column %s holds %T %v, which is not what vws writes there", c.name, v, v)
}

// rowSum is an order-free checksum of a table's rows: the sum, in four 64-bit lanes,
// of each row's SHA-256. PostgreSQL returns the rows in an order of its own.
type rowSum [4]uint64

func (s *rowSum) add(vals []any) {
	h := sha256.New()
	var n [9]byte
	for _, v := range vals {
		// A tag and a length for each value: NULL, an empty text and an empty blob
		// all differ, and no two rows encode alike.
		var b []byte
		switch v := v.(type) {
		case nil:
			n[0] = 'N'
		case int64:
			n[0], b = 'I', binary.BigEndian.AppendUint64(nil, uint64(v))
		case int32: // PostgreSQL's INTEGER columns
			n[0], b = 'I', binary.BigEndian.AppendUint64(nil, uint64(int64(v)))
		case string:
			n[0], b = 'S', []byte(v)
		case []byte:
			n[0], b = 'B', v
		default:
			n[0], b = '?', fmt.Appendf(nil, "%T %v", v, v)
		}
		binary.BigEndian.PutUint64(n[1:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	sum := h.Sum(nil)
	for i := range s {
		s[i] += binary.BigEndian.Uint64(sum[8*i:])
	}
}

// Empty says whether the database holds no record at all, as a new one.
func (s *DB) Empty(ctx context.Context) (bool, error) {
	for _, t := range copyTables {
		var n int64
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+t.name+` LIMIT 1) AS one`).Scan(&n); err != nil {
			return false, fmt.Errorf("read %s of %s: %w", t.name, s.what, err)
		}
		if n > 0 {
			return false, nil
		}
	}
	return true, nil
}
