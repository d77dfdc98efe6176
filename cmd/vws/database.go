package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/vws-grid/vws/internal/audit"
	"github.com/vws-grid/vws/internal/server"
	"github.com/vws-grid/vws/internal/store"
)

func newDatabaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "database",
		Short: "Move a server's records from SQLite to PostgreSQL (on the service host)",
	}
	cmd.AddCommand(newDatabaseCopyCommand())
	return cmd
}

func newDatabaseCopyCommand() *cobra.Command {
	var dataDir, to string
	cmd := &cobra.Command{
		Use:   "copy --data DIR --to postgres://…",
		Short: "Copy the records of a data directory's SQLite database into an empty PostgreSQL database",
		Long: `Copy every record a server keeps in DIR/vws.db — workspaces, subscriptions, the image
pool's index, the audit trail, manifest signers — into an empty PostgreSQL database,
for vws serve --data DIR --database URL.

The server on DIR must be stopped: the copy holds the data directory as the server
does. The target is set up as vws serve --database would set it up, and refused if it
already holds records. The copy is one transaction: it commits only once every table
has as many rows, with the same contents, as in SQLite; a failure leaves the target
without records. Then the audit chain is verified on the target, and must end at the
same record as in SQLite. vws.db is left as it was (upgraded to this vws's schema
if an earlier vws wrote it, as vws serve would).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				return errors.New("--to is required: the PostgreSQL database to copy into, postgres://USER@HOST:PORT/DATABASE")
			}
			if !store.IsPostgresURL(to) {
				return fmt.Errorf("--to %q: want a PostgreSQL URL, postgres://USER@HOST:PORT/DATABASE", store.RedactURL(to))
			}
			return runDatabaseCopy(cmd.Context(), cmd.OutOrStdout(), dataDir, to)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data", defaultDataDir(), "data directory of the server (holds vws.db)")
	f.StringVar(&to, "to", "", "the PostgreSQL database to copy into, as vws serve --database will name it: postgres://USER@HOST:PORT/DB\n(the password from PGPASSWORD or ~/.pgpass; host=/run/postgresql for a socket)")
	return cmd
}

func runDatabaseCopy(ctx context.Context, out io.Writer, dir, to string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Before the lock, which would create the directory: a mistyped --data is an
	// error, not an empty lab copied.
	if _, err := os.Stat(filepath.Join(dir, "vws.db")); err != nil {
		return fmt.Errorf("no vws database in %s (pass --data DIR, the server's data directory): %w", dir, err)
	}
	// A second copy would carry the backup's records, not those kept since.
	if err := server.CheckRecordsHere(dir); err != nil {
		return err
	}
	release, err := server.LockDataDir(dir)
	if err != nil {
		var inUse *server.DataDirInUseError
		if errors.As(err, &inUse) {
			return fmt.Errorf("%w: stop it before copying its records (what it wrote meanwhile would not be copied), then run this again", err)
		}
		return err
	}
	defer release()

	src, err := store.Open(ctx, dir)
	if err != nil {
		return err
	}
	defer src.Close()
	quiet := slog.New(slog.DiscardHandler)
	srcLog := audit.New(src.SQL(), quiet)
	srcN, srcBroken := srcLog.Verify(ctx)
	var srcBreak *audit.ChainError
	if srcBroken != nil && !errors.As(srcBroken, &srcBreak) {
		return fmt.Errorf("audit log in %s: %w", src, srcBroken)
	}
	srcID, srcHash, err := srcLog.Head(ctx)
	if err != nil {
		return fmt.Errorf("audit log in %s: %w", src, err)
	}

	// As a server would open it: its lock keeps servers off it during the copy, and
	// an empty database gets vws's schema.
	dst, err := store.OpenPostgres(ctx, to)
	if err != nil {
		return err
	}
	defer dst.Close()
	tables, earlier, err := store.CopyRecords(ctx, src, dst)
	if err != nil {
		return err
	}

	if earlier {
		// A run cut short after its commit: finished here, by the checks and the mark.
		fmt.Fprintf(out, "%s already holds every record of %s (an earlier copy committed them, then did not finish); nothing copied:\n", dst, src)
	} else {
		fmt.Fprintf(out, "copied the records of %s to %s:\n", src, dst)
	}
	for _, t := range tables {
		fmt.Fprintf(out, "  %-18s %9d %s\n", t.Table, t.Rows, plural(t.Rows, "row", "rows"))
	}
	fmt.Fprintln(out, "every table has as many rows in PostgreSQL as in SQLite, with the same contents")

	// The rows are equal already; the chain is checked the way vws audit --verify
	// checks it, on what was committed.
	dstLog := audit.New(dst.SQL(), quiet)
	n, broken := dstLog.Verify(ctx)
	id, hash, err := dstLog.Head(ctx)
	if err != nil {
		return fmt.Errorf("the records were copied, but the audit log in %s cannot be read: %w", dst, err)
	}
	if id != srcID || hash != srcHash {
		return fmt.Errorf("the records were copied, but the audit chain in %s ends at record %d (hash %s), not at record %d (hash %s) as in %s: drop that database, create it empty and copy again",
			dst, id, hash, srcID, srcHash, src)
	}
	var dstBreak *audit.ChainError
	switch {
	case srcBreak == nil && broken == nil && n == srcN:
		fmt.Fprintf(out, "audit chain intact in PostgreSQL: %d records; head: record %d, hash %s, as in SQLite\n", n, id, hash)
	case srcBreak != nil && errors.As(broken, &dstBreak) && dstBreak.ID == srcBreak.ID && n == srcN:
		// A copy does not mend or judge: the break is evidence, and goes over as it is.
		fmt.Fprintf(out, "WARNING: the audit chain was already broken in SQLite, and is copied as it is: %v\n", srcBroken)
		fmt.Fprintf(out, "  vws audit --database URL --verify names it; head: record %d, hash %s, as in SQLite\n", id, hash)
	default:
		return fmt.Errorf("the records were copied, but the audit chain in %s does not verify as in %s (%d records verified there, %d here; %v): drop that database, create it empty and copy again",
			dst, src, srcN, n, broken)
	}

	if err := server.MarkRecordsMoved(dir, store.RedactURL(to)); err != nil {
		return fmt.Errorf("the records were copied, but %w: do not start the server without --database", err)
	}

	fmt.Fprintf(out, `
Next:
  1. Start the server with its other flags as before, and
       --data %[1]s --database %[2]s
  2. Keep the data directory: it still holds the image pool (images/), the
     workspaces' disks (workspaces/, layers/), the manifest signing key (keys/,
     unless --cert and --key name one), the host manager's journal and cache
     (manager/) and the server's lock (vws.lock).
  3. Its vws.db is no longer used: keep it as a backup. vws serve and vws audit
     refuse it from now on (%[3]s says where the records are).
`, dir, store.RedactURL(to), filepath.Join(dir, "vws.db.moved"))
	return nil
}

// plural is one or many, for n.
func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
