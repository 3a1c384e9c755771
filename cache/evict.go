package cache

import (
	"context"
	"fmt"
)

// Evict removes object id from the cache if it may be: synced, unpinned, not
// open and not being recalled. Otherwise it returns ErrBusy and says why.
// A recall waiting for the committer is waited for: it is read and whole,
// only its fsync is left.
func (c *Cache) Evict(id uint64) error {
	c.mu.Lock()
	s := c.index.find(id)
	if s != noSlot && c.waitQueuedLocked(c.partialLocked(s)) {
		s = c.index.find(id)
	}
	if s == noSlot {
		c.mu.Unlock()
		return fmt.Errorf("evict object %d: %w", id, ErrNotCached)
	}
	if why := c.busyLocked(s); why != "" {
		c.mu.Unlock()
		return fmt.Errorf("evict object %d (%s): %w", id, why, ErrBusy)
	}
	trash, err := c.evictLocked(s)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("evict object %d: %w", id, err)
	}
	if err := removeTrash(appendTrash(nil, trash)); err != nil {
		return fmt.Errorf("evict object %d: %w", id, err)
	}
	return nil
}

// EvictTo evicts least-recently-used objects until Used ≤ target, or until
// nothing evictable is left, and returns the bytes freed. It never touches
// unsynced, pinned, open or partial objects; not reaching target is not an
// error (Stats says where it stopped).
func (c *Cache) EvictTo(target int64) (int64, error) {
	c.mu.Lock()
	freed, trash, err := c.evictToLocked(target)
	c.mu.Unlock()
	if rerr := removeTrash(trash); err == nil {
		err = rerr
	}
	if err != nil {
		return freed, fmt.Errorf("evict: %w", err)
	}
	return freed, nil
}

// Trim applies the watermarks: if Used is above High×Limit it evicts down to
// Low×Limit, and returns the bytes freed. Adopt trims by itself; the archive
// calls Trim when objects become synced (after a migration, or after
// restoring the synced flags at start), since that is when space above the
// high watermark becomes evictable.
func (c *Cache) Trim() (int64, error) {
	c.mu.Lock()
	freed, trash, err := c.trimLocked()
	c.mu.Unlock()
	if rerr := removeTrash(trash); err == nil {
		err = rerr
	}
	if err != nil {
		return freed, fmt.Errorf("trim cache: %w", err)
	}
	return freed, nil
}

func (c *Cache) trimLocked() (int64, []string, error) {
	if float64(c.used) <= c.high*float64(c.limit) {
		return 0, nil, nil
	}
	return c.evictToLocked(int64(c.low * float64(c.limit)))
}

// Reserve makes room for n more bytes by eviction. If Used+n would still
// pass the limit after evicting everything evictable, it returns ErrNoSpace,
// saying how much is needed and what holds the space.
func (c *Cache) Reserve(ctx context.Context, n int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	trash, err := c.reserveLocked(n)
	c.mu.Unlock()
	_ = removeTrash(trash) // leftovers go at the next Open
	return err
}

func (c *Cache) reserveLocked(n int64) ([]string, error) {
	if n < 0 {
		return nil, fmt.Errorf("reserve %d bytes: negative size", n)
	}
	if c.used+n <= c.limit {
		return nil, nil
	}
	if n > c.limit {
		return nil, fmt.Errorf("%w: %s needed but the whole cache is %s; raise --cache-size",
			ErrNoSpace, formatBytes(n), formatBytes(c.limit))
	}
	_, trash, _ := c.evictToLocked(c.limit - n) // a failed eviction shows as too little space
	if c.used+n <= c.limit {
		return trash, nil
	}
	var held int64 // synced, but pinned, open or being recalled
	c.index.each(func(s slot, o *object) bool {
		if o.has(flagSynced) || o.has(flagExtra) && c.partialLocked(s) != nil {
			held += o.size()
		}
		return true
	})
	return trash, fmt.Errorf("%w: %s needed, %s free of %s; %s not yet on tape, %s pinned, open or being recalled; "+
		"wait for migration to tape or for reads to finish, or raise --cache-size",
		ErrNoSpace, formatBytes(n), formatBytes(max(c.limit-c.used, 0)), formatBytes(c.limit),
		formatBytes(c.unsynced), formatBytes(held))
}

// evictToLocked evicts from the least-recently-used end until Used ≤ target
// and returns the bytes freed and the trash to unlink. An object that fails
// to move stays indexed and is skipped.
func (c *Cache) evictToLocked(target int64) (int64, []string, error) {
	var (
		freed    int64
		trash    []string
		firstErr error
	)
	var newer slot
	for s := c.index.back(); s != noSlot && c.used > target; s = newer {
		newer = c.index.newer(s) // before s may leave the list
		if c.busyLocked(s) != "" {
			continue
		}
		size, id := c.index.at(s).size(), c.index.at(s).id
		t, err := c.evictLocked(s)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("object %d: %w", id, err)
			}
			continue
		}
		freed += size
		trash = appendTrash(trash, t)
	}
	return freed, trash, firstErr
}

// evictLocked moves the evictable object of slot s to the trash and drops
// it from the index. A file that had vanished is dropped too, since it is
// gone anyway.
func (c *Cache) evictLocked(s slot) (string, error) {
	id, size := c.index.at(s).id, c.index.at(s).size()
	t, err := c.trashLocked(c.ObjectPath(id))
	if err != nil {
		return "", err
	}
	c.dropLocked(s)
	c.evictions++
	c.evictedBytes += size
	if c.onEvict != nil {
		c.onEvict(id)
	}
	return t, nil
}

// OnEvict sets a function told the ID of every object evicted (by Evict or
// by the watermarks), so that whoever keeps state about cached objects (the
// archive's batch states) can follow. It is called with the cache's lock
// held: it must only record the ID and return, never call the cache.
func (c *Cache) OnEvict(fn func(id uint64)) {
	c.mu.Lock()
	c.onEvict = fn
	c.mu.Unlock()
}

// busyLocked says why the object of slot s may not be evicted, or "" if
// it may.
func (c *Cache) busyLocked(s slot) string {
	o := c.index.at(s)
	e := c.index.extraOf(s)
	switch {
	case e != nil && e.partial != nil:
		return "being recalled"
	case !o.has(flagSynced):
		return "not yet on tape"
	case o.has(flagPinned):
		return "pinned"
	case e != nil && e.open > 0:
		return "open"
	}
	return ""
}

// formatBytes writes n in binary units for messages people read.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
