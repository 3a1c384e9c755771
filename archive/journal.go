package archive

import (
	"bufio"
	"fmt"
	"slices"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
	"github.com/tapefs/tapefs/tape"
)

// The journal writes to tape what changes after a batch's data is on tape
// and the catalog alone would otherwise know: a batch removed, undeleted or
// purged, and workspace settings. It follows the event log (so the places
// that make those changes need not know about tape) from a cursor kept in
// the catalog, and writes the records as a tape file of their own once the
// oldest pending change is FlushAge old. A crash between the tape write and
// the cursor's commit writes the records again: replaying them is
// idempotent.

// journalKinds are the events whose change must reach tape. A workspace
// change alone does not make a tape file: every aggregate opens with its
// workspace's record, and every journal tape file carries all of them.
var journalKinds = map[string]bool{EvDeleted: true, EvUndeleted: true, EvPurged: true, EvCartridge: true}

func (e *Engine) journalLoop() {
	tick := min(max(e.cfg.FlushAge/4, 50*time.Millisecond), 5*time.Second)
	for {
		if !e.leads(roleJournal) {
			// Another host writes the journal (roles.go).
		} else if err := e.JournalOnce(false); err != nil {
			// The catalog still holds the change; the tapes get it later.
			e.log.Warn().Err(err).Msg("journal: writing removals to tape failed; retried")
		}
		if !e.sleep(tick) {
			return
		}
	}
}

// JournalOnce writes pending changes to tape (force: whatever their age).
func (e *Engine) JournalOnce(force bool) error {
	var cursor, last uint64
	var pending []catalog.Event
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		if cursor, err = tx.JournalCursor(); err != nil {
			return err
		}
		evs, err := tx.Events(cursor, 10_000, "")
		for _, ev := range evs {
			last = ev.Seq
			if journalKinds[ev.Kind] {
				pending = append(pending, ev)
			}
		}
		return err
	})
	if err != nil || last == 0 {
		return err
	}
	if len(pending) == 0 {
		// Nothing for the tapes: just move on.
		return e.cat.Update(func(tx *catalog.Tx) error { return tx.SetJournalCursor(last) })
	}
	if !force && e.now().Sub(pending[0].Time) < e.cfg.FlushAge {
		return nil
	}
	var records []tape.Record
	err = e.cat.View(func(tx *catalog.Tx) error {
		records = records[:0]
		batches := map[uint64]bool{}
		carts := map[string]bool{}
		for _, ev := range pending {
			if ev.Kind == EvCartridge {
				if ev.VOLSER == "" || carts[ev.VOLSER] {
					continue
				}
				carts[ev.VOLSER] = true
				c, err := tx.Cartridge(ev.VOLSER)
				if err != nil {
					return err
				}
				records = append(records, cartridgeAdminRecord(c, ev.Time))
				continue
			}
			if ev.Batch == 0 || batches[ev.Batch] {
				continue
			}
			batches[ev.Batch] = true
			// The batch as it is now: records of later events of the same
			// batch would say the same.
			b, err := tx.Batch(ev.Batch)
			if err != nil {
				records = append(records, stateRecord(catalog.Batch{ID: ev.Batch, Workspace: ev.Workspace}, true, ev.Time, nil))
				continue
			}
			var removed []uint64
			if err := forEachFile(tx, b, func(f catalog.File) {
				if f.Removed {
					removed = append(removed, f.ID)
				}
			}); err != nil {
				return err
			}
			records = append(records, stateRecord(b, false, ev.Time, removed))
		}
		ws, err := tx.Workspaces()
		if err != nil {
			return err
		}
		for _, w := range ws {
			records = append(records, workspaceRecord(w))
		}
		return nil
	})
	if err != nil {
		return err
	}
	volser, tapeFile, size, err := e.writeRecords(records)
	if err != nil {
		return err
	}
	info, err := e.lib.Cartridge(volser)
	if err != nil {
		return err
	}
	return e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		if err := tx.SetJournalCursor(last); err != nil {
			return err
		}
		if err := tx.PutCartridge(cartridgeRecord(info)); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), VOLSER: volser, Kind: EvJournal,
			Message: fmt.Sprintf("tape file %d written on %s: %d change(s) of batches and workspaces, %s", tapeFile, volser, len(records), human.Size(size))})
	})
}

// writeRecords writes records as one tape file, closed by its time.
func (e *Engine) writeRecords(records []tape.Record) (volser string, tapeFile int, size int64, err error) {
	closed := e.now()
	all := append(slices.Clone(records), closedRecord(closed, ""))
	need := int64(tape.TrailerSize)
	for _, r := range all {
		need += tape.RecordSize(r)
	}
	if volser, err = e.pickCartridge(need, "", anyCartridge); err != nil {
		return "", 0, 0, err
	}
	d, err := e.lib.Acquire(e.ctx, volser)
	if err != nil {
		return "", 0, 0, err
	}
	defer e.lib.Release(d)
	if tapeFile, err = d.SeekEOD(); err != nil {
		return "", 0, 0, err
	}
	bw := bufio.NewWriterSize(d, 1<<16)
	aw := tape.NewAggregateWriter(bw)
	for _, r := range all {
		if err := aw.AddRecord(r); err != nil {
			return "", 0, 0, err
		}
	}
	if err := aw.Close(); err != nil {
		return "", 0, 0, err
	}
	if err := bw.Flush(); err != nil {
		return "", 0, 0, err
	}
	if err := d.WriteFilemark(); err != nil {
		return "", 0, 0, err
	}
	return volser, tapeFile, aw.Written(), nil
}

func cartridgeRecord(info tape.CartridgeInfo) catalog.CartridgeRecord {
	return catalog.CartridgeRecord{VOLSER: info.VOLSER, Capacity: info.Capacity, Used: info.Used, State: string(info.State), TapeFiles: info.TapeFiles, Generation: info.Generation}
}

// forEachFile calls fn for every file of b, in ID order, inside tx.
func forEachFile(tx *catalog.Tx, b catalog.Batch, fn func(catalog.File)) error {
	var after uint64
	for {
		files, err := tx.Files(b.ID, after, 10_000)
		if err != nil {
			return err
		}
		for _, f := range files {
			fn(f)
		}
		if len(files) < 10_000 {
			return nil
		}
		after = files[len(files)-1].ID
	}
}
