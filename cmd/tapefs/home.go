package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// Layout of a home directory.
const (
	catalogFile = "catalog.db"
	libraryDir  = "library"
	cacheDir    = "cache"
	lockFile    = "tapefs.lock"
	logFile     = "tapefs.log"
)

// lockHome takes the home's lock for the life of the daemon: one daemon
// per home. The lock file holds the daemon's pid for the message.
func lockHome(home string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(home, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock home: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := "unknown"
		if b, rerr := os.ReadFile(f.Name()); rerr == nil && strings.TrimSpace(string(b)) != "" {
			pid = strings.TrimSpace(string(b))
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("home %s is in use by another tapefs daemon (pid %s); stop it first", home, pid)
		}
		return nil, fmt.Errorf("lock home %s: %w", home, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// archiveHome is an open home: its parts, in the order they close.
type archiveHome struct {
	engine  *archive.Engine
	cache   *cache.Cache
	library tape.Library
	catalog *catalog.Catalog
}

// openHome opens (creating on first start) the catalog, the virtual
// library and the cache of a home, and the engine over them. A new home
// gets a library of the configured size and a workspace "default" managed
// by the user who started the daemon.
func openHome(c *daemonConfig, log zerolog.Logger) (h *archiveHome, err error) {
	h = &archiveHome{}
	defer func() {
		if err != nil {
			h.close(log)
			h = nil
		}
	}()
	// A home is new when its catalog file is missing; with the catalog in
	// a database, when its library is.
	marker := filepath.Join(c.home, catalogFile)
	if c.catalog != "" {
		marker = c.library
	}
	_, statErr := os.Stat(marker)
	newHome := errors.Is(statErr, os.ErrNotExist)

	if h.catalog, err = catalog.OpenAt(c.catalog, filepath.Join(c.home, catalogFile)); err != nil {
		return h, fmt.Errorf("open catalog: %w", err)
	}
	lib := tape.Config{Dir: c.library, TimeScale: c.timeScale, Shared: c.sharedLibrary}
	if c.tapeSpeed > 0 {
		lib.Timing = tape.LTO9()
		lib.Timing.StreamRate = c.tapeSpeed
	}
	if newHome {
		lib.Drives, lib.Cartridges, lib.Capacity = c.drives, c.cartridges, c.cartridgeSize
	}
	if c.sharedLibrary {
		lib.Drives = c.drives // each host drives its own drives
	}
	if h.library, err = tape.Open(lib); err != nil {
		return h, fmt.Errorf("open tape library: %w", err)
	}
	if h.cache, err = cache.Open(cache.Config{Dir: filepath.Join(c.home, cacheDir), Limit: c.cacheSize}); err != nil {
		return h, fmt.Errorf("open cache: %w", err)
	}
	h.engine, err = archive.New(archive.Config{
		Catalog:               h.catalog,
		Cache:                 h.cache,
		Library:               h.library,
		Log:                   log,
		Settle:                c.settle,
		FlushAge:              c.flushAge,
		AggregateTarget:       c.aggregateSize,
		RecallLinger:          c.recallLinger,
		MaxFileSize:           c.maxFileSize,
		Retention:             c.retention,
		RemoveGrace:           c.removeGrace,
		Prefetch:              c.prefetch,
		RecallMD5:             c.recallMD5,
		ScrubRate:             scrubRate(c.scrubRate),
		ScrubInterval:         c.scrubInterval,
		VerifyPeriod:          cmp.Or(c.verifyPeriod, -1), // 0 on the command line: no tape scrub
		RepackBelow:           c.repackBelow,
		SnapshotEvery:         c.snapshotEvery,
		SnapshotDir:           snapshotDir(c),
		RecallWorkspaceDrives: c.recallWSDrives,
		Copies:                c.copies,
		RecallWorkspaceBytes:  c.recallWSBytes,
		HashRate:              c.hashRate,
		Host:                  c.hostID,
		Lease:                 c.lease,
		Shared:                c.sharedLibrary,
		CacheDir:              filepath.Join(c.home, cacheDir),
	})
	if err != nil {
		return h, err
	}
	var wss []catalog.Workspace
	if err = h.catalog.View(func(tx *catalog.Tx) error {
		var verr error
		wss, verr = tx.Workspaces()
		return verr
	}); err != nil {
		return h, fmt.Errorf("read workspaces: %w", err)
	}
	if len(wss) == 0 {
		w := catalog.Workspace{Name: "default", Manager: uint32(os.Getuid()), Group: uint32(os.Getgid())}
		if err = h.engine.CreateWorkspace(w); err != nil {
			return h, fmt.Errorf("create workspace default: %w", err)
		}
	}
	if newHome {
		// Two pools, so that the copies of a workspace with copies = 2
		// land in different halves of the library.
		if err = h.engine.AssignPools("pool-a", "pool-b"); err != nil {
			return h, fmt.Errorf("split the library into pools: %w", err)
		}
		log.Info().Str("home", c.home).Int("drives", c.drives).Int("cartridges", c.cartridges).Msg("new home initialised")
	}
	return h, nil
}

// close stops the engine (its work reaches a safe point) and closes the
// rest.
func (h *archiveHome) close(log zerolog.Logger) {
	if h.engine != nil {
		if err := h.engine.Close(); err != nil {
			log.Error().Err(err).Msg("stopping the engine")
		}
	}
	if h.cache != nil {
		if err := h.cache.Close(); err != nil {
			log.Error().Err(err).Msg("closing the cache")
		}
	}
	if h.library != nil {
		if err := h.library.Close(); err != nil {
			log.Error().Err(err).Msg("closing the tape library")
		}
	}
	if h.catalog != nil {
		if err := h.catalog.Close(); err != nil {
			log.Error().Err(err).Msg("closing the catalog")
		}
	}
}

// catalogName says where the catalog is, for the log: the file, or the
// database URL without its password.
func catalogName(c daemonConfig) string {
	if c.catalog == "" {
		return filepath.Join(c.home, catalogFile)
	}
	return catalog.DescribeURL(c.catalog)
}

// scrubRate maps the daemon's --scrub-rate (0: no scrub) to the engine's
// (0: the default, negative: no scrub).
func scrubRate(r int64) int64 {
	if r == 0 {
		return -1
	}
	return r
}

// snapshotDir is where catalog snapshots go on disk.
func snapshotDir(c *daemonConfig) string {
	if c.snapshotDir != "" {
		return c.snapshotDir
	}
	return filepath.Join(c.home, "snapshots")
}
