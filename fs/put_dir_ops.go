package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Namespace operations of put/. Each tells the engine that the entry
// changed before it happens, so that an entry in the middle of a copy is
// never quiet; the loopback does the work, and new nodes belong to the
// caller (the loopback chowns them when the daemon runs as root).

func (n *putNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.changed(n.entry(name))
	ch, errno := n.loopMkdir(ctx, name, mode, out)
	if errno == 0 {
		n.fixMode(name, mode, &out.Attr)
	}
	return ch, errno
}

func (n *putNode) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.changed(n.entry(name))
	ch, errno := n.loopMknod(ctx, name, mode, dev, out)
	if errno == 0 {
		n.fixMode(name, mode, &out.Attr)
	}
	return ch, errno
}

func (n *putNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.changed(n.entry(name))
	return n.loopSymlink(ctx, target, name, out)
}

// Link makes the hard link itself: go-fuse's loopback Link does not get
// the paths right in a loopback that is not the mount root. Both entries
// change (the target's link count and ctime do).
func (n *putNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t, ok := target.(*putNode)
	if !ok || t.RootData != n.RootData {
		return nil, syscall.EXDEV
	}
	// A file made with O_TMPFILE is in no directory: it has no path.
	if _, parent := t.Parent(); parent == nil {
		return nil, syscall.EXDEV
	}
	n.changed(n.entry(name))
	n.changed(t.entry(""))
	from, errno := t.locate("")
	if errno != 0 {
		return nil, errno
	}
	defer from.close()
	to, errno := n.locate(name)
	if errno != 0 {
		return nil, errno
	}
	defer to.close()
	if err := unix.Linkat(from.dir, from.name, to.dir, to.name, 0); err != nil {
		return nil, gofs.ToErrno(err)
	}
	// The lookup gives the new name the inode number of the target, so
	// go-fuse joins it to the existing inode.
	return n.child(ctx, to, out)
}

func (n *putNode) Unlink(ctx context.Context, name string) syscall.Errno {
	entry := n.entry(name)
	n.changed(entry)
	errno := n.loopRemove(ctx, name, 0)
	if errno == 0 && n.isRoot() {
		n.fsys.open.detach(n.ws, entry)
	}
	return errno
}

func (n *putNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	entry := n.entry(name)
	n.changed(entry)
	errno := n.loopRemove(ctx, name, unix.AT_REMOVEDIR)
	if errno == 0 && n.isRoot() {
		n.fsys.open.detach(n.ws, entry)
	}
	return errno
}

// Rename moves a name inside put/ (rsync renames its temporary files over
// the real names). When a whole top-level entry moves, its open handles are
// counted against its new name; a top-level entry that is replaced stops
// counting its handles. A subtree moved from one entry to another keeps
// counting against the entry it was opened in until its handles close.
func (n *putNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*putNode)
	if !ok || np.RootData != n.RootData {
		return syscall.EXDEV
	}
	from, to := n.entry(name), np.entry(newName)
	n.changed(from)
	np.changed(to)
	errno := n.loopRename(ctx, name, np, newName, flags)
	if errno != 0 {
		return errno
	}
	switch {
	case flags&unix.RENAME_EXCHANGE != 0:
		if n.isRoot() && np.isRoot() {
			n.fsys.open.exchange(n.ws, from, to)
		}
	case n.isRoot():
		if np.isRoot() && from != to {
			n.fsys.open.detach(n.ws, to)
		}
		n.fsys.open.move(n.ws, from, to)
	}
	return 0
}

// Tmpfile is not offered: a file made with O_TMPFILE has no path until it
// is linked, and go-fuse cannot link it into place. Programs fall back to
// a named temporary file.
func (n *putNode) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}
