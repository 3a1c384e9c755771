package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/catalog"
)

// Attributes in put/: the staged files' own, except put/ itself, which
// shows as the workspace manager's and cannot be changed.

func (n *putNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if !n.isRoot() {
		return n.loopGetattr(ctx, f, out)
	}
	var w catalog.Workspace
	if errno := n.fsys.view("getattr", func(tx *catalog.Tx) error {
		var err error
		w, err = tx.Workspace(n.ws)
		return err
	}); errno != 0 {
		return errno
	}
	var st syscall.Stat_t
	if err := syscall.Stat(n.RootData.Path, &st); err != nil {
		return gofsErrno(err)
	}
	putRootAttr(&w, &st, &out.Attr)
	return 0
}

// Statx of put/ itself is left to Getattr (ENOSYS makes the kernel fall
// back), so that it shows the same owner.
func (n *putNode) Statx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if n.isRoot() {
		return syscall.ENOSYS
	}
	return n.loopStatx(ctx, f, flags, mask, out)
}

// Setattr covers chmod, chown, utimes and truncate.
func (n *putNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.isRoot() {
		return n.refuse(ctx, "setattr", "", syscall.EPERM)
	}
	n.changed(n.entry(""))
	errno := n.loopSetattr(ctx, f, in, out)
	fd := -1
	if h, ok := f.(*putFile); ok {
		fd = h.fd()
	}
	n.setattrDone(ctx, fd, in, out, errno)
	return errno
}

// Statfs reports the cache disk's free room, less when the cache's own
// limit leaves less.
func (n *putNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	// The staging directory itself: the path of a deep node is too
	// long for statfs(2), and every node is on the same file system.
	var st syscall.Statfs_t
	if err := syscall.Statfs(n.RootData.Path, &st); err != nil {
		return gofsErrno(err)
	}
	out.FromStatfsT(&st)
	unit := out.Frsize
	if unit == 0 {
		unit = out.Bsize
	}
	if n.fsys.opts.CacheRoom == nil || unit == 0 {
		return 0
	}
	room := uint64(max(n.fsys.opts.CacheRoom(), 0)) / uint64(unit)
	out.Bfree = min(out.Bfree, room)
	out.Bavail = min(out.Bavail, room)
	return 0
}

// gofsErrno maps a system call error.
func gofsErrno(err error) syscall.Errno { return gofs.ToErrno(err) }
