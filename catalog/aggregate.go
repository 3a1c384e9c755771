package catalog

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// CommitAggregate records, in the caller's transaction, that one aggregate
// is on tape: the file copies, the bytes per batch, the cartridge after the
// write, the batches now wholly on tape (with a.Time as their Synced time;
// their migrate jobs are done) and the events telling it.
func (tx *Tx) CommitAggregate(a AggregateCommit) error {
	if len(a.Synced) > 0 && a.Time.IsZero() {
		return errors.New("commit aggregate: Time is not set; it becomes the Synced time of the synced batches")
	}
	if err := tx.CheckFence(a.Fence); err != nil {
		return fmt.Errorf("commit aggregate: %w", err)
	}
	// Sorted, so the writes go through the store in key order.
	for _, id := range slices.Sorted(maps.Keys(a.Copies)) {
		f, err := tx.File(id)
		if err != nil {
			return fmt.Errorf("commit aggregate: %w", err)
		}
		if f.Link != 0 {
			return fmt.Errorf("commit aggregate: file %d (%s) is a hard link to file %d: record the copy on the file owning the data", id, f.Path, f.Link)
		}
		f.Copies = append(f.Copies, a.Copies[id])
		if err := tx.putTape(&f); err != nil {
			return err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(a.OnTape)) {
		b, err := tx.Batch(id)
		if err != nil {
			return fmt.Errorf("commit aggregate: %w", err)
		}
		b.OnTape += a.OnTape[id]
		if err := tx.put(batchKey(id), &b); err != nil {
			return err
		}
	}
	if a.Cartridge.VOLSER != "" {
		if err := tx.PutCartridge(a.Cartridge); err != nil {
			return err
		}
	}
	for _, id := range a.Synced {
		if err := tx.markSynced(id, a); err != nil {
			return fmt.Errorf("commit aggregate: %w", err)
		}
	}
	for _, e := range a.Events {
		if _, err := tx.AppendEvent(e); err != nil {
			return err
		}
	}
	return nil
}

// markSynced makes batch id CachedSynced and drops its migrate jobs. A
// batch deleted while it was being written stays deleted, but comes back
// as CachedSynced if undeleted.
func (tx *Tx) markSynced(id uint64, a AggregateCommit) error {
	b, err := tx.Batch(id)
	if err != nil {
		return err
	}
	if b.State == Deleted {
		b.Prior = CachedSynced
	} else {
		b.State = CachedSynced
	}
	b.Synced = a.Time
	if err := tx.put(batchKey(id), &b); err != nil {
		return err
	}
	jobs, err := tx.batchJobs(id)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Kind == JobMigrate {
			if err := tx.deleteJob(j); err != nil {
				return err
			}
		}
	}
	return nil
}

// ReplaceCopy switches a file's reference from copy old to copy new, in
// old's place in File.Copies (the order in which recalls try them). It
// fails if the file no longer refers to old (purged, or switched already),
// so a caller retrying after a crash cannot record a copy twice.
func (tx *Tx) ReplaceCopy(id uint64, old, new Copy) error {
	f, err := tx.File(id)
	if err != nil {
		return fmt.Errorf("replace copy: %w", err)
	}
	i := slices.Index(f.Copies, old)
	if i < 0 {
		return fmt.Errorf("replace copy of file %d (%s): it has no copy on %s tape file %d at %d: %w", id, f.Path, old.VOLSER, old.TapeFile, old.Offset, ErrNotFound)
	}
	f.Copies[i] = new
	return tx.putTape(&f)
}

// DropCopies forgets every copy on a cartridge (it was erased since they
// were recorded) and returns how many files lost one. The bytes on tape of
// the batches concerned are lowered to match.
func (tx *Tx) DropCopies(volser string) (int, error) {
	ids, err := tx.filesWithTapeOn(volser)
	if err != nil {
		return 0, err
	}
	changed := make([]File, 0, len(ids))
	for _, id := range ids {
		f, err := tx.File(id)
		if err != nil {
			return 0, fmt.Errorf("drop copies on %s: %w", volser, err)
		}
		changed = append(changed, f)
	}
	lost := map[uint64]int64{}
	for _, f := range changed {
		f.Copies = slices.DeleteFunc(f.Copies, func(c Copy) bool {
			if c.VOLSER == volser {
				lost[f.Batch] += c.Length
				return true
			}
			return false
		})
		if err := tx.putTape(&f); err != nil {
			return 0, err
		}
	}
	for _, id := range slices.Sorted(maps.Keys(lost)) {
		b, err := tx.Batch(id)
		if err != nil {
			continue
		}
		b.OnTape = max(0, b.OnTape-lost[id])
		if err := tx.put(batchKey(id), &b); err != nil {
			return 0, err
		}
	}
	return len(changed), nil
}
