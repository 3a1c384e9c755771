package archive

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
	"github.com/tapefs/tapefs/tape"
)

// snapshotsKept is how many snapshot files stay in SnapshotDir; the tape
// keeps every one.
const snapshotsKept = 7

// snapshotLoop takes a snapshot every SnapshotEvery. The first is due
// SnapshotEvery after the newest one in SnapshotDir (at once when there is
// none), so a daemon restarted more often than that still takes them.
func (e *Engine) snapshotLoop() {
	wait := time.Duration(0)
	if newest, ok := newestSnapshotFile(e.cfg.SnapshotDir); ok {
		wait = max(e.cfg.SnapshotEvery-time.Since(newest), 0)
	}
	for e.sleep(wait) {
		wait = e.cfg.SnapshotEvery
		// Several hosts: one takes the snapshots (roles.go); the others
		// look again often enough to take over within a lease or two.
		if !e.leads(roleSnapshot) {
			wait = e.takeoverTick(wait)
			continue
		}
		if last := e.roleLast(roleSnapshot); !last.IsZero() && e.now().Before(last.Add(e.cfg.SnapshotEvery)) {
			wait = last.Add(e.cfg.SnapshotEvery).Sub(e.now()) // another host took the last one
			continue
		}
		if _, err := e.Snapshot(); err != nil && e.ctx.Err() != nil {
			return // stopped mid-snapshot (waiting for a drive): not a failure
		} else if err != nil {
			e.log.Error().Err(err).Msg("catalog snapshot failed; tried again at the next one")
			e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
				return pl.record(tx, catalog.Event{Time: e.now(), Kind: EvFailed, Message: "catalog snapshot failed: " + err.Error()})
			}), "an event of the log (the failure above says what happened)", nil)
		} else {
			e.roleDone(roleSnapshot)
		}
	}
}

// Snapshot copies the catalog, consistently and while it is in use, into
// SnapshotDir and then onto tape as a tape file of its own. It returns the
// snapshot file. A lost home is recovered from the newest snapshot on tape
// plus the tape files written after it (tapefs catalog restore).
func (e *Engine) Snapshot() (string, error) {
	dir := e.cfg.SnapshotDir
	if dir == "" {
		return "", fmt.Errorf("catalog snapshot: no snapshot directory configured")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("catalog snapshot: %w", err)
	}
	taken := e.now()
	path := filepath.Join(dir, "catalog-"+taken.UTC().Format("20060102T150405.000000000Z")+".db")
	size, err := e.cat.WriteSnapshot(path)
	if err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := tape.Snapshot{Taken: taken, Size: size}
	volser, err := e.pickCartridge(tape.SnapshotSize(s), "", anyCartridge)
	if err != nil {
		return path, fmt.Errorf("catalog snapshot %s kept on disk, not on tape: %w", path, err)
	}
	d, err := e.lib.Acquire(e.ctx, volser)
	if err != nil {
		return path, err
	}
	tapeFile, err := d.SeekEOD()
	if err == nil {
		bw := bufio.NewWriterSize(d, 1<<20)
		if err = tape.WriteSnapshot(bw, s, f); err == nil {
			if err = bw.Flush(); err == nil {
				err = d.WriteFilemark()
			}
		}
	}
	e.lib.Release(d)
	if err != nil {
		return path, fmt.Errorf("catalog snapshot %s kept on disk; writing it to %s failed: %w", path, volser, err)
	}
	info, err := e.lib.Cartridge(volser)
	if err != nil {
		return path, err
	}
	err = e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		if err := tx.PutCartridge(cartridgeRecord(info)); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), VOLSER: volser, Kind: EvSnapshot,
			Message: fmt.Sprintf("catalog snapshot of %s (%s) written to %s and to tape file %d on %s", taken.Format(time.RFC3339), human.Size(size), path, tapeFile, volser)})
	})
	if err != nil {
		return path, err
	}
	e.log.Info().Str("volser", volser).Int("tape_file", tapeFile).Int64("bytes", size).Str("path", path).Msg("catalog snapshot written")
	pruneSnapshots(dir)
	return path, nil
}

// newestSnapshotFile is the modification time of the newest snapshot in
// dir.
func newestSnapshotFile(dir string) (time.Time, bool) {
	names := snapshotFiles(dir)
	if len(names) == 0 {
		return time.Time{}, false
	}
	st, err := os.Stat(filepath.Join(dir, names[len(names)-1]))
	if err != nil {
		return time.Time{}, false
	}
	return st.ModTime(), true
}

// snapshotFiles lists the snapshots of dir, oldest first (the names sort
// by time).
func snapshotFiles(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "catalog-") && strings.HasSuffix(e.Name(), ".db") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}

// pruneSnapshots keeps the newest snapshotsKept files of dir.
func pruneSnapshots(dir string) {
	names := snapshotFiles(dir)
	for len(names) > snapshotsKept {
		os.Remove(filepath.Join(dir, names[0]))
		names = names[1:]
	}
}
