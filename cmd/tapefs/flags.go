package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"github.com/tapefs/tapefs/config"
)

// daemonFlags are the flags of mount and serve. They are parsed into
// placeholders; only the flags actually given are applied (by name, the
// same setter the configuration file uses), on top of the files.
type daemonFlags struct {
	fs     *pflag.FlagSet
	config string
	help   func(w io.Writer)
}

func newDaemonFlags(name, usageLine, description, examples string) *daemonFlags {
	d := defaultDaemonConfig()
	f := &daemonFlags{fs: pflag.NewFlagSet(name, pflag.ContinueOnError)}
	fs := f.fs
	fs.SortFlags = false
	fs.String("home", d.home, "home directory: catalog, cache, virtual library, log (env TAPEFS_HOME)")
	fs.String("catalog", "", "catalog database: a postgres://… URL shared by several hosts (env TAPEFS_CATALOG; default: catalog.db in the home)")
	fs.StringVar(&f.config, "config", "", "configuration file (INI, section [Daemon]) read instead of ~/.config/tapefs/tapefs.conf and ~/.tapefs.conf")
	fs.String("http", d.http, "address of the status page")
	fs.Duration("settle", d.settle, "seal an entry of put/ after it has been quiet this long")
	fs.String("cache-size", "0", "cache size, e.g. 500M or 10G (0: the free space of the disk)")
	fs.Float64("time-scale", d.timeScale, "fraction of the simulated tape time really waited (0: none, 1: real time)")
	fs.Bool("allow-other", false, "let other users use the mount (files they create in put/ are theirs)")
	fs.String("log-level", d.logLevel.String(), "log level: debug, info, warn or error")
	fs.Int("drives", d.drives, "drives of a new virtual library")
	fs.Int("cartridges", d.cartridges, "cartridges of a new virtual library")
	fs.String("cartridge-size", "0", "capacity of each cartridge of a new virtual library (0: 18 TB, LTO-9)")
	fs.Duration("flush-age", 0, "start writing a workspace's sealed batches to tape when the oldest is this old (0: engine default, 1m)")
	fs.Duration("recall-linger", 0, "mount a cartridge for recalls once no request has come for this long (at most 10 times that), and keep it this long for more (0: engine default, 2s)")
	fs.Bool("debug-fuse", false, "log every FUSE request (very verbose)")
	fs.String("http-token", "", "token every request to the status page must carry (required when --http is not a loopback address)")
	fs.String("max-file-size", "0", "a larger file rejects its entry (0: 500 GB)")
	fs.Duration("retention", 7*24*time.Hour, "deleted batches stay restorable this long")
	fs.Duration("remove-grace", time.Minute, "entries removed inside a batch come back after this long unless the batch directory itself is removed")
	fs.Int("recall-workspace-drives", 0, "drives the recalls of one workspace may hold at once (0: no limit)")
	fs.Int("copies", 1, "tape copies of each file in a workspace that has no copies policy of its own (1 to 3; tapefs workspace set WS --copies N sets one)")
	fs.String("recall-workspace-bytes", "0", "bytes one workspace's recalls may have staged in the cache and not yet read, e.g. 50G; a file a reader waits for is never held back (0: no limit)")
	fs.Bool("prefetch", false, "stage the other files of a batch in the same aggregate during a recall")
	fs.String("recall-check", "crc32c", "what a recall checks before a reader gets the last bytes of a file: crc32c (the md5 is checked after, before the copy is kept) or md5 (slower than the disk: recalls go at md5's speed)")
	fs.String("scrub-rate", "16M", "bytes per second the background scrub re-reads cached objects at to find damaged ones, e.g. 64M (0: no scrub)")
	fs.Duration("scrub-interval", 24*time.Hour, "least time between the starts of two scrub passes over the whole cache")
	fs.Duration("verify-period", 180*24*time.Hour, "read every cartridge back within this time, one at a time when no recall or migration waits (0: never)")
	fs.Float64("repack-below", 0, "repack a cartridge by itself once the share of its bytes files still refer to falls below this, e.g. 0.5 (0: only by hand, tapefs library repack)")
	fs.Duration("snapshot-every", 0, "copy the catalog to --snapshot-dir and to tape this often, e.g. 24h (0: never)")
	fs.String("snapshot-dir", "", "where catalog snapshots are kept on disk (default: HOME/snapshots; better another disk)")
	fs.String("tape-speed", "0", "streaming rate of the virtual drives in bytes per second, e.g. 50M (0: LTO-9, 400 MB/s)")
	fs.Duration("kernel-cache", 0, "how long the kernel caches workspace and batch directories (0: 10m); changes are notified at once anyway")
	fs.String("hash-rate", "0", "checksum sealed batches at most this many bytes per second (0: no limit)")
	fs.String("aggregate-size", "0", "close a tape file once it holds this many bytes (0: 4G)")
	fs.String("host-id", d.hostID, "name of this daemon among the hosts sharing a catalog (default: the host name)")
	fs.Duration("lease", d.lease, "a host whose heartbeat is this old is taken for dead: its cartridges and jobs go to the others")
	fs.String("library", "", "directory of the virtual tape library (default: HOME/library)")
	fs.Bool("shared-library", false, "several hosts use --library at once, each with its own --drives (needs a postgres:// --catalog)")
	for _, hidden := range []string{"drives", "cartridges", "cartridge-size", "flush-age", "recall-linger", "debug-fuse", "tape-speed", "kernel-cache", "hash-rate", "aggregate-size"} {
		_ = fs.MarkHidden(hidden)
	}
	fs.Usage = func() {} // parseFlags prints the help
	f.help = func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s\n\n%s\nFlags:\n%s\nTesting and tuning flags: --drives N, --cartridges N, --cartridge-size SIZE\n(used only when a new home is created), --flush-age DURATION, --recall-linger DURATION,\n--tape-speed BYTES_PER_SECOND, --debug-fuse, --kernel-cache DURATION, --hash-rate BYTES_PER_SECOND.\n\nExamples:\n%s",
			usageLine, description, fs.FlagUsages(), examples)
	}
	return f
}

// configure builds the daemon's configuration from the files, the
// environment and the flags given. It returns warnings to log.
func (f *daemonFlags) configure() (daemonConfig, []string, error) {
	c := defaultDaemonConfig()
	var warnings []string
	files := config.Files() // /etc/tapefs.conf, the user's files (or their TAPEFS_*_CONFIG stand-ins)
	if f.config != "" {
		files = []string{files[0], f.config} // instead of the user's files
	}
	for i, path := range files {
		w, err := c.configFile(path)
		warnings = append(warnings, w...)
		if (os.IsNotExist(err) || os.IsPermission(err)) && (i == 0 || f.config == "") {
			continue // the default files are optional
		}
		if err != nil {
			return c, warnings, fmt.Errorf("configuration: %w", err)
		}
	}
	for _, key := range configKeys {
		if v := os.Getenv(config.EnvName(key)); v != "" {
			if err := c.set(key, v); err != nil {
				return c, warnings, fmt.Errorf("environment %s: %w", config.EnvName(key), err)
			}
		}
	}
	var err error
	f.fs.Visit(func(fl *pflag.Flag) {
		if fl.Name == "config" || err != nil {
			return
		}
		if e := c.set(fl.Name, fl.Value.String()); e != nil {
			err = fmt.Errorf("flag --%s: %w", fl.Name, e)
		}
	})
	if err != nil {
		return c, warnings, err
	}
	if c.home, err = filepath.Abs(c.home); err != nil {
		return c, warnings, err
	}
	if c.library == "" {
		c.library = filepath.Join(c.home, libraryDir)
	} else if c.library, err = filepath.Abs(c.library); err != nil {
		return c, warnings, err
	}
	if c.sharedLibrary && c.catalog == "" {
		return c, warnings, errors.New("shared-library: the hosts sharing a library must share a catalog too; give --catalog postgres://…")
	}
	return c, warnings, nil
}
