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
	index        map[uint64]*object
	lru          lru   // most recently used at the front
	used         int64 // sizes of complete and partial objects
	unsynced     int64 // sizes of complete objects not yet on tape
	unread       int64 // sizes of objects staged ahead, not opened since
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

// object is one entry of the index. A partial object has its full expected
// size counted in Cache.used from the start, so concurrent recalls cannot
// over-commit the space they reserved.
//
// The cache keeps one per object for as long as the object is cached, so
// its size is the cache's memory per object: 48 bytes, plus about 20 in
// the index map (the LRU links are in the object, not in list elements).
type object struct {
	id         uint64
	size       int64
	partial    *Partial // non-nil while a recall fills it
	prev, next *object  // the LRU list
	open       int32
	synced     bool
	pinned     bool
	unread     bool // staged ahead and not opened since: staging ahead does not evict it
	listed     bool // in the LRU list
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
		index:   make(map[uint64]*object),
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
		o     *object
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
			all = append(all, found{&object{id: id, size: fi.Size()}, fi.ModTime()})
		}
	}
	slices.SortFunc(all, func(a, b found) int {
		if d := a.mtime.Compare(b.mtime); d != 0 {
			return d
		}
		return compareIDs(a.o.id, b.o.id)
	})
	for _, f := range all {
		c.insertLocked(f.o) // the newest ends at the front
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
	for _, o := range c.index {
		if o.partial != nil {
			trash = appendTrash(trash, c.abortLocked(o.partial, errClosed))
		}
	}
	c.mu.Unlock()
	return removeTrash(trash)
}

// Lookup describes object id, complete or partial.
func (c *Cache) Lookup(id uint64) (ObjectInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.index[id]
	if o == nil {
		return ObjectInfo{}, false
	}
	return o.info(), true
}

// Objects describes every object, complete or partial, by ascending ID.
func (c *Cache) Objects() []ObjectInfo {
	c.mu.Lock()
	infos := make([]ObjectInfo, 0, len(c.index))
	for _, o := range c.index {
		infos = append(infos, o.info())
	}
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
	ids := make([]uint64, 0, min(limit, len(c.index)))
	for id := range c.index {
		switch {
		case id <= after:
		case len(ids) < limit:
			ids = append(ids, id)
			siftUp(ids, len(ids)-1)
		case id < ids[0]:
			ids[0] = id
			siftDown(ids, 0)
		}
	}
	slices.Sort(ids)
	infos := make([]ObjectInfo, 0, len(ids))
	for _, id := range ids {
		infos = append(infos, c.index[id].info())
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

func (o *object) info() ObjectInfo {
	return ObjectInfo{
		ID:      o.id,
		Size:    o.size,
		Synced:  o.synced,
		Pinned:  o.pinned,
		Open:    int(o.open),
		Partial: o.partial != nil,

		Verified: o.partial != nil && o.partial.verified,
	}
}

// Stats returns the cache's accounting. Used counts partial objects at their
// full size: the space a recall reserved.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{
		Used:         c.used,
		Limit:        c.limit,
		Objects:      len(c.index),
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
	if o := c.index[id]; o != nil {
		c.unaccountLocked(o)
		o.synced = synced
		c.accountLocked(o)
	}
}

// Pin keeps object id from being evicted while pinned is true. It does
// nothing for an object not in the cache.
func (c *Cache) Pin(id uint64, pinned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.index[id]; o != nil {
		o.pinned = pinned
	}
}

// insertLocked adds o to the index as the most recently used object.
func (c *Cache) insertLocked(o *object) {
	c.index[o.id] = o
	c.lru.pushFront(o)
	c.accountLocked(o)
}

// dropLocked removes o from the index; its file is the caller's business.
func (c *Cache) dropLocked(o *object) {
	if c.index[o.id] != o {
		return
	}
	delete(c.index, o.id)
	c.lru.remove(o)
	c.unaccountLocked(o)
}

func (c *Cache) touchLocked(o *object) { c.lru.moveToFront(o) }

// accountLocked and unaccountLocked bracket every change of an indexed
// object's size or synced flag, so the totals never need a full scan.
func (c *Cache) accountLocked(o *object) {
	c.used += o.size
	if !o.synced && o.partial == nil {
		c.unsynced += o.size
	}
	if o.unread {
		c.unread += o.size
	}
}

func (c *Cache) unaccountLocked(o *object) {
	c.used -= o.size
	if !o.synced && o.partial == nil {
		c.unsynced -= o.size
	}
	if o.unread {
		c.unread -= o.size
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
