package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"
)

// boltBucket is the one bucket holding every key; the key schema
// (keys.go) does the partitioning, as a plain KV store would.
const boltBucket = "tapefs"

// boltFillPercent is how full bbolt fills a page before splitting it.
const boltFillPercent = 0.9

// boltEngine is the on-disk Engine. bbolt memory-maps the file and reads
// pages on demand, so opening a large catalog costs nothing and the heap
// does not grow with it.
type boltEngine struct {
	db *bolt.DB
	// The mapping last given MADV_NORMAL (readAround): its address and
	// length.
	advisedAt, advisedLen atomic.Uintptr
}

// OpenBoltEngine opens (creating if needed) the bbolt database at path.
// bbolt holds an exclusive lock on the file, so a second daemon on the
// same home waits a second and then is told why.
func OpenBoltEngine(path string) (Engine, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("catalog %s is in use by another tapefs daemon", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	// Create the bucket only when missing: a catalog that is then refused
	// (newer schema) must be left exactly as it was.
	var exists bool
	err = db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket([]byte(boltBucket)) != nil
		return nil
	})
	if err == nil && !exists {
		err = db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket([]byte(boltBucket))
			return err
		})
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open catalog %s: %w", path, err)
	}
	return &boltEngine{db: db}, nil
}

func (e *boltEngine) Update(fn func(KVTxn) error) error {
	return e.db.Update(func(tx *bolt.Tx) error {
		e.readAround(tx)
		b := tx.Bucket([]byte(boltBucket))
		// Most keys are appended (rising IDs, a new batch's own prefix):
		// bbolt's default of splitting pages half full would leave the
		// file twice the size of its data.
		b.FillPercent = boltFillPercent
		return fn(boltTxn{b})
	})
}

func (e *boltEngine) View(fn func(KVTxn) error) error {
	return e.db.View(func(tx *bolt.Tx) error {
		e.readAround(tx)
		return fn(boltTxn{tx.Bucket([]byte(boltBucket))})
	})
}

// readAround takes back bbolt's MADV_RANDOM on its mapping of the file,
// which it gives again each time it maps the file anew (as it grows).
// With it, each page a read faults in is read from disk alone: a cold
// listing of a batch tree, whose records lie on consecutive pages, read
// them one 4 KiB request at a time (a cold `du -s` of 100,000 entries
// spent a third of its time so). Without it the kernel reads around the
// faulting page, as for any mapped file. Called inside a transaction,
// which holds the mapping in place.
func (e *boltEngine) readAround(tx *bolt.Tx) {
	at, size := e.db.Info().Data, uintptr(tx.Size())
	if at == 0 || (at == e.advisedAt.Load() && size <= e.advisedLen.Load()) {
		return
	}
	// Advice only: a kernel that refuses it reads page by page as before.
	unix.Syscall(unix.SYS_MADVISE, at, size, unix.MADV_NORMAL)
	e.advisedAt.Store(at)
	e.advisedLen.Store(size)
}

func (e *boltEngine) Close() error { return e.db.Close() }

// releaseMapped drops the catalog file's pages from the process's page
// tables. bbolt reads through a shared, read-only mapping of the whole
// file, so every page a listing or a migration touched stays mapped and
// counts in the daemon's resident size (hundreds of MB for a catalog of a
// million files) although it is the kernel's page cache, not the
// daemon's memory. MADV_DONTNEED on a file mapping only unmaps: the pages
// stay cached, and the next read maps them again with a minor fault.
func (e *boltEngine) releaseMapped() error {
	// The read transaction holds bbolt's mapping lock: the mapping cannot
	// be moved (remapped as the file grows) under the madvise.
	return e.db.View(func(tx *bolt.Tx) error {
		data := e.db.Info().Data
		if data == 0 {
			return nil
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, data, uintptr(tx.Size()), unix.MADV_DONTNEED)
		if errno != 0 {
			return fmt.Errorf("release the catalog's mapped pages: %w", errno)
		}
		return nil
	})
}

type boltTxn struct{ b *bolt.Bucket }

func (t boltTxn) Get(key []byte) ([]byte, error) { return t.b.Get(key), nil }

// getMany reads keys with one cursor. A listing asks for the records of a
// directory's entries, which are mostly consecutive keys (file IDs are
// handed out in the order a tree is registered), so one step from the key
// before usually lands on the next one wanted, where a Get would search
// from the root each time (15 % of the daemon's CPU in a cold `du -s`).
func (t boltTxn) getMany(keys [][]byte) ([][]byte, error) {
	out := make([][]byte, len(keys))
	c := t.b.Cursor()
	var at, v []byte // the cursor's key and value; at == nil: not placed
	for i, k := range keys {
		if at != nil && bytes.Compare(at, k) < 0 {
			at, v = c.Next()
		}
		if at == nil || !bytes.Equal(at, k) {
			at, v = c.Seek(k)
		}
		if at != nil && bytes.Equal(at, k) {
			out[i] = v
		}
	}
	return out, nil
}

// Put copies value: bbolt keeps a reference to it until the commit, and
// callers should not have to know that.
func (t boltTxn) Put(key, value []byte) error {
	return t.b.Put(key, append([]byte{}, value...))
}

func (t boltTxn) Delete(key []byte) error { return t.b.Delete(key) }

// Scan must not be interleaved with writes: a bbolt cursor is not stable
// across Put and Delete.
func (t boltTxn) Scan(prefix, from []byte, reverse bool, fn func(key, value []byte) (bool, error)) error {
	c := t.b.Cursor()
	var k, v []byte
	if !reverse {
		start := prefix
		if from != nil && bytes.Compare(from, prefix) > 0 {
			start = from
		}
		k, v = c.Seek(start)
	} else {
		k, v = seekReverse(c, prefix, from)
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, v = step(c, reverse) {
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func step(c *bolt.Cursor, reverse bool) ([]byte, []byte) {
	if reverse {
		return c.Prev()
	}
	return c.Next()
}

// seekReverse positions c where a reverse scan starts: the last key ≤ from,
// or when from is nil or past the prefix, the last key before the end of
// the prefix.
func seekReverse(c *bolt.Cursor, prefix, from []byte) ([]byte, []byte) {
	end := prefixEnd(prefix)
	if from != nil && (end == nil || bytes.Compare(from, end) < 0) {
		k, v := c.Seek(from)
		switch {
		case k == nil:
			return c.Last()
		case bytes.Equal(k, from):
			return k, v
		default:
			return c.Prev()
		}
	}
	if end == nil {
		return c.Last()
	}
	if k, _ := c.Seek(end); k == nil {
		return c.Last()
	}
	return c.Prev()
}

// prefixEnd is the smallest key greater than every key with the prefix, or
// nil when there is none (the prefix is empty or all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
