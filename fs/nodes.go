package fs

import (
	"os"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
)

// rootDir is the mount root: one directory per workspace of the catalog.
// Workspaces may be created while mounted, so it answers from the catalog
// every time.
type rootDir struct {
	gofs.Inode
	readOnly
}

// wsDir is MOUNT/<ws>: put/ and one directory per live batch.
type wsDir struct {
	gofs.Inode
	readOnly
	ws string
}

// batchDir is MOUNT/<ws>/<id>: the top level of a batch tree, with the
// batch record as xattrs.
type batchDir struct {
	gofs.Inode
	readOnly
	ws string
	id uint64
}

// entryNode is a directory, file or symlink of a batch tree. For a regular
// file id is the data owner's ID, shared by all hard links to it; for
// directories and symlinks it is the entry's own ID.
type entryNode struct {
	gofs.Inode
	readOnly
	ws    string
	batch uint64
	id    uint64
	typ   archive.FileType
	// parentIno is the inode number of the directory holding it, for "..".
	parentIno uint64
	// direct counts its open direct-I/O handles (see entryNode.Open).
	direct atomic.Int32
}

func (f *FS) newWorkspace(ws string) *wsDir {
	n := &wsDir{ws: ws}
	n.readOnly = readOnly{fsys: f, node: &n.Inode}
	return n
}

func (f *FS) newBatchDir(ws string, id uint64) *batchDir {
	n := &batchDir{ws: ws, id: id}
	n.readOnly = readOnly{fsys: f, node: &n.Inode}
	return n
}

func (f *FS) newEntry(ws string, file *archive.File) *entryNode {
	id := file.ID
	if file.Type == archive.TypeFile {
		id = file.DataID()
	}
	n := &entryNode{ws: ws, batch: file.Batch, id: id, typ: file.Type, parentIno: batchIno(file.Batch)}
	if file.Parent != 0 {
		n.parentIno = fileIno(file.Parent)
	}
	n.readOnly = readOnly{fsys: f, node: &n.Inode}
	return n
}

// entryStable is the identity go-fuse keys a batch tree entry by.
func entryStable(file *archive.File) gofs.StableAttr {
	return gofs.StableAttr{Mode: fileMode(file.Type), Ino: fileIno(file.DataID())}
}

func fileMode(t archive.FileType) uint32 {
	switch t {
	case archive.TypeDir:
		return syscall.S_IFDIR
	case archive.TypeSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

func setTimes(out *fuse.Attr, t time.Time) {
	if t.IsZero() {
		return
	}
	sec, nsec := uint64(t.Unix()), uint32(t.Nanosecond())
	out.Mtime, out.Mtimensec = sec, nsec
	out.Atime, out.Atimensec = sec, nsec
	out.Ctime, out.Ctimensec = sec, nsec
}

// dirAttr fills the attributes of a directory tapefs makes up. Directory
// link counts are 1: find and fts then make no assumption about
// subdirectories, as on btrfs.
func dirAttr(out *fuse.Attr, ino uint64, mode, uid, gid uint32, t time.Time) {
	out.Ino = ino
	out.Mode = syscall.S_IFDIR | mode
	out.Nlink = 1
	out.Uid, out.Gid = uid, gid
	out.Size = 4096
	out.Blksize = dirBlksize
	out.Blocks = 8
	setTimes(out, t)
}

func (f *FS) rootAttr(out *fuse.Attr) {
	dirAttr(out, rootIno, 0o755, uint32(os.Geteuid()), uint32(os.Getegid()), f.start)
}

// The modes of the directories tapefs makes up spell the access rule of
// archive/access.go for the kernel, which checks them (default_permissions)
// before a request reaches tapefs:
//
//   - a workspace directory belongs to the manager and the workspace's
//     group, others may not enter (only they see the workspace); it is
//     group-writable and sticky, like /tmp, so that rmdir of a batch
//     directory reaches tapefs for exactly root, the manager (owner of the
//     workspace directory) and the batch's owner (owner of the batch
//     directory) — nothing else can be created in it (EROFS);
//   - a batch directory belongs to the batch's owner and the workspace's
//     group, group-writable so that rm -r of its top level reaches
//     tapefs, which refuses members who may not remove it.
//
// Inside a batch the recorded modes of the tree apply, as on any file
// system: rm -r needs write permission on each directory it empties.
func wsAttr(w *archive.Workspace, out *fuse.Attr) {
	dirAttr(out, workspaceIno(w.Name), syscall.S_ISVTX|0o770, w.Manager, w.Group, w.Created)
}

func batchAttr(b *archive.Batch, w *archive.Workspace, out *fuse.Attr) {
	t := b.Sealed
	if t.IsZero() {
		t = b.Created
	}
	dirAttr(out, batchIno(b.ID), 0o775, b.Owner, w.Group, t)
}

// fileBlksize is the st_blksize of a batch file. cat, cp and most tools
// size their reads by it (coreutils reads max(128 KiB, st_blksize)); a
// file read through the daemon (while it is recalled, or without
// passthrough) costs one FUSE request per read, so 1 MiB (the mount's
// largest request) makes 8 times fewer round trips than 128 KiB.
const fileBlksize = 1 << 20

// dirBlksize is the st_blksize of the directories of the read-only tree.
// glibc's opendir sizes its getdents buffer by it (between 32 KiB and
// 1 MiB), and the kernel sizes each READDIRPLUS request by that buffer:
// with 4096 a directory of 1,000 entries took 6 round trips to the
// daemon, with 1 MiB (the mount's largest request) it takes 2, which is
// most of what a cold `find` or `du` of a batch costs on a busy machine.
const dirBlksize = 1 << 20

// entryAttr fills the attributes of a batch tree entry from its catalog
// record, without touching tape. An offline file reports st_blocks = 1,
// never 0: GNU tar --sparse archives a file with no blocks as all holes
// without reading it.
func (f *FS) entryAttr(file *archive.File, out *fuse.Attr) {
	out.Ino = fileIno(file.DataID())
	out.Mode = fileMode(file.Type) | file.Mode&0o7777
	out.Uid, out.Gid = file.UID, file.GID
	out.Blksize = 4096
	out.Nlink = 1
	setTimes(out, file.Mtime)
	switch file.Type {
	case archive.TypeDir:
		out.Size = 4096
		out.Blksize = dirBlksize
		out.Blocks = 8
	case archive.TypeSymlink:
		out.Size = uint64(len(file.Target))
	default:
		out.Size = uint64(file.Size)
		out.Blksize = fileBlksize
		if file.Nlink > 1 {
			out.Nlink = file.Nlink
		}
		out.Blocks = (out.Size + 511) / 512
		if out.Size > 0 && file.State != archive.Online {
			out.Blocks = 1
		}
	}
}
