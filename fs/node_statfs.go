package fs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
)

// statfs (df) answers "how much can still be copied in?". Everything put
// into the mount lands in the disk cache first and waits there until it is
// on tape, so the cache is the limit a writer meets (ENOSPC), while the
// library's capacity is far larger and is reported by 'tapefs library
// status'. So the mount's root and every put/ report the cache: its size
// limit as the size, what it holds as used, and as free the lesser of the
// room left under the limit and the free space of its disk (which other
// users of the disk also take). A workspace with a quota reports its quota
// and use instead, outside put/.

// statfsDisk reports the file system of the cache directory.
func (f *FS) statfsDisk(out *fuse.StatfsOut) syscall.Errno {
	dir := f.opts.CacheDir
	if dir == "" {
		dir = "/"
	}
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return errnoOf(err)
	}
	out.FromStatfsT(&s)
	return 0
}

// statfsCache reports the cache (see above); file counts stay the disk's.
func (f *FS) statfsCache(out *fuse.StatfsOut) syscall.Errno {
	if errno := f.statfsDisk(out); errno != 0 {
		return errno
	}
	unit := uint64(out.Frsize)
	if unit == 0 {
		unit = uint64(out.Bsize)
	}
	if f.opts.CacheSpace == nil || unit == 0 {
		return 0
	}
	limit, used := f.opts.CacheSpace()
	room := uint64(max(limit-used, 0)) / unit
	out.Blocks = uint64(max(limit, 0)) / unit
	out.Bfree = min(out.Bavail, room)
	out.Bavail = out.Bfree
	return 0
}

func (f *FS) statfsWorkspace(ws string, out *fuse.StatfsOut) syscall.Errno {
	var w archive.Workspace
	if errno := f.view("statfs", func(tx archive.Snapshot) error {
		var err error
		w, err = tx.Workspace(ws)
		return err
	}); errno != 0 {
		return errno
	}
	if errno := f.statfsCache(out); errno != 0 {
		return errno
	}
	if w.Quota > 0 {
		quotaStatfs(w.Quota, w.Used, out)
	}
	return 0
}

// quotaStatfs reports a quota as the size of the file system and what is
// left of it as its free space; file counts stay the disk's.
func quotaStatfs(quota, used int64, out *fuse.StatfsOut) {
	const bsize = 4096
	out.Bsize, out.Frsize = bsize, bsize
	out.Blocks = uint64(quota) / bsize
	free := uint64(max(quota-used, 0)) / bsize
	out.Bfree, out.Bavail = free, free
}

func (r *rootDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return r.fsys.statfsCache(out)
}

func (w *wsDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return w.fsys.statfsWorkspace(w.ws, out)
}

func (b *batchDir) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return b.fsys.statfsWorkspace(b.ws, out)
}

func (n *entryNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.fsys.statfsWorkspace(n.ws, out)
}
