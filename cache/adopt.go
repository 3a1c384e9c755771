package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/tapefs/tapefs/internal/longpath"
)

// errSuperseded aborts a recall of an object that was adopted meanwhile.
var errSuperseded = errors.New("superseded by an adopted object")

// errRemoved aborts a recall of an object that was removed.
var errRemoved = errors.New("object removed")

// Adopt moves src, a regular file on the cache's filesystem, into the cache
// as object id, by rename: sealing never copies. synced says whether the
// object is already on tape.
//
// Adopt is idempotent for crash recovery: if object id is already complete
// and src is gone, the earlier Adopt went through and only synced is
// applied. If both exist, src replaces the object (handles open on the old
// one keep reading it).
//
// Adopt then evicts down to the low watermark if use passed the high one. It
// never fails for want of space: unsynced objects may exceed the limit, and
// the disk is the hard limit.
//
// Adopt fsyncs the directory, not the file: making the contents durable is
// the caller's choice (one syncfs per batch costs less than an fsync per
// file).
func (c *Cache) Adopt(id uint64, src string, synced bool) error {
	dir, err := c.adopt(id, filepath.Dir(src), filepath.Base(src), synced)
	if err != nil || dir == "" {
		return err
	}
	if err := syncRenames(dir); err != nil {
		return fmt.Errorf("adopt object %d: %w", id, err)
	}
	return nil
}

// Adoption is one object of AdoptAll: the file Src becomes object ID. With
// Dir set, Src is a path below Dir of any length (a file of a sealed entry
// deeper than PATH_MAX), reached from a descriptor of Dir.
type Adoption struct {
	ID  uint64
	Dir string
	Src string
}

// root splits the source into a directory and a path below it.
func (o Adoption) root() (string, string) {
	if o.Dir == "" {
		return filepath.Dir(o.Src), filepath.Base(o.Src)
	}
	return o.Dir, o.Src
}

// AdoptAll is Adopt of many objects (the files of a sealed batch) with one
// fsync per fan-out directory at the end instead of one per object: for a
// batch of 100,000 small files the fsyncs were most of the time of a
// `tapefs put` (90 of 150 s). The renames are durable when it returns; a
// crash before that leaves the sources in place for the replay.
func (c *Cache) AdoptAll(objs []Adoption, synced bool) error {
	dirs := map[string]bool{}
	for _, o := range objs {
		root, rel := o.root()
		dir, err := c.adopt(o.ID, root, rel, synced)
		if err != nil {
			return err
		}
		if dir != "" {
			dirs[dir] = true
		}
	}
	for dir := range dirs {
		if err := syncRenames(dir); err != nil {
			return fmt.Errorf("adopt objects: %w", err)
		}
	}
	return nil
}

// adopt is Adopt without the fsync of the file rel below root: it returns
// the directory whose rename is to be made durable ("" when nothing was
// renamed).
func (c *Cache) adopt(id uint64, root, rel string, synced bool) (string, error) {
	var st unix.Stat_t
	err := longpath.Lstat(root, rel, &st)
	if errors.Is(err, fs.ErrNotExist) {
		c.mu.Lock()
		if s := c.index.find(id); s != noSlot && c.partialLocked(s) == nil {
			c.unaccountLocked(s)
			c.index.at(s).set(flagSynced, synced)
			c.accountLocked(s)
			c.mu.Unlock()
			return "", nil
		}
		c.mu.Unlock()
	}
	if err != nil {
		return "", fmt.Errorf("adopt object %d: %w", id, err)
	}
	src := filepath.Join(root, rel)
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", fmt.Errorf("adopt object %d: %s is not a regular file", id, src)
	}
	if st.Size > maxObjectSize {
		return "", fmt.Errorf("adopt object %d: %s is %d bytes, more than the cache records (%d)", id, src, st.Size, int64(maxObjectSize))
	}
	dir := c.fanoutDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("adopt object %d: %w", id, err)
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", fmt.Errorf("adopt object %d: %w", id, errClosed)
	}
	if err := longpath.Rename(root, rel, c.ObjectPath(id)); err != nil {
		c.mu.Unlock()
		return "", fmt.Errorf("adopt object %d: %w", id, err)
	}
	var trash []string
	s := c.index.find(id)
	if s != noSlot {
		if p := c.partialLocked(s); p != nil {
			// The recall's partial file has its own name, so the adopted
			// file is safe; the recall is moot.
			trash = appendTrash(trash, c.abortLocked(p, errSuperseded))
			s = noSlot
		}
	}
	var flags uint64
	if synced {
		flags = flagSynced
	}
	if s == noSlot {
		c.insertLocked(id, st.Size, flags, nil)
	} else {
		c.unaccountLocked(s)
		o := c.index.at(s)
		o.setSize(st.Size)
		o.set(flagSynced, synced)
		c.accountLocked(s)
		c.touchLocked(s)
	}
	_, evicted, _ := c.trimLocked() // never blocks Adopt; eviction retries on the next call
	trash = append(trash, evicted...)
	c.mu.Unlock()

	_ = removeTrash(trash) // leftovers go at the next Open
	return dir, nil
}

// Remove deletes object id whatever its state: for a purge, or when its
// contents proved wrong. Handles open on it keep reading the unlinked file;
// a recall filling it is aborted. It returns ErrNotCached if the object is
// not in the cache.
func (c *Cache) Remove(id uint64) error {
	c.mu.Lock()
	s := c.index.find(id)
	if s == noSlot {
		c.mu.Unlock()
		return fmt.Errorf("remove object %d: %w", id, ErrNotCached)
	}
	var trash string
	if p := c.partialLocked(s); p != nil {
		trash = c.abortLocked(p, errRemoved)
	} else {
		var err error
		if trash, err = c.trashLocked(c.ObjectPath(id)); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("remove object %d: %w", id, err)
		}
		c.dropLocked(s)
	}
	c.mu.Unlock()
	if err := removeTrash(appendTrash(nil, trash)); err != nil {
		return fmt.Errorf("remove object %d: %w", id, err)
	}
	return nil
}

// Sync flushes the cache's filesystem (syncfs): the contents of every
// object adopted are durable when it returns (sealing makes a batch's
// bytes durable once, after hashing them, instead of an fsync per file).
func (c *Cache) Sync() error {
	d, err := os.Open(c.objects)
	if err != nil {
		return fmt.Errorf("sync cache: %w", err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync cache %s: %w", c.dir, err)
	}
	return nil
}
