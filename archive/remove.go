package archive

import (
	"fmt"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// RemoveEntry hides one entry of a batch tree (rm of a file or an emptied
// directory inside a batch): recorded in the catalog, restored by Undelete.
func (e *Engine) RemoveEntry(fileID uint64) error {
	return e.cat.Update(func(tx *catalog.Tx) error {
		f, err := tx.File(fileID)
		if err != nil {
			return err
		}
		f.Removed = true
		return tx.PutFile(f)
	})
}

// Remove soft-deletes a batch. It stays restorable with Undelete for the
// retention period; then it is purged and its tape space is reclaimable.
func (e *Engine) Remove(batch uint64) (catalog.Batch, error) {
	var b catalog.Batch
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		var err error
		now := e.now()
		b, err = tx.RemoveBatch(batch, now)
		if err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: now, Workspace: b.Workspace, Batch: b.ID, Kind: EvDeleted, State: catalog.Deleted,
			Message: fmt.Sprintf("batch %d deleted; restorable with 'tapefs undelete -b %d' until %s", b.ID, b.ID, e.PurgeTime(b).Format(time.RFC3339))})
	})
	return b, err
}

// PurgeTime is when a deleted batch stops being restorable.
func (e *Engine) PurgeTime(b catalog.Batch) time.Time { return b.Deleted.Add(e.cfg.Retention) }

// Undelete brings back a soft-deleted batch, with every entry that was
// removed from its tree.
func (e *Engine) Undelete(batch uint64) (catalog.Batch, error) {
	var b catalog.Batch
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		var err error
		b, err = tx.UndeleteBatch(batch)
		if err != nil {
			return err
		}
		var after uint64
		for {
			files, err := tx.Files(b.ID, after, 10_000)
			if err != nil {
				return err
			}
			for _, f := range files {
				if f.Removed {
					f.Removed = false
					if err := tx.PutFile(f); err != nil {
						return err
					}
				}
			}
			if len(files) < 10_000 {
				break
			}
			after = files[len(files)-1].ID
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, Kind: EvUndeleted, State: b.State,
			Message: fmt.Sprintf("batch %d undeleted (%s)", b.ID, b.State)})
	})
	return b, err
}

// retentionLoop purges deleted batches whose retention has passed.
func (e *Engine) retentionLoop() {
	tick := min(max(e.cfg.Retention/10, time.Second), time.Minute)
	for {
		e.purgeExpired()
		if !e.sleep(tick) {
			return
		}
	}
}

func (e *Engine) purgeExpired() {
	var expired []catalog.Batch
	now := e.now()
	_ = e.cat.View(func(tx *catalog.Tx) error {
		bs, err := tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.Deleted}})
		for _, b := range bs {
			if !now.Before(e.PurgeTime(b)) {
				expired = append(expired, b)
			}
		}
		return err
	})
	for _, b := range expired {
		if err := e.purge(b); err != nil {
			e.log.Error().Err(err).Uint64("batch", b.ID).Str("workspace", b.Workspace).Msg("purge failed; retried later")
		}
	}
}

// purge drops a batch from the catalog and its objects from the cache. A
// batch whose data never reached tape keeps its objects until it did (the
// migration of a deleted batch goes on), so purge waits for that.
func (e *Engine) purge(b catalog.Batch) error {
	if !b.Prior.OnTape() {
		return nil
	}
	var ids []uint64
	if err := e.eachDataFile(b, func(f catalog.File) error {
		ids = append(ids, f.ID)
		return nil
	}); err != nil {
		return err
	}
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		if err := tx.PurgeBatch(b.ID); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, Kind: EvPurged,
			Message: fmt.Sprintf("batch %d purged after its retention period; its %d bytes of tape space are reclaimable", b.ID, b.OnTape)})
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		_ = e.cache.Remove(id)
	}
	return nil
}
