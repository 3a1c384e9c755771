package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// errAborted is the abort reason when Abort is given none.
var errAborted = errors.New("recall aborted")

// ErrAborted is wrapped by the errors about a recall that was aborted
// (with its reason): by a failure, a removal, an adoption or Close.
var ErrAborted = errors.New("aborted")

type abortedError struct {
	id  uint64
	err error
}

func (e *abortedError) Error() string {
	return fmt.Sprintf("recall of object %d aborted: %v", e.id, e.err)
}

func (e *abortedError) Unwrap() []error { return []error{ErrAborted, e.err} }

// Partial is an object being filled by a recall. One goroutine writes it,
// sequentially from the start; any number may wait on its progress with
// WaitRange.
type Partial struct {
	c    *Cache
	id   uint64
	slot slot // the object's in the index, while not done
	size int64
	f    *os.File // the writer's; Open gives readers their own

	// Guarded by Cache.mu.
	filled   int64
	done     bool          // committed or aborted
	err      error         // why it was aborted
	progress chan struct{} // closed and replaced when filled or done changes
	waiters  int           // WaitRange calls blocked on progress, for tests
	ahead    bool          // staged ahead and not yet promoted: preemptible
	verified bool          // every byte written and checked: the end may be read before Commit
	hold     bool          // no byte is given out before verified (Hold)
	queued   bool          // handed to the committer (CommitLater)
	onCommit func(error)   // CommitLater's callback
}

// Hold makes the recall give out no byte before it is verified (or
// committed), not only its last ones: the archive asks for it when the
// copy being read may prove wrong and another copy would then serve the
// readers, who must not have seen the wrong bytes.
func (p *Partial) Hold() {
	p.c.mu.Lock()
	p.hold = true
	p.c.mu.Unlock()
}

// BeginRecall prepares to recall object id of size bytes. If the object is
// complete, or another recall of it is in progress, it returns (nil, false,
// nil): the caller waits with WaitRange. Otherwise it reserves the space
// (ErrNoSpace if it cannot), creates the partial object and returns it with
// started true; the caller must end it with Commit or Abort.
func (c *Cache) BeginRecall(id uint64, size int64) (*Partial, bool, error) {
	return c.beginRecall(id, size, false, 0)
}

// ErrPreempted is the abort reason of a recall staged ahead whose space a
// read needed. It wraps ErrNotCached: a reader that had joined it asks again.
var ErrPreempted = fmt.Errorf("%w: staged ahead, its space was taken back for a read", ErrNotCached)

// BeginStageAhead is BeginRecall for bytes nobody is waiting for yet (the
// archive stages the rest of a traversal ahead of its reader). It keeps
// keepFree bytes free, and evicts only objects that someone has opened
// since they were staged (never one staged ahead and still unread, never
// one in use); it returns ErrNoSpace when that is not enough. Until Promote, the partial object yields its
// space to a BeginRecall that cannot find room otherwise (it is aborted
// with ErrPreempted), so staging ahead never makes a read fail.
func (c *Cache) BeginStageAhead(id uint64, size, keepFree int64) (*Partial, bool, error) {
	return c.beginRecall(id, size, true, keepFree)
}

// evictReadLocked is the eviction staging ahead may do: least recently used
// objects that are evictable and not themselves staged ahead and still
// unread, until Used ≤ target. It returns the trash.
func (c *Cache) evictReadLocked(target int64) []string {
	var trash []string
	var newer slot
	for s := c.index.back(); s != noSlot && c.used > target; s = newer {
		newer = c.index.newer(s) // before s may leave the list
		if c.busyLocked(s) != "" || c.index.at(s).has(flagUnread) {
			continue
		}
		if t, err := c.evictLocked(s); err == nil {
			trash = appendTrash(trash, t)
		}
	}
	return trash
}

// Promote makes a partial object staged ahead an ordinary recall: a reader
// now waits for it, so it is no longer preempted.
func (p *Partial) Promote() {
	p.c.mu.Lock()
	p.ahead = false
	p.c.mu.Unlock()
}

// preemptAheadLocked aborts every recall staged ahead, giving their space
// back, and returns their trash.
func (c *Cache) preemptAheadLocked() []string {
	var trash []string
	for _, p := range c.partialsLocked() {
		if p.ahead && !p.done {
			trash = appendTrash(trash, c.abortLocked(p, ErrPreempted))
		}
	}
	return trash
}

func (c *Cache) beginRecall(id uint64, size int64, ahead bool, keepFree int64) (*Partial, bool, error) {
	if size < 0 || size > maxObjectSize {
		return nil, false, fmt.Errorf("recall object %d: impossible size %d", id, size)
	}
	if err := os.MkdirAll(c.fanoutDir(id), 0o755); err != nil {
		return nil, false, fmt.Errorf("recall object %d: %w", id, err)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, fmt.Errorf("recall object %d: %w", id, errClosed)
	}
	if c.index.find(id) != noSlot {
		c.mu.Unlock()
		return nil, false, nil
	}
	var trash []string
	var err error
	if ahead {
		trash = c.evictReadLocked(c.limit - keepFree - size)
		if free := c.limit - c.used - keepFree; size > free {
			err = fmt.Errorf("%w: staging ahead takes only free space and objects already read (%s free beyond %s kept for reads, %s needed)",
				ErrNoSpace, formatBytes(max(free, 0)), formatBytes(keepFree), formatBytes(size))
		}
	} else {
		trash, err = c.reserveLocked(size)
		if errors.Is(err, ErrNoSpace) {
			// Bytes staged ahead are a guess; a read is not.
			if pre := c.preemptAheadLocked(); len(pre) > 0 {
				var more []string
				more, err = c.reserveLocked(size)
				trash = append(append(trash, pre...), more...)
			}
		}
	}
	if err != nil {
		c.mu.Unlock()
		_ = removeTrash(trash)
		return nil, false, fmt.Errorf("recall object %d: %w", id, err)
	}
	// Under the lock, so that the file exists whenever the index says so.
	f, err := os.OpenFile(c.partialPath(id), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		c.mu.Unlock()
		_ = removeTrash(trash)
		return nil, false, fmt.Errorf("recall object %d: %w", id, err)
	}
	p := &Partial{c: c, id: id, size: size, f: f, progress: make(chan struct{}), ahead: ahead}
	// Synced from the start: its bytes come from tape.
	c.insertLocked(id, size, flagSynced, p)
	c.mu.Unlock()
	_ = removeTrash(trash) // leftovers go at the next Open
	return p, true, nil
}

// Write appends b to the object and wakes the readers waiting for it. It
// refuses to write past the size given to BeginRecall.
func (p *Partial) Write(b []byte) (int, error) {
	c := p.c
	c.mu.Lock()
	if p.done {
		err := p.doneErrLocked()
		c.mu.Unlock()
		return 0, err
	}
	if over := p.filled + int64(len(b)) - p.size; over > 0 {
		c.mu.Unlock()
		return 0, fmt.Errorf("recall object %d: %d bytes past its size %d", p.id, over, p.size)
	}
	c.mu.Unlock()

	n, err := p.f.Write(b)

	c.mu.Lock()
	if n > 0 && !p.done {
		p.filled += int64(n)
		p.wakeLocked()
	}
	c.mu.Unlock()
	if err != nil {
		return n, fmt.Errorf("recall object %d: %w", p.id, err)
	}
	return n, nil
}

// ReadAt reads bytes already written to the object (the archive reads a
// recalled object back to check its md5 before it commits it). It fails
// once the recall has ended in an abort.
func (p *Partial) ReadAt(b []byte, off int64) (int, error) { return p.f.ReadAt(b, off) }

// Verified says that every byte is written and checked (the archive has
// compared the CRC32C or the md5 recorded at sealing): readers may have the last bytes now, without waiting
// for Commit's fsync. The object stays partial until Commit, so a crash
// before it leaves nothing that a restart would serve (partial objects are
// deleted at Open); a recalled object's bytes are on tape, so losing them is
// only a second recall.
func (p *Partial) Verified() {
	c := p.c
	c.mu.Lock()
	if !p.done && p.filled == p.size {
		p.verified = true
		p.wakeLocked()
	}
	c.mu.Unlock()
}

// Filled is how many bytes have been written so far.
func (p *Partial) Filled() int64 {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	return p.filled
}

// Commit makes the recalled object complete and synced, now (CommitLater
// does it in the background). Every byte must have been written. If Commit
// fails before the rename, the recall is aborted with its error, so that
// no waiter is left hanging.
func (p *Partial) Commit() error {
	c := p.c
	c.mu.Lock()
	if p.queued && !p.done {
		c.mu.Unlock()
		return fmt.Errorf("commit object %d: %w", p.id, errNotQueued)
	}
	c.mu.Unlock()
	return c.commitBatch([]*Partial{p})[0]
}

// Abort ends the recall: the partial object is deleted and every WaitRange
// on it returns an error wrapping err. Aborting an ended recall does
// nothing.
func (p *Partial) Abort(err error) {
	if err == nil {
		err = errAborted
	}
	p.c.mu.Lock()
	trash := p.c.abortLocked(p, err)
	p.c.mu.Unlock()
	_ = removeTrash(appendTrash(nil, trash))
}

// abortLocked ends p with err and returns its file in the trash, to unlink.
func (c *Cache) abortLocked(p *Partial, err error) string {
	if p.done {
		return ""
	}
	p.done, p.err = true, err
	_ = p.f.Close() // the bytes are dropped; a pending Write fails
	trash, terr := c.trashLocked(c.partialPath(p.id))
	if terr != nil {
		// Cannot move it: unlink it here, though it may be slow, so that
		// a new recall of the same ID starts from an empty file.
		_ = os.Remove(c.partialPath(p.id))
	}
	c.dropPartialLocked(p)
	p.wakeLocked()
	return trash
}

// dropPartialLocked removes the object that p, not done before, was
// filling from the index.
func (c *Cache) dropPartialLocked(p *Partial) {
	if c.partialLocked(p.slot) != p {
		panic(fmt.Sprintf("cache index: recall of object %d lost its slot", p.id))
	}
	c.dropLocked(p.slot)
}

func (p *Partial) wakeLocked() {
	close(p.progress)
	p.progress = make(chan struct{})
}

func (p *Partial) doneErrLocked() error {
	if p.err != nil {
		return &abortedError{id: p.id, err: p.err}
	}
	return fmt.Errorf("recall of object %d already committed", p.id)
}

// WaitRange waits until bytes [off, off+n) of object id are in the cache,
// clipped to the object's size. It returns at once for a complete object. For
// a partial one it returns when the recall has written that far, with the
// recall's error if it is aborted first, or with ctx.Err() if ctx ends first
// (the recall goes on). It returns ErrNotCached if the object is neither
// complete nor being recalled.
//
// A range that reaches the end of the object is ready only when the
// recall is verified or committed, never merely filled.
func (c *Cache) WaitRange(ctx context.Context, id uint64, off, n int64) error {
	c.mu.Lock()
	s := c.index.find(id)
	if s == noSlot {
		c.mu.Unlock()
		return fmt.Errorf("wait for object %d: %w", id, ErrNotCached)
	}
	p := c.partialLocked(s)
	if p == nil {
		c.mu.Unlock()
		return nil
	}
	end := p.size
	if n >= 0 && off <= p.size-n { // without overflow
		end = off + n
	}
	for {
		// Holding p, not the index entry: after an abort the ID may be
		// gone or recalled anew, and this waiter must still get the error.
		if p.err != nil {
			err := p.doneErrLocked()
			c.mu.Unlock()
			return err
		}
		// The last bytes are given out only once the recall is verified
		// (or committed): the archive checks the checksum first, so a reader
		// that reads to the end gets either checked bytes or the error.
		if p.filled >= end && (end < p.size && !p.hold || p.done || p.verified) {
			c.mu.Unlock()
			return nil
		}
		progress := p.progress
		p.waiters++
		c.mu.Unlock()
		var err error
		select {
		case <-progress:
		case <-ctx.Done():
			err = ctx.Err()
		}
		c.mu.Lock()
		p.waiters--
		if err != nil {
			c.mu.Unlock()
			return err
		}
	}
}
