package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/cli"
	"github.com/tapefs/tapefs/tape"
)

// catalogRebuild writes a new catalog.db from the home's library: from
// every tape file (rebuild), or from the newest snapshot on tape and the
// tape files after it (restore).
func catalogRebuild(home string, restore bool) int {
	cmd := "tapefs catalog rebuild"
	if restore {
		cmd = "tapefs catalog restore"
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, cmd+": "+format+"\n", args...)
		return cli.ExitFailed
	}
	libDir := filepath.Join(home, libraryDir)
	if ents, err := os.ReadDir(libDir); err != nil || len(ents) == 0 {
		return fail("no library at %s (is --home right?)", libDir)
	}
	lock, err := lockHome(home)
	if err != nil {
		return fail("%v", err)
	}
	defer lock.Close()
	final := filepath.Join(home, catalogFile)
	if _, err := os.Stat(final); err == nil {
		return fail("%s exists: tapefs never overwrites a catalog; move it away first (mv %s %s.old)", final, final, final)
	}
	lib, err := tape.Open(tape.Config{Dir: libDir})
	if err != nil {
		return fail("open the library: %v", err)
	}
	defer lib.Close()
	var c *cache.Cache
	if _, err := os.Stat(filepath.Join(home, cacheDir)); err == nil {
		if c, err = cache.Open(cache.Config{Dir: filepath.Join(home, cacheDir)}); err != nil {
			return fail("open the cache: %v", err)
		}
		defer c.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	tmp := final + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail("%v", err)
	}
	start := time.Now()
	var known map[string]int
	if restore {
		snap, err := archive.NewestSnapshot(ctx, lib)
		if err != nil {
			return fail("looking for catalog snapshots on tape: %v", err)
		}
		if snap == nil {
			fmt.Fprintf(os.Stderr, "%s: no catalog snapshot on tape: rebuilding from every tape file\n", cmd)
		} else {
			if err := restoreSnapshot(ctx, lib, *snap, tmp); err != nil {
				os.Remove(tmp)
				return fail("%v", err)
			}
			fmt.Fprintf(os.Stderr, "%s: catalog snapshot of %s read from tape file %d of %s\n", cmd, snap.Taken.Format(time.RFC3339), snap.TapeFile, snap.VOLSER)
		}
	}
	cat, err := catalog.Open(tmp)
	if err != nil {
		os.Remove(tmp)
		return fail("%v", err)
	}
	if restore {
		known = map[string]int{}
		err = cat.View(func(tx *catalog.Tx) error {
			cs, err := tx.Cartridges()
			for _, c := range cs {
				known[c.VOLSER] = c.TapeFiles
			}
			return err
		})
		if err != nil {
			cat.Close()
			os.Remove(tmp)
			return fail("%v", err)
		}
	}
	// The tape files to read: those after the label (and after what a
	// restored snapshot already holds), for a percentage and an ETA.
	total := 0
	for _, c := range lib.Cartridges() {
		total += max(c.TapeFiles-max(known[c.VOLSER], 1), 0)
	}
	t0 := time.Now()
	progress := func(st archive.RebuildStats) {
		if !isTerminal(os.Stderr) {
			return
		}
		line := fmt.Sprintf("%s: tape file %d of %d, %d members read", cmd, st.TapeFiles, total, st.Members)
		if total > 0 {
			line += fmt.Sprintf(" (%.0f %%", 100*float64(st.TapeFiles)/float64(total))
			if el := time.Since(t0); st.TapeFiles > 0 && st.TapeFiles < total {
				left := time.Duration(float64(el) / float64(st.TapeFiles) * float64(total-st.TapeFiles))
				line += ", about " + left.Round(time.Second).String() + " left"
			}
			line += ")"
		}
		fmt.Fprintf(os.Stderr, "\r\x1b[K%s", line)
	}
	st, err := archive.Rebuild(ctx, archive.RebuildOptions{
		Catalog: cat, Library: lib, Cache: c, Known: known, Progress: progress,
		Log: zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger(),
	})
	if isTerminal(os.Stderr) {
		fmt.Fprintln(os.Stderr)
	}
	if cerr := cat.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fail("%v; nothing was written to %s", err, final)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail("%v", err)
	}
	took := time.Since(start)
	fmt.Fprintf(os.Stderr, "%s: %s written from %d tape files (%d bytes read): %d batches, %d files, %d purged batches left out, in %s (%.0f files/s); start the daemon\n",
		cmd, final, st.TapeFiles, st.BytesRead, st.Batches, st.Files, st.Purged, took.Round(time.Millisecond), float64(st.Files)/max(took.Seconds(), 1e-9))
	return 0
}

// restoreSnapshot copies a snapshot from tape into path.
func restoreSnapshot(ctx context.Context, lib tape.Library, s archive.SnapshotOnTape, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := archive.ReadSnapshot(ctx, lib, s, f); err != nil {
		f.Close()
		return fmt.Errorf("read the catalog snapshot from tape file %d of %s: %w", s.TapeFile, s.VOLSER, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
