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

Copies the catalog of a home (catalog.db, bbolt) into an empty PostgreSQL
database, so that a single-host archive can move to a shared catalog without
re-archiving anything. Stop the daemon first: the copy reads a consistent
snapshot and refuses a catalog that a daemon holds. Every key is compared
after the copy; the daemon is then started with --catalog URL (or
TAPEFS_CATALOG, or [Daemon] catalog = URL) on the same home, which keeps its
cache and virtual library.

A copy that is interrupted leaves a database that tapefs refuses to use;
running the copy again starts it over. A database that already holds a
catalog is never overwritten.

Flags:
%s
Examples:
  systemctl stop tapefs
  tapefs catalog copy --home /var/lib/tapefs --to postgres://tapefs@db.example.org/tapefs
  tapefs mount --home /var/lib/tapefs --catalog postgres://tapefs@db.example.org/tapefs /tape
`

// runCatalog runs the catalog maintenance commands (the daemon must not be
// running): today "copy".
func runCatalog(args []string) int {
	fs := pflag.NewFlagSet("catalog", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	home := fs.String("home", envOr("TAPEFS_HOME", defaultHome()), "home directory whose catalog.db is copied (env TAPEFS_HOME)")
	to := fs.String("to", "", "destination: a postgres://… URL of an empty database")
	help := func(w io.Writer) { fmt.Fprintf(w, catalogUsage, fs.FlagUsages()) }
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		help(os.Stdout)
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "tapefs catalog: %v; see 'tapefs catalog --help'\n", err)
		return cli.ExitUsage
	case fs.NArg() != 1 || fs.Arg(0) != "copy":
		fmt.Fprintln(os.Stderr, "tapefs catalog: want the subcommand copy; see 'tapefs catalog --help'")
		return cli.ExitUsage
	case !catalog.IsDatabaseURL(*to):
		fmt.Fprintln(os.Stderr, "tapefs catalog copy: --to must be a postgres://… URL; see 'tapefs catalog --help'")
		return cli.ExitUsage
	}
	path := filepath.Join(*home, catalogFile)
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
	dst, err := catalog.OpenPostgresEngine(*to, catalog.PostgresOptions{})
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
		fmt.Fprintf(os.Stderr, "tapefs catalog copy: %s already holds a catalog; copy into an empty database\n", catalog.DescribeURL(*to))
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
		st.Keys, st.Bytes, catalog.DescribeURL(*to), catalog.DescribeURL(*to))
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
