// Package enginetest opens a real archive engine on a temporary home —
// virtual library, bbolt catalog, disk cache — for the tests of the faces
// built on it (the mount, the control API, the status page), and closes it
// all when the test ends.
package enginetest

import (
	"cmp"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// Options shape the home; the zero value is one drive, two 1 GiB
// cartridges, an unbounded cache and an engine that settles after an hour,
// flushes after 10 ms and recalls without lingering, started.
type Options struct {
	Drives, Cartridges int
	Capacity           int64 // per cartridge
	CacheLimit         int64
	// Config, when set, changes the engine's configuration before it
	// opens (its Catalog, Cache and Library are set already).
	Config func(*archive.Config)
	// NoStart leaves the background workers stopped: the caller creates
	// what it needs first and calls Engine.Start itself, or never.
	NoStart bool
}

// Home is an engine on a temporary directory and what it runs on.
type Home struct {
	Dir     string
	Engine  *archive.Engine
	Catalog *catalog.Catalog // for seeding records the engine would take long to make
	Cache   *cache.Cache
	Library tape.Library
}

// Open opens a home in tb.TempDir(). Cleanups registered after Open run
// before the engine closes.
func Open(tb testing.TB, o Options) *Home {
	tb.Helper()
	h := &Home{Dir: tb.TempDir()}
	var err error
	h.Library, err = tape.Open(tape.Config{Dir: filepath.Join(h.Dir, "library"),
		Drives: max(o.Drives, 1), Cartridges: max(o.Cartridges, 2), Capacity: cmp.Or(o.Capacity, 1<<30)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Library.Close() })
	if h.Catalog, err = catalog.Open(filepath.Join(h.Dir, "catalog.db")); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Catalog.Close() })
	if h.Cache, err = cache.Open(cache.Config{Dir: filepath.Join(h.Dir, "cache"), Limit: o.CacheLimit}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Cache.Close() })
	cfg := archive.Config{Catalog: h.Catalog, Cache: h.Cache, Library: h.Library, Log: zerolog.Nop(),
		Settle: time.Hour, FlushAge: 10 * time.Millisecond, RecallLinger: time.Millisecond}
	if o.Config != nil {
		o.Config(&cfg)
	}
	if h.Engine, err = archive.New(cfg); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Engine.Close() })
	if !o.NoStart {
		h.Engine.Start()
	}
	return h
}
