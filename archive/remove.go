package archive

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
)

// Removal inside a batch is provisional. rm, mv out of the batch and rsync
// --delete all end in unlink/rmdir of entries of a batch tree, and the mount
// cannot tell them from the first steps of `rm -r MOUNT/ws/ID`, which must
// delete the batch. So such a removal only hides the entry (File.Removed)
// and is recorded on the batch (Batch.Removal, in the catalog: a restart
// keeps it). It becomes a deletion when the batch directory itself is
// removed (RemoveEmptied: soft delete, undone by Undelete); it is undone,
// with an event, when that does not follow within Config.RemoveGrace of the
// last removal, or at once by Undelete. No sequence of ordinary tool
// operations short of removing the batch directory takes data out of the
// archive, and none does it silently.

// Refusals of RemoveEntry and RemoveEmptied, for errors.Is. They are the
// system's own answers to rmdir and unlink, and carry that errno, which
// the mount passes through.
var (
	ErrNotEmpty = fmt.Errorf("directory not empty: %w", syscall.ENOTEMPTY)
	ErrIsDir    = fmt.Errorf("is a directory: %w", syscall.EISDIR)
	ErrNotDir   = fmt.Errorf("not a directory: %w", syscall.ENOTDIR)
)

// RemoveEntry hides the entry name of directory parent (0: the top level)
// of a live batch of workspace ws: rm (dir false) or rmdir (dir true) inside
// a batch tree. The removal is provisional (see above). It returns the
// hidden entry.
func (e *Engine) RemoveEntry(ws string, batch, parent uint64, name string, dir bool) (catalog.File, error) {
	var f catalog.File
	var b catalog.Batch
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		var err error
		if b, err = liveBatch(tx, ws, batch); err != nil {
			return err
		}
		if f, err = tx.Lookup(batch, parent, name); err != nil {
			return err
		}
		switch {
		case f.Removed:
			return fmt.Errorf("%s was removed: %w", f.Path, catalog.ErrNotFound)
		case dir && f.Type != catalog.TypeDir:
			return fmt.Errorf("rmdir %s: %w", f.Path, ErrNotDir)
		case !dir && f.Type == catalog.TypeDir:
			return fmt.Errorf("unlink %s: %w", f.Path, ErrIsDir)
		case dir:
			visible, err := hasVisibleChildren(tx, batch, f.ID)
			if err != nil {
				return err
			}
			if visible {
				return fmt.Errorf("rmdir %s: %w", f.Path, ErrNotEmpty)
			}
		}
		f.Removed = true
		if err := tx.PutFile(f); err != nil {
			return err
		}
		now := e.now()
		first := !b.Removal.Pending()
		if first {
			b.Removal.Started = now
		}
		b.Removal.Hidden++
		b.Removal.Last = now
		if err := tx.PutBatch(b); err != nil {
			return err
		}
		if !first {
			return nil
		}
		return pl.record(tx, catalog.Event{Time: now, Workspace: b.Workspace, Batch: b.ID, Kind: EvRemoving, State: b.State,
			Message: fmt.Sprintf("removal in batch %d started (rm of %s): entries removed inside a batch are only hidden; "+
				"removing the batch directory (rm -r MOUNT/%s/%d) deletes the batch, otherwise they come back %s after the last removal "+
				"('tapefs undelete -b %d' brings them back now)", b.ID, f.Path, b.Workspace, b.ID, e.cfg.RemoveGrace, b.ID)})
	})
	if err != nil {
		return f, err
	}
	e.mu.Lock()
	e.removing[batch] = b.Removal.Last
	e.mu.Unlock()
	return f, nil
}

// liveBatch reads a batch of the workspace that is part of the holdings.
func liveBatch(tx *catalog.Tx, ws string, id uint64) (catalog.Batch, error) {
	b, err := tx.Batch(id)
	if err != nil {
		return b, err
	}
	if b.Workspace != ws || !b.State.Live() {
		return b, fmt.Errorf("batch %d of workspace %s: %w", id, ws, catalog.ErrNotFound)
	}
	return b, nil
}

// hasVisibleChildren reports whether a directory of a batch (parent 0: its
// top level) still shows an entry.
func hasVisibleChildren(tx *catalog.Tx, batch, parent uint64) (bool, error) {
	after := ""
	for {
		names, err := tx.ChildNames(batch, parent, after, 256)
		if err != nil {
			return false, err
		}
		for _, n := range names {
			if !n.Removed {
				return true, nil
			}
			after = n.Name
		}
		if len(names) < 256 {
			return false, nil
		}
	}
}

// RemoveEmptied soft-deletes a live batch of workspace ws whose tree rm has
// emptied: rmdir of the batch directory, the last step of rm -r. The
// entries hidden on the way are deleted with the batch (Undelete brings
// every one back).
func (e *Engine) RemoveEmptied(ws string, batch uint64) (catalog.Batch, error) {
	return e.remove(batch, func(tx *catalog.Tx, b catalog.Batch) error {
		if b.Workspace != ws || !b.State.Live() {
			return fmt.Errorf("batch %d of workspace %s: %w", batch, ws, catalog.ErrNotFound)
		}
		visible, err := hasVisibleChildren(tx, batch, 0)
		if err == nil && visible {
			err = fmt.Errorf("batch %d: %w", batch, ErrNotEmpty)
		}
		return err
	})
}

// Remove soft-deletes a batch. It stays restorable with Undelete for the
// retention period; then it is purged and its tape space is reclaimable.
func (e *Engine) Remove(batch uint64) (catalog.Batch, error) {
	return e.remove(batch, nil)
}

// remove soft-deletes a batch after check (if any) has passed in the same
// transaction.
func (e *Engine) remove(batch uint64, check func(*catalog.Tx, catalog.Batch) error) (catalog.Batch, error) {
	var b catalog.Batch
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		before, err := tx.Batch(batch)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(tx, before); err != nil {
				return err
			}
		}
		now := e.now()
		if b, err = tx.RemoveBatch(batch, now); err != nil {
			return err
		}
		msg := fmt.Sprintf("batch %d deleted; restorable with 'tapefs undelete -b %d' until %s", b.ID, b.ID, e.PurgeTime(b).Format(time.RFC3339))
		if n := before.Removal.Hidden; n > 0 {
			msg = fmt.Sprintf("batch %d deleted (after %s inside it were removed); restorable, all of it, with 'tapefs undelete -b %d' until %s",
				b.ID, entries(n), b.ID, e.PurgeTime(b).Format(time.RFC3339))
		}
		return pl.record(tx, catalog.Event{Time: now, Workspace: b.Workspace, Batch: b.ID, Kind: EvDeleted, State: catalog.Deleted, Message: msg})
	})
	if err == nil {
		e.forgetRemoval(batch)
	}
	return b, err
}

// entries is "1 entry" or "N entries".
func entries(n int64) string {
	if n == 1 {
		return "1 entry"
	}
	return fmt.Sprintf("%d entries", n)
}

// PurgeTime is when a deleted batch stops being restorable.
func (e *Engine) PurgeTime(b catalog.Batch) time.Time { return b.Deleted.Add(e.cfg.Retention) }

// Undelete brings back a soft-deleted batch, with every entry that was
// removed from its tree; of a live batch with a removal in progress, it
// brings back the hidden entries at once.
func (e *Engine) Undelete(batch uint64) (catalog.Batch, error) {
	var b catalog.Batch
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		var err error
		if b, err = tx.Batch(batch); err != nil {
			return err
		}
		if b.State.Live() && b.Removal.Pending() {
			b, err = e.undoRemoval(tx, pl, b, "by tapefs undelete")
			return err
		}
		if b.State.Live() {
			return fmt.Errorf("batch %d is not deleted (state %s) and no removal inside it is in progress: nothing to undelete", batch, b.State)
		}
		if b, err = tx.UndeleteBatch(batch); err != nil {
			return err
		}
		if _, err := unhide(tx, b.ID); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, Kind: EvUndeleted, State: b.State,
			Message: fmt.Sprintf("batch %d undeleted (%s)", b.ID, b.State)})
	})
	if err == nil {
		e.forgetRemoval(batch)
	}
	return b, err
}

// unhide clears File.Removed on every entry of a batch and counts them.
func unhide(tx *catalog.Tx, batch uint64) (int64, error) {
	var n int64
	var after uint64
	for {
		files, err := tx.Files(batch, after, 10_000)
		if err != nil {
			return n, err
		}
		for _, f := range files {
			if f.Removed {
				f.Removed = false
				if err := tx.PutFile(f); err != nil {
					return n, err
				}
				n++
			}
		}
		if len(files) < 10_000 {
			return n, nil
		}
		after = files[len(files)-1].ID
	}
}

// undoRemoval brings back the entries a removal in progress hid in a live
// batch, with an event saying which batch, how many entries and why.
func (e *Engine) undoRemoval(tx *catalog.Tx, pl *pendingLog, b catalog.Batch, why string) (catalog.Batch, error) {
	n, err := unhide(tx, b.ID)
	if err != nil {
		return b, err
	}
	b.Removal = catalog.Removal{}
	if err := tx.PutBatch(b); err != nil {
		return b, err
	}
	return b, pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, Kind: EvRemovalUndone, State: b.State,
		Message: fmt.Sprintf("removal in batch %d undone %s: %s visible again. Removing entries inside a batch takes nothing out of the archive; "+
			"to delete the batch remove its directory (rm -r MOUNT/%s/%d) or run 'tapefs rm -b %d'", b.ID, why, entries(n), b.Workspace, b.ID, b.ID)})
}

// forgetRemoval drops a batch from the removals the grace loop watches.
func (e *Engine) forgetRemoval(batch uint64) {
	e.mu.Lock()
	delete(e.removing, batch)
	e.mu.Unlock()
}

// loadRemovals finds the removals in progress a previous run left (and,
// on a shared catalog, those begun through other hosts): their grace
// period goes on from the last removal recorded.
func (e *Engine) loadRemovals() error {
	var pending []catalog.Batch
	err := e.cat.View(func(tx *catalog.Tx) error {
		pending = pending[:0]
		bs, err := tx.Batches(catalog.ListOptions{})
		for _, b := range bs {
			if b.State.Live() && b.Removal.Pending() {
				pending = append(pending, b)
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, b := range pending {
		e.mu.Lock()
		_, known := e.removing[b.ID]
		if last := e.removing[b.ID]; b.Removal.Last.After(last) {
			e.removing[b.ID] = b.Removal.Last
		}
		e.mu.Unlock()
		if !known {
			e.log.Info().Uint64("batch", b.ID).Str("workspace", b.Workspace).Int64("hidden", b.Removal.Hidden).
				Time("last", b.Removal.Last).Msg("removal in progress found in the catalog; undone when its grace period ends")
		}
	}
	return nil
}

// removalLoop undoes removals whose batch directory was not removed within
// the grace period.
func (e *Engine) removalLoop() {
	tick := min(max(e.cfg.RemoveGrace/4, 50*time.Millisecond), time.Second)
	var scanned time.Time
	for {
		// Several hosts: removals begun through a host that died are
		// ended by the one running this role (roles.go), read from the
		// catalog now and then.
		if e.shared() && time.Since(scanned) >= max(e.cfg.RemoveGrace/2, tick) && e.leads(roleRemovalGrace) {
			if err := e.loadRemovals(); err != nil {
				e.log.Warn().Err(err).Msg("reading the removals in progress of every host failed; read again")
			}
			scanned = time.Now()
		}
		e.undoExpiredRemovals()
		if !e.sleep(tick) {
			return
		}
	}
}

func (e *Engine) undoExpiredRemovals() {
	now := e.now()
	var due []uint64
	e.mu.Lock()
	for id, last := range e.removing {
		if !now.Before(last.Add(e.cfg.RemoveGrace)) {
			due = append(due, id)
		}
	}
	e.mu.Unlock()
	for _, id := range due {
		var again time.Time // a removal after the one seen: wait longer
		err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			again = time.Time{}
			b, err := tx.Batch(id)
			if errors.Is(err, catalog.ErrNotFound) || err == nil && (!b.State.Live() || !b.Removal.Pending()) {
				return nil // deleted, undeleted or purged meanwhile
			}
			if err != nil {
				return err
			}
			if now.Before(b.Removal.Last.Add(e.cfg.RemoveGrace)) {
				again = b.Removal.Last
				return nil
			}
			_, err = e.undoRemoval(tx, pl, b, fmt.Sprintf("because the batch directory was not removed within %s of the last removal (%s)",
				e.cfg.RemoveGrace, b.Removal.Last.Format(time.RFC3339)))
			return err
		})
		if err != nil {
			e.log.Error().Err(err).Uint64("batch", id).Msg("undoing an expired removal failed; retried")
			continue
		}
		e.mu.Lock()
		if again.IsZero() {
			if last, ok := e.removing[id]; ok && !now.Before(last.Add(e.cfg.RemoveGrace)) {
				delete(e.removing, id)
			}
		} else if last := e.removing[id]; last.Before(again) {
			e.removing[id] = again
		}
		e.mu.Unlock()
	}
}

// retentionLoop purges deleted batches whose retention has passed.
func (e *Engine) retentionLoop() {
	tick := min(max(e.cfg.Retention/10, time.Second), time.Minute)
	for {
		if e.leads(rolePurge) { // one host purges for all (roles.go)
			e.purgeExpired()
		}
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
	if len(expired) > 0 {
		e.wakeRepack() // dead bytes: a cartridge may have fallen below the repack threshold
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
			Message: fmt.Sprintf("batch %d purged after its retention period; its %s of tape space are reclaimable", b.ID, human.Size(b.OnTape))})
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.cache.Remove(id); err != nil && !errors.Is(err, cache.ErrNotCached) {
			e.log.Error().Err(err).Uint64("batch", b.ID).Str("workspace", b.Workspace).Uint64("file", id).
				Msg("purged batch: its cached object could not be removed; the cache's next start drops it")
		}
	}
	return nil
}
