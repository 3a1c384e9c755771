package archive

import (
	"fmt"
	"sync"

	"github.com/tapefs/tapefs/catalog"
)

// Batch states follow the cache: when the cache evicts objects by itself
// (its watermarks, when a seal or a recall needs room), the batches they
// belong to are no longer wholly cached, so CACHED_SYNCED becomes SYNCED
// as it does for `tapefs cache evict`.
//
// The cache reports evictions with its lock held (cache.OnEvict), so the
// report only queues the ID here; evictWatch.mu is a leaf lock, never held
// while calling anything.

type evictWatch struct {
	mu   sync.Mutex
	ids  []uint64
	wake chan struct{}
}

func newEvictWatch() *evictWatch { return &evictWatch{wake: make(chan struct{}, 1)} }

// objectEvicted is the cache's OnEvict hook.
func (e *Engine) objectEvicted(id uint64) {
	w := e.evicted
	w.mu.Lock()
	w.ids = append(w.ids, id)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// evictLoop moves the batches of evicted objects to SYNCED.
func (e *Engine) evictLoop() {
	w := e.evicted
	for {
		select {
		case <-w.wake:
		case <-e.ctx.Done():
			return
		}
		w.mu.Lock()
		ids := w.ids
		w.ids = nil
		w.mu.Unlock()
		e.batchesEvicted(ids)
	}
}

// reconcileCachedSynced runs once at start: a batch recorded CACHED_SYNCED
// whose objects are not all in the cache any more (the cache disk was
// replaced or wiped while the daemon was down, or an object was dropped
// as damaged) is SYNCED, as if the cache had evicted them. It runs in
// the background: a large cache takes a while to check, and nothing waits
// for it (a read of such a file recalls it either way).
func (e *Engine) reconcileCachedSynced() {
	var after uint64
	for e.ctx.Err() == nil {
		var bs []catalog.Batch
		if err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			bs, err = tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.CachedSynced}, After: after, Limit: 200})
			return err
		}); err != nil {
			e.log.Error().Err(err).Msg("check of cached batches against the cache at start failed; their states may say CACHED_SYNCED for evicted objects")
			return
		}
		for _, b := range bs {
			after = b.ID
			if !e.mine(b) {
				continue
			}
			var gone []uint64
			if err := e.eachDataFile(b, func(f catalog.File) error {
				if _, ok := e.cache.Lookup(f.ID); !ok {
					gone = append(gone, f.ID)
				}
				return nil
			}); err != nil {
				e.log.Error().Err(err).Uint64("batch", b.ID).Str("workspace", b.Workspace).Msg("check of a cached batch against the cache failed")
				continue
			}
			if len(gone) > 0 {
				e.log.Info().Uint64("batch", b.ID).Str("workspace", b.Workspace).Int("missing", len(gone)).
					Msg("batch recorded as cached has objects missing from the cache at start: SYNCED")
				e.batchesEvicted(gone)
			}
		}
		if len(bs) < 200 {
			return
		}
	}
}

// batchesEvicted records that the batches holding the objects ids are no
// longer wholly cached.
func (e *Engine) batchesEvicted(ids []uint64) {
	counts := map[uint64]int{}
	var order []uint64
	if err := e.cat.View(func(tx *catalog.Tx) error {
		for _, id := range ids {
			f, err := tx.File(id)
			if err != nil {
				continue // purged meanwhile
			}
			if counts[f.Batch] == 0 {
				order = append(order, f.Batch)
			}
			counts[f.Batch]++
		}
		return nil
	}); err != nil {
		e.log.Error().Err(err).Msg("evicted objects: cannot read their batches; batch states may say CACHED_SYNCED for evicted batches until the next eviction")
		return
	}
	for _, id := range order {
		err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			b, err := tx.Batch(id)
			if err != nil {
				return nil // purged meanwhile
			}
			switch {
			case b.State == catalog.CachedSynced:
				b.State = catalog.Synced
			case b.State == catalog.Deleted && b.Prior == catalog.CachedSynced:
				b.Prior = catalog.Synced // undelete brings it back as it is now
			default:
				return nil
			}
			if err := tx.PutBatch(b); err != nil {
				return err
			}
			if b.State == catalog.Deleted {
				return nil
			}
			return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: id, Kind: EvState, State: catalog.Synced,
				Message: fmt.Sprintf("batch %d: %d of its files evicted from the cache to make room; reading them recalls them from tape", id, counts[id])})
		})
		if err != nil {
			e.log.Error().Err(err).Uint64("batch", id).Msg("evicted batch: its state could not be set to SYNCED")
		}
	}
}
