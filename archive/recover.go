package archive

import (
	"errors"
	"fmt"

	"github.com/tapefs/tapefs/catalog"
)

// recover brings the cache and the queues back in line with the catalog
// after a stop or a crash. Nothing here trusts memory from the last run.
//
// With several hosts on the catalog it touches only this host's work —
// batches whose data is in its cache, its own jobs — and jobs of hosts
// whose heartbeat lapsed (hosts.go): the others' work goes on meanwhile.
func (e *Engine) recover() error {
	var sealing, unsynced []catalog.Batch
	var recalls []catalog.Job
	claimed := map[string]bool{} // sealing directories of registered batches
	err := e.cat.View(func(tx *catalog.Tx) error {
		var hv hostView
		if e.shared() {
			var err error
			if hv, err = e.readHosts(tx); err != nil {
				return err
			}
		}
		jobs, err := tx.Jobs(catalog.JobSeal)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			b, err := tx.Batch(j.Batch)
			if err != nil {
				return fmt.Errorf("seal job %d: %w", j.ID, err)
			}
			if !e.mine(b) {
				continue
			}
			if e.shared() && j.Owner != "" && j.Owner != e.hostID() && hv.alive(j.Owner) {
				// Another host took this seal over while this one was
				// down (sealtakeover.go) and is finishing it.
				claimed[b.Sealing] = b.Sealing != ""
				continue
			}
			sealing = append(sealing, b)
		}
		all, err := tx.Jobs(catalog.JobRecall)
		if err != nil {
			return err
		}
		for _, j := range all {
			if e.ownJob(hv, j) {
				recalls = append(recalls, j)
			}
		}
		bs, err := tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.Caching, catalog.Cached, catalog.Syncing, catalog.Failed, catalog.Deleted}})
		for _, b := range bs {
			if e.mine(b) && b.Sealing == "" && !(b.State == catalog.Deleted && b.Prior.OnTape()) {
				unsynced = append(unsynced, b)
			}
		}
		return err
	})
	if err != nil {
		return err
	}

	// 1. Batches registered before the crash whose objects were not all
	// adopted, or whose checksums were not all computed. The adoption
	// happens here, before the mount and the control socket serve
	// anything: a visible batch's files are readable. The hashing goes on
	// in the background (sealLoop).
	for _, b := range sealing {
		if b.Sealing != "" {
			claimed[b.Sealing] = true
			if err := e.adopt(b); err != nil {
				e.failBatch(b, EvMissing, fmt.Sprintf("batch %d: its data could not be moved into the cache after a restart: %v", b.ID, err))
				continue
			}
			e.log.Info().Uint64("batch", b.ID).Str("workspace", b.Workspace).Msg("sealed batch adopted into the cache after restart")
			b.Sealing = ""
		}
		if needsHash(b) {
			e.log.Info().Uint64("batch", b.ID).Str("workspace", b.Workspace).Str("state", string(b.State)).Msg("checksums of a sealed batch are computed again after restart")
			e.queueHash(b)
		}
		unsynced = append(unsynced, b)
	}
	// 2. Entries moved out of put/ but never registered go back to put/.
	dirs, err := e.cache.SealingDirs()
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if claimed[d] {
			continue
		}
		if err := e.unseal(d); err != nil {
			e.log.Error().Err(err).Str("dir", d).Msg("an interrupted seal could not be undone; its files are kept in that directory")
		}
	}
	// 3. CLI puts cut off before their batch was sealed.
	var caching []catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		caching, err = tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.Caching}})
		return err
	}); err != nil {
		return fmt.Errorf("list puts cut off: %w", err)
	}
	for _, b := range caching {
		if !e.mine(b) {
			continue // a put into another host's cache: that host's to end
		}
		e.failBatch(b, EvFailed, fmt.Sprintf("tapefs put into batch %d was cut off (the daemon stopped) before all bytes arrived; nothing was archived, run tapefs put again", b.ID))
	}
	// 4. Migrations cut off mid-write start over (the uncommitted tape
	// file is gone; members already committed keep their copies).
	if err := e.cat.Update(func(tx *catalog.Tx) error {
		bs, err := tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.Syncing}})
		if err != nil {
			return err
		}
		adopted, err := e.adoptedElsewhere(tx)
		if err != nil {
			return err
		}
		for _, b := range bs {
			if !e.mine(b) || adopted[b.ID] {
				continue // another host's migration, or one a live host adopted
			}
			b.State = catalog.Cached
			if err := tx.PutBatch(b); err != nil {
				return err
			}
		}
		return err
	}); err != nil {
		return err
	}
	// 5. The cache against the catalog.
	e.checkCache(unsynced)
	if _, err := e.cache.Trim(); err != nil {
		e.log.Warn().Err(err).Msg("cache eviction at start failed")
	}
	// 6. Recalls in flight are queued again.
	var files []catalog.File
	var jobIDs []uint64
	if err := e.cat.View(func(tx *catalog.Tx) error {
		for _, j := range recalls {
			if e.shared() && j.Owner != "" && j.Owner != e.hostID() {
				continue // a dead host's: nobody here waits for it (dropped below)
			}
			f, err := tx.File(j.File)
			if errors.Is(err, catalog.ErrNotFound) {
				continue // purged since: nothing to recall
			}
			if err != nil {
				return err
			}
			files = append(files, f)
			jobIDs = append(jobIDs, j.ID)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read recalls of the last run: %w", err)
	}
	// The jobs are queued again below as new ones; a job left behind by a
	// failed delete would only recall a file twice, so that is logged,
	// not fatal.
	if err := e.cat.Update(func(tx *catalog.Tx) error {
		for _, j := range recalls {
			if err := tx.DeleteJob(j.ID); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		e.log.Error().Err(err).Int("jobs", len(recalls)).Msg("recall jobs of the last run could not be deleted; they may run twice")
	}
	if len(files) > 0 {
		if _, err := e.requestRecalls(files); err != nil {
			e.log.Error().Err(err).Msg("recalls of the last run could not be queued again")
		} else {
			e.log.Info().Int("files", len(files)).Msg("recalls of the last run queued again")
		}
	}
	return nil
}

// checkCache marks objects of batches on tape as synced (evictable), drops
// objects that are short or belong to nothing, and reports loudly every
// unsynced file whose object is missing: its only copy is gone.
func (e *Engine) checkCache(unsynced []catalog.Batch) {
	err := e.cat.View(func(tx *catalog.Tx) error {
		for _, o := range e.cache.Objects() {
			f, err := tx.File(o.ID)
			if errors.Is(err, catalog.ErrNotFound) {
				e.log.Warn().Uint64("file", o.ID).Msg("cache object of no catalog file removed")
				if err := e.cache.Remove(o.ID); err != nil {
					e.log.Error().Err(err).Uint64("file", o.ID).Msg("cache object of no catalog file could not be removed")
				}
				continue
			}
			if err != nil {
				return err
			}
			b, err := tx.Batch(f.Batch)
			if err != nil {
				continue
			}
			onTape := b.State.OnTape() || (b.State == catalog.Deleted && b.Prior.OnTape())
			if o.Size != f.Size {
				if onTape {
					e.log.Warn().Uint64("file", o.ID).Uint64("batch", b.ID).Str("workspace", b.Workspace).Msg("short cache object of a file on tape dropped")
					if err := e.cache.Remove(o.ID); err != nil {
						e.log.Error().Err(err).Uint64("file", o.ID).Uint64("batch", b.ID).Msg("short cache object could not be dropped; a read may find it short")
					}
				}
				continue
			}
			if onTape {
				e.cache.SetSynced(o.ID, true)
			}
		}
		return nil
	})
	if err != nil {
		// Objects not marked synced stay unevictable until the next
		// start: space, not data, is what is lost.
		e.log.Error().Err(err).Msg("cache check at start failed; objects of batches on tape stay unevictable until the next start")
	}
	for _, b := range unsynced {
		var missing []string
		if err := e.eachDataFile(b, func(f catalog.File) error {
			if len(f.Copies) > 0 {
				return nil
			}
			if info, ok := e.cache.Lookup(f.ID); !ok || info.Size != f.Size {
				missing = append(missing, f.Path)
			}
			return nil
		}); err != nil {
			e.log.Error().Err(err).Uint64("batch", b.ID).Str("workspace", b.Workspace).Msg("cache check of a batch not yet on tape failed; checked again at the next start")
			continue
		}
		if len(missing) > 0 {
			e.failBatch(b, EvMissing, fmt.Sprintf("batch %d: %d file(s) not yet on tape are missing or short in the cache (first: %s); their data is lost unless the cache disk is restored",
				b.ID, len(missing), missing[0]))
		}
	}
}

// failBatch marks a batch FAILED with an event.
func (e *Engine) failBatch(b catalog.Batch, kind, reason string) {
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		cur, err := tx.Batch(b.ID)
		if err != nil {
			return err
		}
		if cur.State == catalog.Caching {
			// A put that never delivered its bytes holds no space.
			ws, err := tx.Workspace(cur.Workspace)
			if err != nil {
				return err
			}
			ws.Used -= cur.Bytes
			cur.Bytes = 0
			if err := tx.PutWorkspace(ws); err != nil {
				return err
			}
		}
		if cur.State != catalog.Deleted {
			cur.State = catalog.Failed
		}
		cur.Reason = reason
		if err := tx.PutBatch(cur); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, Kind: kind, State: catalog.Failed, Message: reason})
	})
	if err != nil {
		// The batch keeps its state: the next start finds it again.
		e.log.Error().Err(err).Uint64("batch", b.ID).Str("workspace", b.Workspace).Str("reason", reason).Msg("batch could not be marked FAILED")
	}
}
