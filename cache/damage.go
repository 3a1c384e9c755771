package cache

import (
	"fmt"
	"os"
)

// OpenQuiet opens complete object id for a check of its bytes (the scrub,
// a verify): unlike Open it does not make the object recently used, nor
// keep it from being evicted — an object evicted meanwhile is simply no
// longer the cache's (Current says so). It returns ErrNotCached for an
// object that is absent or still being recalled.
func (c *Cache) OpenQuiet(id uint64) (*Handle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.index.find(id)
	if s == noSlot || c.partialLocked(s) != nil {
		return nil, fmt.Errorf("open object %d: %w", id, ErrNotCached)
	}
	f, err := os.Open(c.ObjectPath(id))
	if err != nil {
		return nil, fmt.Errorf("open object %d: %w", id, err)
	}
	return &Handle{c: c, f: f, quiet: true}, nil
}

// RemoveDamaged drops object id because the bytes read through h proved
// wrong — but only if h still reads the object the cache holds under that
// ID: an object adopted or recalled again while h was being hashed is a
// different file and stays. It reports whether the object was dropped.
// Handles open on the dropped file keep reading it (the kernel's
// passthrough readers included); only new opens miss.
func (c *Cache) RemoveDamaged(id uint64, h *Handle) (bool, error) {
	held, err := h.f.Stat()
	if err != nil {
		return false, fmt.Errorf("remove damaged object %d: %w", id, err)
	}
	c.mu.Lock()
	s := c.index.find(id)
	if s == noSlot || c.partialLocked(s) != nil {
		c.mu.Unlock()
		return false, nil
	}
	// Under the lock: no rename can slip between this stat and the
	// trashing below.
	cur, err := os.Stat(c.ObjectPath(id))
	if err != nil || !os.SameFile(cur, held) {
		c.mu.Unlock()
		return false, nil
	}
	trash, err := c.trashLocked(c.ObjectPath(id))
	if err != nil {
		c.mu.Unlock()
		return false, fmt.Errorf("remove damaged object %d: %w", id, err)
	}
	c.dropLocked(s)
	c.mu.Unlock()
	if err := removeTrash(appendTrash(nil, trash)); err != nil {
		return true, fmt.Errorf("remove damaged object %d: %w", id, err)
	}
	return true, nil
}

// Current reports whether h reads the object the cache now holds under id
// (complete, not replaced since h was opened).
func (c *Cache) Current(id uint64, h *Handle) bool {
	held, err := h.f.Stat()
	if err != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.index.find(id); s == noSlot || c.partialLocked(s) != nil {
		return false
	}
	cur, err := os.Stat(c.ObjectPath(id))
	return err == nil && os.SameFile(cur, held)
}
