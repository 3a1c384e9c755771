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
	o      *object
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
	o := c.index[id]
	if o == nil {
		return nil, fmt.Errorf("open object %d: %w", id, ErrNotCached)
	}
	path := c.ObjectPath(id)
	if o.partial != nil {
		path = c.partialPath(id)
	}
	// Under the lock, so that no commit, eviction or removal renames the
	// file between the index saying where it is and the open.
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && o.partial == nil {
			// Deleted behind the cache's back: forget it, so the archive
			// recalls it again.
			c.dropLocked(o)
			return nil, fmt.Errorf("open object %d: file vanished: %w", id, ErrNotCached)
		}
		return nil, fmt.Errorf("open object %d: %w", id, err)
	}
	o.open++
	if o.unread {
		c.unaccountLocked(o)
		o.unread = false
		c.accountLocked(o)
	}
	c.touchLocked(o)
	return &Handle{c: c, o: o, f: f}, nil
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
			h.o.open--
		}
	}
	h.c.mu.Unlock()
	return h.f.Close()
}
