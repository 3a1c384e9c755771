package archive

import (
	"context"
	"fmt"

	"github.com/tapefs/tapefs/catalog"
)

// Status reports a batch and its progress.
func (e *Engine) Status(batch uint64) (Status, error) {
	var b catalog.Batch
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(batch)
		return err
	})
	if err != nil {
		return Status{}, err
	}
	return e.statusOf(b), nil
}

func (e *Engine) statusOf(b catalog.Batch) Status {
	s := Status{Batch: b}
	if b.State == catalog.Sealing {
		// The step in progress is hashing: its progress is what moves.
		s.Hashed, _ = e.hashed(b.ID)
		if b.Bytes > 0 {
			s.Progress = float64(s.Hashed) / float64(b.Bytes)
		}
		return s
	}
	switch {
	case b.Bytes > 0:
		// OnTape counts every copy written: progress is honest about the
		// second copy too.
		s.Progress = min(float64(b.OnTape)/float64(b.Bytes*int64(b.Want())), 1)
	case b.State.OnTape() || b.Prior.OnTape():
		s.Progress = 1
	}
	return s
}

// WaitBatch blocks until the batch is on tape (nil), FAILED (error) or ctx
// is done.
func (e *Engine) WaitBatch(ctx context.Context, batch uint64) (catalog.Batch, error) {
	for {
		ch := e.changedChan()
		st, err := e.Status(batch)
		if err != nil {
			return st.Batch, err
		}
		switch st.State {
		case catalog.CachedSynced, catalog.Synced:
			return st.Batch, nil
		case catalog.Failed:
			return st.Batch, fmt.Errorf("batch %d FAILED: %s", batch, st.Reason)
		case catalog.Deleted:
			return st.Batch, fmt.Errorf("batch %d was deleted", batch)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st.Batch, ctx.Err()
		}
	}
}

// EvictBatch drops the cached objects of a batch that is on tape (0 = every
// batch on tape). Open or pinned objects stay. A batch whose objects are all
// gone becomes SYNCED. It returns the bytes freed.
func (e *Engine) EvictBatch(batch uint64) (int64, error) {
	var batches []catalog.Batch
	err := e.cat.View(func(tx *catalog.Tx) error {
		if batch != 0 {
			b, err := tx.Batch(batch)
			batches = append(batches, b)
			return err
		}
		var err error
		batches, err = tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.CachedSynced}})
		return err
	})
	if err != nil {
		return 0, err
	}
	var freed int64
	for _, b := range batches {
		if !b.State.OnTape() {
			if batch != 0 {
				return 0, fmt.Errorf("batch %d is %s: only batches on tape can be evicted", b.ID, b.State)
			}
			continue
		}
		e.endTraversal(b.ID)
		left := 0
		if err := e.eachDataFile(b, func(f catalog.File) error {
			info, ok := e.cache.Lookup(f.ID)
			if !ok {
				return nil
			}
			if len(f.Copies) > 0 {
				// The catalog says it is on tape: the migration that
				// committed it may not have told the cache yet
				// (markSynced runs after the commit), and an evict
				// right after the state changed must not find it
				// "not yet on tape".
				e.cache.SetSynced(f.ID, true)
			}
			if err := e.cache.Evict(f.ID); err != nil {
				left++
				return nil
			}
			freed += info.Size
			return nil
		}); err != nil {
			return freed, fmt.Errorf("evict batch %d: %w", b.ID, err)
		}
		if left == 0 && b.State == catalog.CachedSynced {
			if err := e.setState(b.ID, catalog.CachedSynced, catalog.Synced, fmt.Sprintf("batch %d evicted from the cache; reading it recalls it from tape", b.ID)); err != nil {
				return freed, fmt.Errorf("batch %d evicted, but its state could not be recorded: %w", b.ID, err)
			}
		}
	}
	return freed, nil
}

// setState moves a batch from one state to another, with an event.
func (e *Engine) setState(id uint64, from, to catalog.State, msg string) error {
	return e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		b, err := tx.Batch(id)
		if err != nil {
			return err
		}
		if b.State != from {
			return nil
		}
		b.State = to
		if err := tx.PutBatch(b); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: id, Kind: EvState, State: to, Message: msg})
	})
}

// StatusOf is the status of a batch record already read.
func (e *Engine) StatusOf(b catalog.Batch) Status { return e.statusOf(b) }

// SetQuota changes a workspace's quota (0 = unlimited).
func (e *Engine) SetQuota(workspace string, quota int64) (catalog.Workspace, error) {
	var w catalog.Workspace
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		var err error
		if w, err = tx.Workspace(workspace); err != nil {
			return err
		}
		w.Quota = quota
		if err := tx.PutWorkspace(w); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: workspace, Kind: EvWorkspace,
			Message: fmt.Sprintf("quota of %s set: %s", workspace, quotaText(quota))})
	})
	return w, err
}
