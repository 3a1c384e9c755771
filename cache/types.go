package cache

import "errors"

// Errors callers tell apart.
var (
	ErrNotCached = errors.New("object not cached")
	ErrNoSpace   = errors.New("cache full: no evictable object")
	ErrBusy      = errors.New("object pinned, open or unsynced")
)

// Config sets the cache's size and watermarks.
type Config struct {
	Dir   string
	Limit int64 // bytes; 0 = the free space of the disk at open
	// Eviction starts when use passes High×Limit and stops below Low×Limit.
	High, Low float64 // defaults 0.9, 0.7
}

// ObjectInfo describes one object of the cache.
type ObjectInfo struct {
	ID       uint64
	Size     int64
	Synced   bool
	Pinned   bool
	Open     int // open handles
	Partial  bool
	Verified bool // partial, but every byte is written and checked: readable to the end (committed soon)
}

// Whole says that every byte of the object may be read: it is complete, or
// a verified recall that only waits for the committer's fsync — no reason
// to tell a reader it is still staging, nor to recall it again.
func (i ObjectInfo) Whole() bool { return !i.Partial || i.Verified }

// Stats is the cache's accounting.
type Stats struct {
	Used, Limit  int64
	Objects      int
	Unsynced     int64 // bytes that must not be evicted
	Unread       int64 // bytes staged ahead and not opened since
	Evictions    int64
	EvictedBytes int64
}
