package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Locking: Cache.mu is the only mutex of the package. It guards the index,
// the LRU list, the accounting, every Partial's progress and every Handle's
// closed flag, so there is no lock order to get wrong. Renames and opens,
// which keep the files on disk in step with the index, happen under it;
// anything that can take long — fsync, writing recalled bytes, unlinking a
// large file — happens after it is released. That is why an object leaving
// the index is first renamed into trash/ (cheap, atomic with the index) and
// unlinked later: its ID may be recalled or adopted again at once.

const (
	putDir     = "put"
	sealingDir = "sealing"
	objectsDir = "objects"
	trashDir   = "trash"

	partialSuffix = ".partial"

	defaultHigh = 0.9
	defaultLow  = 0.7
)

// errClosed is returned by operations on a closed cache, and is the abort
// reason of recalls still in progress when it closes.
var errClosed = errors.New("cache closed")

// Cache is an open cache directory.
type Cache struct {
	dir       string
	objects   string // dir/objects
	limit     int64
	high, low float64

	mu           sync.Mutex
	closed       bool
	index        objectIndex // the objects and their LRU list (index.go)
	used         int64       // sizes of complete and partial objects
	unsynced     int64       // sizes of complete objects not yet on tape
	unread       int64       // sizes of objects staged ahead, not opened since
	evictions    int64
	evictedBytes int64
	trashSeq     uint64
	lastToken    time.Time // of NewSealingDir, to keep tokens increasing
	onEvict      func(id uint64)

	// The committer (commit.go).
	commitQ    []*Partial    // verified recalls waiting for it
	committing chan struct{} // while it runs; closed when it ends
	commitRoom chan struct{} // closed when it takes a batch: CommitLater may queue again
	ops        commitOps
}

// Open opens the cache directory cfg.Dir, creating its layout if missing,
// and rebuilds the index from the objects found there.
//
// A Limit of 0 takes the free space of the disk plus what the objects already
// found occupy, so that reopening a full cache does not evict it at once.
func Open(cfg Config) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open cache: no directory given")
	}
	high, low := cfg.High, cfg.Low
	if high == 0 {
		high = defaultHigh
	}
	if low == 0 {
		low = defaultLow
	}
	if !(0 < low && low <= high && high <= 1) {
		return nil, fmt.Errorf("open cache %s: watermarks low %g, high %g: want 0 < low ≤ high ≤ 1", cfg.Dir, low, high)
	}
	if cfg.Limit < 0 {
		return nil, fmt.Errorf("open cache %s: negative size limit %d", cfg.Dir, cfg.Limit)
	}
	c := &Cache{
		dir:     cfg.Dir,
		objects: filepath.Join(cfg.Dir, objectsDir),
		limit:   cfg.Limit,
		high:    high,
		low:     low,
		index:   newObjectIndex(),
		ops:     defaultCommitOps,
	}
	for _, d := range []string{putDir, sealingDir, objectsDir, trashDir} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("open cache: %w", err)
		}
	}
	if err := c.emptyTrash(); err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	if err := c.load(); err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	if c.limit == 0 {
		free, err := freeSpace(c.objects)
		if err != nil {
			return nil, fmt.Errorf("open cache: %w", err)
		}
		c.limit = free + c.used
	}
	return c, nil
}

// load walks objects/ and indexes every complete object, least recently
// modified last in the LRU list. Stale partial objects are deleted; files
// that are not named like objects are left alone.
func (c *Cache) load() error {
	fanouts, err := os.ReadDir(c.objects)
	if err != nil {
		return err
	}
	type found struct {
		id    uint64
		size  int64
		mtime time.Time
	}
	var all []found
	for _, fo := range fanouts {
		low, err := strconv.ParseUint(fo.Name(), 16, 8)
		if !fo.IsDir() || err != nil || fo.Name() != fmt.Sprintf("%02x", low) {
			continue
		}
		dir := filepath.Join(c.objects, fo.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			if filepath.Ext(name) == partialSuffix {
				if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("remove stale partial object: %w", err)
				}
				continue
			}
			id, err := strconv.ParseUint(name, 10, 64)
			if err != nil || strconv.FormatUint(id, 10) != name || id&0xff != low || !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if fi.Size() > maxObjectSize {
				continue // not one of ours: no file is that large
			}
			all = append(all, found{id, fi.Size(), fi.ModTime()})
		}
	}
	slices.SortFunc(all, func(a, b found) int {
		if d := a.mtime.Compare(b.mtime); d != 0 {
			return d
		}
		return compareIDs(a.id, b.id)
	})
	for _, f := range all {
		c.insertLocked(f.id, f.size, 0, nil) // the newest ends at the front
	}
	return nil
}

func compareIDs(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Close refuses new objects, lets the committer finish the recalls handed
// to it (they are whole and checked: committing them spares a second
// recall), and aborts the recalls still in progress, so that nobody waits
// on them any more. Open handles stay readable.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	idle := c.committing
	c.mu.Unlock()
	if idle != nil {
		<-idle
	}
	c.mu.Lock()
	var trash []string
	for _, p := range c.partialsLocked() {
		trash = appendTrash(trash, c.abortLocked(p, errClosed))
	}
	c.mu.Unlock()
	return removeTrash(trash)
}

// Lookup describes object id, complete or partial.
func (c *Cache) Lookup(id uint64) (ObjectInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.index.find(id)
	if s == noSlot {
		return ObjectInfo{}, false
	}
	return c.infoLocked(s), true
}

// Objects describes every object, complete or partial, by ascending ID.
func (c *Cache) Objects() []ObjectInfo {
	c.mu.Lock()
	infos := make([]ObjectInfo, 0, c.index.len())
	c.index.each(func(s slot, _ *object) bool {
		infos = append(infos, c.infoLocked(s))
		return true
	})
	c.mu.Unlock()
	slices.SortFunc(infos, func(a, b ObjectInfo) int { return compareIDs(a.ID, b.ID) })
	return infos
}

// ObjectsAfter describes at most limit objects with IDs above after, by
// ascending ID: a caller walking the whole cache a page at a time (the
// background scrub, which takes hours over a large cache) holds one page,
// not a record of every object.
func (c *Cache) ObjectsAfter(after uint64, limit int) []ObjectInfo {
	if limit <= 0 {
		return nil
	}
	c.mu.Lock()
	// The limit smallest IDs above after, kept in a max-heap: one pass
	// over the index.
	ids := make([]uint64, 0, min(limit, c.index.len()))
	c.index.each(func(_ slot, o *object) bool {
		switch id := o.id; {
		case id <= after:
		case len(ids) < limit:
			ids = append(ids, id)
			siftUp(ids, len(ids)-1)
		case id < ids[0]:
			ids[0] = id
			siftDown(ids, 0)
		}
		return true
	})
	slices.Sort(ids)
	infos := make([]ObjectInfo, 0, len(ids))
	for _, id := range ids {
		infos = append(infos, c.infoLocked(c.index.find(id)))
	}
	c.mu.Unlock()
	return infos
}

// siftUp and siftDown keep h a max-heap.
func siftUp(h []uint64, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p] >= h[i] {
			return
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
}

func siftDown(h []uint64, i int) {
	for {
		l, big := 2*i+1, i
		if l < len(h) && h[l] > h[big] {
			big = l
		}
		if r := l + 1; r < len(h) && h[r] > h[big] {
			big = r
		}
		if big == i {
			return
		}
		h[i], h[big] = h[big], h[i]
		i = big
	}
}

func (c *Cache) infoLocked(s slot) ObjectInfo {
	o := c.index.at(s)
	info := ObjectInfo{
		ID:     o.id,
		Size:   o.size(),
		Synced: o.has(flagSynced),
		Pinned: o.has(flagPinned),
	}
	if e := c.index.extraOf(s); e != nil {
		info.Open = int(e.open)
		info.Partial = e.partial != nil
		info.Verified = e.partial != nil && e.partial.verified
	}
	return info
}

// partialLocked is the recall filling slot s, nil if it is complete.
func (c *Cache) partialLocked(s slot) *Partial {
	if e := c.index.extraOf(s); e != nil {
		return e.partial
	}
	return nil
}

// partialsLocked lists the recalls in progress (or waiting for the
// committer).
func (c *Cache) partialsLocked() []*Partial {
	var ps []*Partial
	for _, e := range c.index.extras {
		if e.partial != nil {
			ps = append(ps, e.partial)
		}
	}
	return ps
}

// Stats returns the cache's accounting. Used counts partial objects at their
// full size: the space a recall reserved.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Used:         c.used,
		Limit:        c.limit,
		Objects:      c.index.len(),
		Unsynced:     c.unsynced,
		Unread:       c.unread,
		Evictions:    c.evictions,
		EvictedBytes: c.evictedBytes,
	}
}

// SetSynced records whether object id is safely on tape, which is what makes
// it evictable. It does nothing for an object not in the cache.
func (c *Cache) SetSynced(id uint64, synced bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.index.find(id); s != noSlot {
		c.unaccountLocked(s)
		c.index.at(s).set(flagSynced, synced)
		c.accountLocked(s)
	}
}

// Pin keeps object id from being evicted while pinned is true. It does
// nothing for an object not in the cache.
func (c *Cache) Pin(id uint64, pinned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.index.find(id); s != noSlot {
		c.index.at(s).set(flagPinned, pinned)
	}
}

// insertLocked adds object id, which must not be indexed, as the most
// recently used object, being filled by p if p is not nil, and returns its
// slot.
func (c *Cache) insertLocked(id uint64, size int64, flags uint64, p *Partial) slot {
	s := c.index.add(id, size, flags)
	if p != nil {
		c.index.makeExtra(s).partial = p
		p.slot = s
	}
	c.accountLocked(s)
	return s
}

// dropLocked removes the object of slot s from the index, freeing the
// slot; its file is the caller's business.
func (c *Cache) dropLocked(s slot) {
	c.unaccountLocked(s)
	c.index.remove(s)
}

func (c *Cache) touchLocked(s slot) { c.index.touch(s) }

// accountLocked and unaccountLocked bracket every change of an indexed
// object's size or flags, so the totals never need a full scan.
func (c *Cache) accountLocked(s slot) { c.addLocked(s, 1) }

func (c *Cache) unaccountLocked(s slot) { c.addLocked(s, -1) }

func (c *Cache) addLocked(s slot, sign int64) {
	o := c.index.at(s)
	size := sign * o.size()
	c.used += size
	if !o.has(flagSynced) && c.partialLocked(s) == nil {
		c.unsynced += size
	}
	if o.has(flagUnread) {
		c.unread += size
	}
}

// freeSpace is the space an unprivileged process may still use on the disk
// holding path.
func freeSpace(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
