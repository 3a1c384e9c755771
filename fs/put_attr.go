package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Attributes in put/: the staged files' own, except put/ itself, which
// shows as the workspace manager's and cannot be changed.

func (n *putNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if !n.isRoot() {
		return n.loopGetattr(ctx, f, out)
	}
	w, errno := n.fsys.workspace("getattr", n.ws)
	if errno != 0 {
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

// Statfs reports the cache, as the mount's root does: what is copied into
// put/ goes there first (node_statfs.go).
func (n *putNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	return n.fsys.statfsCache(out)
}

// gofsErrno maps a system call error.
func gofsErrno(err error) syscall.Errno { return gofs.ToErrno(err) }
