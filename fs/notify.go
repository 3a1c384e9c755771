package fs

import (
	"strconv"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/tapefs/tapefs/archive"
)

// The kernel caches the names and attributes of workspace and batch
// directories for Options.DirTimeout, long: the engine tells the mount of
// every batch change made behind its back (a seal by the settle timer, a
// CLI put, tapefs rm, undelete, purge), and the mount drops the kernel's
// entries at once.
//
// Notifications run on the engine's delivery goroutine, never inside a
// FUSE request: the kernel takes the directory's lock to invalidate an
// entry, and the request whose engine call published the change (rmdir of
// a batch, setfattr user.tapefs.seal) may hold it until it is answered.
// Such a notification waits for that answer; nothing waits for it inside
// a request.

// An invalidation locks the directory (and, for a deletion, the entry's
// inode) in the kernel, uninterruptibly. A request of this mount that holds
// one of those locks while the engine publishes its change — rmdir of a
// batch holds the workspace directory and the batch directory, setfattr
// user.tapefs.seal the entry — makes the notification wait for its reply.
// That is harmless while the daemon runs, but a daemon killed (kill -9) in
// that moment could not exit: its notifying thread sleeps in the kernel
// on the lock, the request waits for a reply that never comes, and the
// connection is aborted only once the daemon has exited. So:
//
//   - a removal made by this mount's own rmdir is not notified at all:
//     the kernel drops the entry itself when the rmdir succeeds;
//   - a sealed entry of put/ is dropped with an entry invalidation, which
//     locks put/ only, not the entry the setfattr holds.

// ownRemovals are the batch directories this mount's rmdir is removing.
type ownRemovals struct {
	mu  sync.Mutex
	ids map[uint64]int
}

func (o *ownRemovals) begin(id uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ids == nil {
		o.ids = map[uint64]int{}
	}
	o.ids[id]++
}

func (o *ownRemovals) end(id uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ids[id]--; o.ids[id] <= 0 {
		delete(o.ids, id)
	}
}

func (o *ownRemovals) has(id uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ids[id] > 0
}

// onChange drops the kernel's cached entries that a change made stale.
func (f *FS) onChange(c archive.Change) {
	root := f.root
	if root == nil {
		return
	}
	ws := root.GetChild(c.Workspace)
	if ws == nil {
		return // the kernel holds nothing under this workspace
	}
	name := strconv.FormatUint(c.Batch, 10)
	switch c.Kind {
	case archive.ChangeRemoved, archive.ChangePurged:
		if c.Kind == archive.ChangeRemoved && f.own.has(c.Batch) {
			return // this mount's rmdir: the kernel drops the entry itself
		}
		f.dropEntry(ws, name)
	case archive.ChangeSealed:
		if c.Entry != "" {
			if put := ws.GetChild("put"); put != nil {
				f.invalidate(put, c.Entry, false)
			}
		}
		if b := ws.GetChild(name); b != nil {
			// A CLI put's batch directory shows its seal time.
			f.notifyErr(b.NotifyContent(-1, 0), "attributes", c.Workspace, name)
		}
	case archive.ChangeUndeleted:
		// Negative entries are not cached; a stale name could only be
		// left from before the removal if its notification failed.
		f.dropEntry(ws, name)
	}
}

// dropEntry invalidates the kernel's entry name in dir (and tells inotify
// watchers of a deletion when the kernel knows the inode).
func (f *FS) dropEntry(dir *gofs.Inode, name string) { f.invalidate(dir, name, true) }

// invalidate drops the kernel's entry name in dir: as a deletion (which
// locks the entry's inode too) when asked and the kernel knows the inode,
// else as a plain entry invalidation (the directory's lock only).
func (f *FS) invalidate(dir *gofs.Inode, name string, deletion bool) {
	var errno syscall.Errno
	if child := dir.GetChild(name); deletion && child != nil {
		errno = dir.NotifyDelete(name, child)
	} else {
		errno = dir.NotifyEntry(name)
	}
	p := dir.Path(nil)
	if errno == 0 {
		f.log.Debug().Str("dir", p).Str("name", name).Msg("kernel entry dropped")
	}
	f.notifyErr(errno, "entry", p, name)
}

func (f *FS) notifyErr(errno syscall.Errno, what, dir, name string) {
	// ENOENT: the kernel had no such entry (it dropped it itself, or
	// never looked it up). ENOTEMPTY, EBUSY: a directory still in use
	// below (a shell's working directory); the name is invalidated all
	// the same. ENOTCONN, EBADF: the mount is going away.
	switch errno {
	case 0, syscall.ENOENT, syscall.ENOTEMPTY, syscall.EBUSY, syscall.ENOTCONN, syscall.EBADF, syscall.ENOSYS:
		return
	}
	f.log.Warn().Str("dir", dir).Str("name", name).Str("errno", errnoName(errno)).
		Msgf("the kernel refused a cache invalidation (%s): the mount may show the old state until its cache timeout", what)
}
