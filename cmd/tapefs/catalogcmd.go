package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/cli"
)

const catalogUsage = `Usage: tapefs catalog copy [--home DIR] --to postgres://…
       tapefs catalog rebuild --from-library [--home DIR]
       tapefs catalog restore [--home DIR]

Catalog maintenance; stop the daemon first.

copy: copies the catalog of a home (catalog.db, bbolt) into an empty
PostgreSQL database, so that a single-host archive can move to a shared
catalog without re-archiving anything. The copy reads a consistent
snapshot; every key is compared after the copy; the daemon is then started
with --catalog URL (or TAPEFS_CATALOG, or [Daemon] catalog = URL) on the
same home, which keeps its cache and virtual library. A copy that is
interrupted leaves a database that tapefs refuses to use; running the copy
again starts it over. A database that already holds a catalog is never
overwritten.

rebuild --from-library: builds a new catalog.db from the cartridges alone,
reading every tape file: workspaces, batches (tag, owner, times), every
file, directory, symlink and hard link with its attributes, md5 and tape
copy, and the removal of batches. Purged batches stay gone and removed ones
come back removed (restorable as before). Batches that had not reached tape
are not on it, and cannot come back.

restore: recovers a lost home (catalog and cache gone, library kept): the
newest catalog snapshot on tape (daemon flag --snapshot-every) becomes
catalog.db, and the tape files written after it are read into it. With no
snapshot on tape it rebuilds from every tape file.

rebuild and restore refuse to overwrite an existing catalog.db: move it
away first. They write HOME/catalog.db.new and rename it when done, so an
interrupted run leaves no catalog that looks whole. They work on the
catalog in the home (bbolt), not on a PostgreSQL catalog.

Flags:
%s
Examples:
  systemctl stop tapefs
  tapefs catalog copy --home /var/lib/tapefs --to postgres://tapefs@db.example.org/tapefs
  tapefs mount --home /var/lib/tapefs --catalog postgres://tapefs@db.example.org/tapefs /tape
  mv /var/lib/tapefs/catalog.db /var/lib/tapefs/catalog.db.broken
  tapefs catalog rebuild --from-library --home /var/lib/tapefs
  tapefs catalog restore --home /var/lib/tapefs
`

// runCatalog runs the catalog maintenance commands (the daemon must not be
// running): copy, rebuild, restore.
func runCatalog(args []string) int {
	fs := pflag.NewFlagSet("catalog", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	home := fs.String("home", envOr("TAPEFS_HOME", defaultHome()), "home directory (env TAPEFS_HOME)")
	to := fs.String("to", "", "copy: destination, a postgres://… URL of an empty database")
	fromLibrary := fs.Bool("from-library", false, "rebuild: read the catalog back from the cartridges of the home's library")
	help := func(w io.Writer) { fmt.Fprintf(w, catalogUsage, fs.FlagUsages()) }
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		help(os.Stdout)
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "tapefs catalog: %v; see 'tapefs catalog --help'\n", err)
		return cli.ExitUsage
	case fs.NArg() != 1:
		fmt.Fprintln(os.Stderr, "tapefs catalog: want one subcommand: copy, rebuild or restore; see 'tapefs catalog --help'")
		return cli.ExitUsage
	}
	switch fs.Arg(0) {
	case "copy":
		if !catalog.IsDatabaseURL(*to) {
			fmt.Fprintln(os.Stderr, "tapefs catalog copy: --to must be a postgres://… URL; see 'tapefs catalog --help'")
			return cli.ExitUsage
		}
		return catalogCopy(*home, *to)
	case "rebuild":
		if !*fromLibrary {
			fmt.Fprintln(os.Stderr, "tapefs catalog rebuild: say where from: --from-library (the only source today); see 'tapefs catalog --help'")
			return cli.ExitUsage
		}
		return catalogRebuild(*home, false)
	case "restore":
		return catalogRebuild(*home, true)
	default:
		hint := ""
		if s, ok := cli.Suggest(fs.Arg(0), []string{"copy", "rebuild", "restore"}); ok {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		fmt.Fprintf(os.Stderr, "tapefs catalog: unknown subcommand %q%s: want copy, rebuild or restore; see 'tapefs catalog --help'\n", fs.Arg(0), hint)
		return cli.ExitUsage
	}
}

func catalogCopy(home, to string) int {
	path := filepath.Join(home, catalogFile)
	if _, err := os.Stat(path); err != nil {
		fmt.Fprintf(os.Stderr, "tapefs catalog copy: no catalog at %s (is --home right?)\n", path)
		return cli.ExitFailed
	}
	src, err := catalog.OpenBoltEngine(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tapefs catalog copy: %v (stop the daemon first)\n", err)
		return cli.ExitFailed
	}
	defer src.Close()
	dst, err := catalog.OpenPostgresEngine(to, catalog.PostgresOptions{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "tapefs catalog copy: %v\n", err)
		return cli.ExitFailed
	}
	defer dst.Close()
	st, err := catalog.CopyEngine(dst, src, func(keys int) {
		if isTerminal(os.Stderr) {
			fmt.Fprintf(os.Stderr, "\rtapefs catalog copy: %d records copied", keys)
		}
	})
	if isTerminal(os.Stderr) {
		fmt.Fprintln(os.Stderr)
	}
	if errors.Is(err, catalog.ErrNotEmpty) {
		fmt.Fprintf(os.Stderr, "tapefs catalog copy: %s already holds a catalog; copy into an empty database\n", catalog.DescribeURL(to))
		return cli.ExitFailed
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tapefs catalog copy: %v\n", err)
		return cli.ExitFailed
	}
	if st.Cleared > 0 {
		fmt.Fprintf(os.Stderr, "tapefs catalog copy: removed %d records of an interrupted earlier copy first\n", st.Cleared)
	}
	fmt.Fprintf(os.Stderr, "tapefs catalog copy: %d records (%d bytes) copied to %s and compared; start the daemon with --catalog %s\n",
		st.Keys, st.Bytes, catalog.DescribeURL(to), catalog.DescribeURL(to))
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
