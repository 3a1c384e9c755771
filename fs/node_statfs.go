package fs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/catalog"
)

// statfs: under a workspace, its quota and use; with no quota (and at the
// root), the cache's disk. put/ reports the cache's free room (put_attr.go).

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

func (f *FS) statfsWorkspace(ws string, out *fuse.StatfsOut) syscall.Errno {
	var w catalog.Workspace
	if errno := f.view("statfs", func(tx *catalog.Tx) error {
		var err error
		w, err = tx.Workspace(ws)
		return err
	}); errno != 0 {
		return errno
	}
	if errno := f.statfsDisk(out); errno != 0 {
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
	return r.fsys.statfsDisk(out)
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
