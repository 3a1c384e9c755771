package fs

import (
	"context"
	"path"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// readOnly refuses every change to a node outside put/ with EROFS and a log
// line. Every node type outside put/ embeds it: go-fuse lets an unlink or
// rmdir that a node does not implement succeed silently, so each operation
// is spelt out here, and the nodes that accept some (rm in a batch tree, the
// writable xattrs) override it.
type readOnly struct {
	fsys *FS
	node *gofs.Inode
}

// refuse logs a refused write to the node (or its child name) and returns
// errno.
func (r readOnly) refuse(ctx context.Context, op, name string, errno syscall.Errno) syscall.Errno {
	p := r.node.Path(nil)
	if name != "" {
		p = path.Join(p, name)
	}
	ev := r.fsys.log.Warn().Str("op", op).Str("path", p).Str("errno", errnoName(errno))
	if uid, _, ok := caller(ctx); ok {
		ev = ev.Uint32("uid", uid)
	}
	ev.Msg("write refused")
	return errno
}

func (r readOnly) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return r.refuse(ctx, "setattr", "", syscall.EROFS)
}

func (r readOnly) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.refuse(ctx, "mkdir", name, syscall.EROFS)
}

func (r readOnly) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.refuse(ctx, "mknod", name, syscall.EROFS)
}

func (r readOnly) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, r.refuse(ctx, "create", name, syscall.EROFS)
}

func (r readOnly) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, r.refuse(ctx, "tmpfile", "", syscall.EROFS)
}

func (r readOnly) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.refuse(ctx, "symlink", name, syscall.EROFS)
}

func (r readOnly) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, r.refuse(ctx, "link", name, syscall.EROFS)
}

func (r readOnly) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	return r.refuse(ctx, "rename", name, syscall.EROFS)
}

func (r readOnly) Unlink(ctx context.Context, name string) syscall.Errno {
	return r.refuse(ctx, "unlink", name, syscall.EROFS)
}

func (r readOnly) Rmdir(ctx context.Context, name string) syscall.Errno {
	return r.refuse(ctx, "rmdir", name, syscall.EROFS)
}

// Getxattr of the root and workspace directories, which keep no
// attributes (batch directories and batch trees answer their own).
func (r readOnly) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, foreignXattr(attr)
}

func (r readOnly) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return r.refuse(ctx, "setxattr "+attr, "", syscall.EROFS)
}

func (r readOnly) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return r.refuse(ctx, "removexattr "+attr, "", syscall.EROFS)
}

// openReadOnly refuses an open for writing.
func (r readOnly) openReadOnly(ctx context.Context, flags uint32) syscall.Errno {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&(syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return r.refuse(ctx, "open for writing", "", syscall.EROFS)
	}
	return 0
}
