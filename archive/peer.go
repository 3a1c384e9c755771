package archive

import (
	"context"
	"time"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
)

// Reading a file that another host sealed and has not written to tape yet
// (several hosts on one catalog): its only bytes are in that host's cache.
// When that cache is reachable from here (shared storage), the object is
// read from there; when it is not, the read waits — interruptibly — until
// the file is on tape (recalled then) or the cache is reachable again,
// rather than failing for want of a tape copy and working later.

// peerObject opens f's object in the cache of the host holding f's batch,
// when f has no tape copy, the batch is another host's and that host's
// cache is reachable with the whole object in it; nil otherwise.
func (e *Engine) peerObject(f catalog.File) *cache.Handle {
	if !e.shared() || len(f.Copies) > 0 {
		return nil
	}
	var dir string
	err := e.cat.View(func(tx *catalog.Tx) error {
		b, err := tx.Batch(f.Batch)
		if err != nil || e.mine(b) {
			return err
		}
		h, err := tx.Host(b.Host)
		if err != nil {
			return err
		}
		dir = h.CacheDir
		return nil
	})
	if err != nil || dir == "" || !cache.Reachable(dir) {
		return nil
	}
	h, err := cache.OpenForeign(dir, f.ID)
	if err != nil {
		return nil
	}
	if st, err := h.File().Stat(); err != nil || st.Size() != f.Size {
		h.Close() // not adopted into that cache yet, or short
		return nil
	}
	return h
}

// waitPeer is what a read of f does before it recalls: for a file of
// another host's batch that is not on tape, it returns that host's
// object when it can be reached, and otherwise waits until it can, or
// until f has a tape copy (then it returns f afresh, to be recalled).
// Files of this host's batches, and files on tape, return at once.
func (e *Engine) waitPeer(ctx context.Context, f catalog.File) (*cache.Handle, catalog.File, error) {
	if !e.shared() || len(f.Copies) > 0 {
		return nil, f, nil
	}
	logged := false
	for {
		ch := e.changedChan()
		var b catalog.Batch
		err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			if f, err = tx.File(f.ID); err != nil {
				return err
			}
			b, err = tx.Batch(f.Batch)
			return err
		})
		if err != nil {
			return nil, f, err
		}
		if e.mine(b) || len(f.Copies) > 0 {
			return nil, f, nil
		}
		if h := e.peerObject(f); h != nil {
			return h, f, nil
		}
		if !logged {
			e.log.Info().Uint64("batch", b.ID).Str("workspace", b.Workspace).Str("host", b.Host).Str("path", f.Path).
				Msg("a read waits for a file that is only in the cache of another host, out of reach from here: until that host writes it to tape or its cache is reachable")
			logged = true
		}
		t := time.NewTimer(250 * time.Millisecond) // another host's progress wakes nobody here
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, f, ctx.Err()
		}
		t.Stop()
	}
}
