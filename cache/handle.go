package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// Handle is an open object: its holder keeps it from being evicted.
type Handle struct {
	c      *Cache
	slot   slot   // where the object was when opened
	e      *extra // its open count: stays this handle's if the object leaves the index
	f      *os.File
	closed bool // guarded by c.mu
	quiet  bool // from OpenQuiet: neither counted as open nor used
}

// Open opens object id for reading, complete or still being recalled, and
// counts it as used. On a partial object, read only what WaitRange has
// confirmed; the file stays valid when the recall commits, since the rename
// keeps the inode. It returns ErrNotCached if the object is in neither state.
func (c *Cache) Open(id uint64) (*Handle, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("open object %d: %w", id, errClosed)
	}
	s := c.index.find(id)
	if s == noSlot {
		return nil, fmt.Errorf("open object %d: %w", id, ErrNotCached)
	}
	partial := c.partialLocked(s) != nil
	path := c.ObjectPath(id)
	if partial {
		path = c.partialPath(id)
	}
	// Under the lock, so that no commit, eviction or removal renames the
	// file between the index saying where it is and the open.
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !partial {
			// Deleted behind the cache's back: forget it, so the archive
			// recalls it again.
			c.dropLocked(s)
			return nil, fmt.Errorf("open object %d: file vanished: %w", id, ErrNotCached)
		}
		return nil, fmt.Errorf("open object %d: %w", id, err)
	}
	e := c.index.makeExtra(s)
	e.open++
	if c.index.at(s).has(flagUnread) {
		c.unaccountLocked(s)
		c.index.at(s).set(flagUnread, false)
		c.accountLocked(s)
	}
	c.touchLocked(s)
	return &Handle{c: c, slot: s, e: e, f: f}, nil
}

// File is the open object file. It belongs to the handle: do not close it.
func (h *Handle) File() *os.File { return h.f }

// Close closes the file and lets the object be evicted again.
func (h *Handle) Close() error {
	if h.c == nil { // OpenForeign
		return h.f.Close()
	}
	h.c.mu.Lock()
	if !h.closed {
		h.closed = true
		if !h.quiet {
			h.e.open--
			// Only if the slot still holds the object this handle opened
			// (then its extra is h.e): a slot freed meanwhile may hold
			// another object by now.
			h.c.index.tidyExtra(h.slot, h.e)
		}
	}
	h.c.mu.Unlock()
	return h.f.Close()
}
