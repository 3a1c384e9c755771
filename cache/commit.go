package cache

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The committer makes recalled objects complete in the background, so
// that a cartridge pass goes on to its next member instead of waiting for
// an fsync of the last one (for a 1 GiB member that is the time to write
// 1 GiB to the disk, during which the drive would stand still).
//
// A commit is, per object, in this order: the contents are made durable
// (fdatasync), the partial file is renamed to the object's name, and the
// fan-out directory is synced. The order is what makes a crash harmless:
// an object's name never exists on disk before its bytes do, and a partial
// file is deleted at Open, so after a crash at any point an object is
// either complete and whole or recalled again — never served short or
// damaged. The readers do not wait for any of it: they got the last bytes
// when the archive verified the checksum (Verified).
//
// Many objects waiting together are committed as one batch: writeback of
// all of them is started first and each is then waited for (the first
// fdatasync commits the filesystem's journal for all of them), and each
// fan-out directory is synced once for the batch, not once per object — as
// AdoptAll does for sealing. Objects that become verified while a batch is
// being committed wait for the next one, so the batches grow by themselves
// when the disk is the slow part.

// maxCommitQueue bounds the objects waiting for the committer: each holds
// an open file. A recall that would pass it waits (CommitLater blocks),
// which only happens when the disk cannot keep up at all.
const maxCommitQueue = 512

// commitOps are the two syncs of a commit. Tests replace them to watch
// their order; everywhere else they are fdatasync and a directory fsync.
type commitOps struct {
	syncData func(*os.File) error
	syncDir  func(dir string) error
}

var defaultCommitOps = commitOps{syncData: fdatasync, syncDir: syncRenames}

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	// Control holds the file open: a concurrent Abort's Close cannot
	// hand the descriptor number to another file in between.
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = unix.Fdatasync(int(fd)); serr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}

// startWriteback asks the kernel to start writing f's dirty pages without
// waiting for them, so that the writeback of a batch's objects overlaps.
// Failure only costs that overlap: fdatasync comes next anyway.
func startWriteback(f *os.File) {
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
		})
	}
}

// CommitLater hands a recall whose every byte is written (normally one that
// is Verified) to the cache's committer and returns at once; done, if not
// nil, is called with Commit's result once the object is committed or has
// failed to be (then it was aborted, as by a failed Commit). Until then
// the object stays partial: not evictable, and gone after a crash.
func (p *Partial) CommitLater(done func(error)) {
	c := p.c
	c.mu.Lock()
	for len(c.commitQ) >= maxCommitQueue && !c.closed && !p.done {
		room := c.commitRoom
		c.mu.Unlock()
		<-room
		c.mu.Lock()
	}
	if p.done || c.closed {
		// Ended meanwhile; or the cache is closing, which aborts it.
		err := p.doneErrLocked()
		if !p.done {
			err = fmt.Errorf("commit object %d: %w", p.id, errClosed)
		}
		c.mu.Unlock()
		if done != nil {
			done(err)
		}
		return
	}
	p.queued, p.onCommit = true, done
	c.commitQ = append(c.commitQ, p)
	if c.committing == nil {
		c.committing = make(chan struct{})
		c.commitRoom = make(chan struct{})
		go c.commitLoop(c.committing)
	}
	c.mu.Unlock()
}

// commitLoop commits what is queued, a batch at a time, and ends when the
// queue is empty (closing idle).
func (c *Cache) commitLoop(idle chan struct{}) {
	for {
		c.mu.Lock()
		batch := c.commitQ
		c.commitQ = nil
		close(c.commitRoom)
		c.commitRoom = make(chan struct{})
		if len(batch) == 0 {
			c.committing = nil
			c.mu.Unlock()
			close(idle)
			return
		}
		c.mu.Unlock()
		errs := c.commitBatch(batch)
		for i, p := range batch {
			if p.onCommit != nil {
				p.onCommit(errs[i])
			}
		}
	}
}

// WaitCommits waits until every recall handed to CommitLater so far is
// committed (or failed to be).
func (c *Cache) WaitCommits() {
	c.mu.Lock()
	idle := c.committing
	c.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// commitBatch commits the recalls of batch (see the top of this file) and
// returns each one's error. A recall that fails is aborted.
func (c *Cache) commitBatch(batch []*Partial) []error {
	errs := make([]error, len(batch))
	var live, short []int
	c.mu.Lock()
	for i, p := range batch {
		switch {
		case p.done:
			errs[i] = p.doneErrLocked()
		case p.filled != p.size:
			errs[i] = fmt.Errorf("recall object %d: short: %d of %d bytes", p.id, p.filled, p.size)
			short = append(short, i)
		default:
			live = append(live, i)
		}
	}
	c.mu.Unlock()
	for _, i := range short {
		batch[i].Abort(errs[i])
	}

	// The bytes first: no name before its contents are on the disk.
	if len(live) > 1 {
		for _, i := range live {
			startWriteback(batch[i].f)
		}
	}
	synced := live[:0:0]
	for _, i := range live {
		p := batch[i]
		if err := c.ops.syncData(p.f); err != nil {
			c.mu.Lock()
			if p.done { // aborted meanwhile, which closed the file: say why
				err = p.doneErrLocked()
			} else {
				err = fmt.Errorf("recall object %d: %w", p.id, err)
			}
			c.mu.Unlock()
			p.Abort(err)
			errs[i] = err
			continue
		}
		synced = append(synced, i)
	}

	// Then the names, under the lock like every change of the index.
	dirs := map[string][]int{}
	var trash []string
	c.mu.Lock()
	for _, i := range synced {
		p := batch[i]
		id := p.id
		if p.done { // removed, superseded or closed meanwhile
			errs[i] = p.doneErrLocked()
			continue
		}
		if err := os.Rename(c.partialPath(id), c.ObjectPath(id)); err != nil {
			errs[i] = fmt.Errorf("recall object %d: %w", id, err)
			trash = appendTrash(trash, c.abortLocked(p, errs[i]))
			continue
		}
		s := p.slot
		e := c.index.extraOf(s)
		if e == nil || e.partial != p {
			panic(fmt.Sprintf("cache index: recall of object %d lost its slot", id))
		}
		c.unaccountLocked(s)
		e.partial = nil
		c.index.at(s).set(flagSynced, true)
		c.index.at(s).set(flagUnread, p.ahead) // nobody has opened it yet: staging ahead leaves it be
		c.index.tidyExtra(s, e)
		c.accountLocked(s)
		c.touchLocked(s)
		p.done = true
		p.wakeLocked()
		dir := c.fanoutDir(id)
		dirs[dir] = append(dirs[dir], i)
	}
	c.mu.Unlock()
	_ = removeTrash(trash)

	for _, is := range dirs {
		for _, i := range is {
			if err := batch[i].f.Close(); err != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("recall object %d: %w", batch[i].id, err)
			}
		}
	}
	// Last, each directory once. Should this fail, the objects stay: a
	// crash could only lose their new names, and then they are recalled
	// again (their partial files are deleted at Open).
	for dir, is := range dirs {
		if err := c.ops.syncDir(dir); err != nil {
			for _, i := range is {
				if errs[i] == nil {
					errs[i] = fmt.Errorf("recall object %d: %w", batch[i].id, err)
				}
			}
		}
	}
	return errs
}

// waitQueuedLocked waits, with c.mu held (released while waiting), until
// the recall p handed to the committer has ended. It reports whether it
// waited (the caller must look at the index again).
func (c *Cache) waitQueuedLocked(p *Partial) bool {
	if p == nil || !p.queued {
		return false
	}
	for !p.done {
		progress := p.progress
		p.waiters++
		c.mu.Unlock()
		<-progress
		c.mu.Lock()
		p.waiters--
	}
	return true
}

// errNotQueued is Commit's refusal of a recall already handed to
// CommitLater.
var errNotQueued = errors.New("already handed to the committer")
