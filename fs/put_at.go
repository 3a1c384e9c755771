package fs

import (
	"context"
	"fmt"
	"path"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/tapefs/tapefs/internal/longpath"
)

// Deep trees in put/. go-fuse's loopback names every file by one absolute
// path, the staging directory joined with the path inside put/; past
// PATH_MAX (4,096 bytes with its NUL) the kernel refuses it with
// ENAMETOOLONG, although a local directory takes any depth (programs reach
// deep files relative to directory descriptors: cd, openat). So each
// operation of put/ first locates its file: a path short enough goes to
// the loopback as before; a longer one is reached from a descriptor of its
// parent directory, opened a piece of the path (shorter than PATH_MAX) at
// a time (internal/longpath), and the operation uses the *at system call.

// loc names a file of the staging directory for the *at system calls.
type loc struct {
	dir  int    // unix.AT_FDCWD, or a descriptor (O_PATH) of the parent directory
	name string // with AT_FDCWD the absolute path, else a name in dir
}

// deep reports whether the file is reached through a parent descriptor.
func (l loc) deep() bool { return l.dir != unix.AT_FDCWD }

func (l loc) close() {
	if l.deep() {
		unix.Close(l.dir)
	}
}

// procPath names the file open as fd for system calls that take only a
// path (the xattr calls).
func procPath(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// locate returns the loc of the child name of n ("": n itself).
func (n *putNode) locate(name string) (loc, syscall.Errno) {
	rel := n.Path(n.rootInode())
	if name != "" {
		rel = path.Join(rel, name)
	}
	full := filepath.Join(n.RootData.Path, rel)
	if len(full) < longpath.Chunk {
		return loc{unix.AT_FDCWD, full}, 0
	}
	dir, base := path.Split(rel)
	fd, err := longpath.OpenDirAt(n.RootData.Path, dir)
	if err != nil {
		return loc{}, gofs.ToErrno(err)
	}
	return loc{fd, base}, 0
}

// statAt stats the file at l (not following a symlink), with the birth
// time go-fuse uses for the inode generation.
func statAt(l loc, st *syscall.Stat_t) (gen uint64, err error) {
	var x unix.Statx_t
	if err := unix.Statx(l.dir, l.name, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &x); err != nil {
		return 0, err
	}
	*st = syscall.Stat_t{
		Dev:     unix.Mkdev(x.Dev_major, x.Dev_minor),
		Ino:     x.Ino,
		Nlink:   uint64(x.Nlink),
		Mode:    uint32(x.Mode),
		Uid:     x.Uid,
		Gid:     x.Gid,
		Rdev:    unix.Mkdev(x.Rdev_major, x.Rdev_minor),
		Size:    int64(x.Size),
		Blksize: int64(x.Blksize),
		Blocks:  int64(x.Blocks),
		Atim:    syscall.Timespec{Sec: x.Atime.Sec, Nsec: int64(x.Atime.Nsec)},
		Mtim:    syscall.Timespec{Sec: x.Mtime.Sec, Nsec: int64(x.Mtime.Nsec)},
		Ctim:    syscall.Timespec{Sec: x.Ctime.Sec, Nsec: int64(x.Ctime.Nsec)},
	}
	// As go-fuse's loopback derives it, so that a node found by either
	// path is the same inode.
	gen = 1
	if x.Mask&unix.STATX_BTIME != 0 && (x.Btime.Sec != 0 || x.Btime.Nsec != 0) {
		gen = uint64(x.Btime.Sec)*1e9 + uint64(x.Btime.Nsec)
	}
	return gen, nil
}

// child makes the node of the new or found child name at l, filling out.
func (n *putNode) child(ctx context.Context, l loc, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var st syscall.Stat_t
	gen, err := statAt(l, &st)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	// go-fuse's idFromStat: the staging directory is one file system,
	// so the inode number is the staged file's.
	swapped := uint64(st.Dev)<<32 | uint64(st.Dev)>>32
	swappedRoot := n.RootData.Dev<<32 | n.RootData.Dev>>32
	attr := gofs.StableAttr{Mode: st.Mode, Gen: gen, Ino: swapped ^ swappedRoot ^ st.Ino}
	return n.NewInode(ctx, &gofs.LoopbackNode{RootData: n.RootData}, attr), 0
}

// ownedByCaller gives a new file to the caller, as the loopback does when
// the daemon runs as root.
func (n *putNode) ownedByCaller(ctx context.Context, l loc) {
	if c, ok := fuse.FromContext(ctx); ok && unix.Geteuid() == 0 {
		_ = unix.Fchownat(l.dir, l.name, int(c.Uid), int(c.Gid), unix.AT_SYMLINK_NOFOLLOW)
	}
}

func (n *putNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	l, errno := n.locate(name)
	if errno != 0 {
		return nil, errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Lookup(ctx, name, out)
	}
	return n.child(ctx, l, out)
}

func (n *putNode) loopMkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	l, errno := n.locate(name)
	if errno != 0 {
		return nil, errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Mkdir(ctx, name, mode, out)
	}
	if err := unix.Mkdirat(l.dir, l.name, mode&0o777); err != nil {
		return nil, gofs.ToErrno(err)
	}
	n.ownedByCaller(ctx, l)
	return n.child(ctx, l, out)
}

func (n *putNode) loopMknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	l, errno := n.locate(name)
	if errno != 0 {
		return nil, errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Mknod(ctx, name, mode, dev, out)
	}
	if err := unix.Mknodat(l.dir, l.name, mode, int(dev)); err != nil {
		return nil, gofs.ToErrno(err)
	}
	n.ownedByCaller(ctx, l)
	return n.child(ctx, l, out)
}

func (n *putNode) loopSymlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	l, errno := n.locate(name)
	if errno != 0 {
		return nil, errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Symlink(ctx, target, name, out)
	}
	if err := unix.Symlinkat(target, l.dir, l.name); err != nil {
		return nil, gofs.ToErrno(err)
	}
	n.ownedByCaller(ctx, l)
	return n.child(ctx, l, out)
}

func (n *putNode) loopCreate(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	l, errno := n.locate(name)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Create(ctx, name, flags, mode, out)
	}
	flags = flags &^ syscall.O_APPEND
	fd, err := unix.Openat(l.dir, l.name, int(flags)|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode&0o777)
	if err != nil {
		return nil, nil, 0, gofs.ToErrno(err)
	}
	n.ownedByCaller(ctx, l)
	ch, errno := n.child(ctx, l, out)
	if errno != 0 {
		unix.Close(fd)
		return nil, nil, 0, errno
	}
	return ch, gofs.NewLoopbackFile(fd), 0, 0
}

func (n *putNode) loopOpen(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	l, errno := n.locate("")
	if errno != 0 {
		return nil, 0, errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Open(ctx, flags)
	}
	flags = flags &^ (syscall.O_APPEND | fuse.FMODE_EXEC)
	how := unix.OpenHow{Flags: uint64(flags) | unix.O_CLOEXEC, Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH}
	fd, err := unix.Openat2(l.dir, l.name, &how)
	if err != nil {
		return nil, 0, gofs.ToErrno(err)
	}
	return gofs.NewLoopbackFile(fd), 0, 0
}

func (n *putNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	ds, errno := n.Readdir(ctx)
	if errno != 0 {
		return nil, 0, errno
	}
	return ds, 0, 0
}

func (n *putNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	l, errno := n.locate("")
	if errno != 0 {
		return nil, errno
	}
	defer l.close()
	if !l.deep() {
		return gofs.NewLoopbackDirStream(l.name)
	}
	fd, err := unix.Openat(l.dir, l.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, gofs.ToErrno(err)
	}
	return gofs.NewLoopbackDirStreamFd(fd)
}

func (n *putNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	l, errno := n.locate("")
	if errno != 0 {
		return nil, errno
	}
	defer l.close()
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		k, err := unix.Readlinkat(l.dir, l.name, buf)
		if err != nil {
			return nil, gofs.ToErrno(err)
		}
		if k < size {
			return buf[:k], 0
		}
	}
}

func (n *putNode) loopRemove(ctx context.Context, name string, flags int) syscall.Errno {
	l, errno := n.locate(name)
	if errno != 0 {
		return errno
	}
	defer l.close()
	return gofs.ToErrno(unix.Unlinkat(l.dir, l.name, flags))
}

func (n *putNode) loopRename(ctx context.Context, name string, np *putNode, newName string, flags uint32) syscall.Errno {
	from, errno := n.locate(name)
	if errno != 0 {
		return errno
	}
	defer from.close()
	to, errno := np.locate(newName)
	if errno != 0 {
		return errno
	}
	defer to.close()
	if !from.deep() && !to.deep() {
		return n.LoopbackNode.Rename(ctx, name, np, newName, flags)
	}
	return gofs.ToErrno(unix.Renameat2(from.dir, from.name, to.dir, to.name, uint(flags)))
}

// loopGetattr is Getattr; a handle that cannot stat (a directory's) is
// no handle.
func (n *putNode) loopGetattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if _, ok := f.(gofs.FileGetattrer); ok {
		return n.LoopbackNode.Getattr(ctx, f, out)
	}
	l, errno := n.locate("")
	if errno != 0 {
		return errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Getattr(ctx, f, out)
	}
	var st syscall.Stat_t
	if _, err := statAt(l, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

func (n *putNode) loopStatx(ctx context.Context, f gofs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if _, ok := f.(gofs.FileStatxer); ok {
		return n.LoopbackNode.Statx(ctx, f, flags, mask, out)
	}
	l, errno := n.locate("")
	if errno != 0 {
		return errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Statx(ctx, f, flags, mask, out)
	}
	var x unix.Statx_t
	if err := unix.Statx(l.dir, l.name, int(flags)|unix.AT_SYMLINK_NOFOLLOW, int(mask), &x); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStatx(&x)
	return 0
}

// loopSetattr is Setattr; without an open handle a deep file is changed
// with the *at calls (and truncated through a descriptor of its own).
func (n *putNode) loopSetattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if _, ok := f.(gofs.FileSetattrer); ok {
		return n.LoopbackNode.Setattr(ctx, f, in, out)
	}
	l, errno := n.locate("")
	if errno != 0 {
		return errno
	}
	defer l.close()
	if !l.deep() {
		return n.LoopbackNode.Setattr(ctx, f, in, out)
	}
	if m, ok := in.GetMode(); ok {
		if err := unix.Fchmodat(l.dir, l.name, m&0o7777, 0); err != nil {
			return gofs.ToErrno(err)
		}
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := unix.Fchownat(l.dir, l.name, u, g, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return gofs.ToErrno(err)
		}
	}
	if sz, ok := in.GetSize(); ok {
		fd, err := unix.Openat(l.dir, l.name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return gofs.ToErrno(err)
		}
		err = unix.Ftruncate(fd, int64(sz))
		unix.Close(fd)
		if err != nil {
			return gofs.ToErrno(err)
		}
	}
	mtime, mok := in.GetMTime()
	atime, aok := in.GetATime()
	if mok || aok {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
		if aok {
			ts[0] = unix.NsecToTimespec(atime.UnixNano())
		}
		if mok {
			ts[1] = unix.NsecToTimespec(mtime.UnixNano())
		}
		if err := unix.UtimesNanoAt(l.dir, l.name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return gofs.ToErrno(err)
		}
	}
	var st syscall.Stat_t
	if _, err := statAt(l, &st); err != nil {
		return gofs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

// withXattrPath runs fn with a path of n's file that the xattr system
// calls (which have no *at form) take: the plain path, or for a deep file
// its descriptor under /proc/self/fd. follow says whether fn must follow
// a final symlink to reach the file (true for the /proc path).
func (n *putNode) withXattrPath(fn func(p string, follow bool) error) syscall.Errno {
	l, errno := n.locate("")
	if errno != 0 {
		return errno
	}
	defer l.close()
	if !l.deep() {
		return gofs.ToErrno(fn(l.name, false))
	}
	fd, err := unix.Openat(l.dir, l.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return gofs.ToErrno(err)
	}
	defer unix.Close(fd)
	return gofs.ToErrno(fn(procPath(fd), true))
}

func (n *putNode) loopGetxattr(attr string, dest []byte) (uint32, syscall.Errno) {
	var sz int
	errno := n.withXattrPath(func(p string, follow bool) (err error) {
		if follow {
			sz, err = unix.Getxattr(p, attr, dest)
		} else {
			sz, err = unix.Lgetxattr(p, attr, dest)
		}
		return err
	})
	return uint32(max(sz, 0)), errno
}

func (n *putNode) loopListxattr(dest []byte) (int, syscall.Errno) {
	var sz int
	errno := n.withXattrPath(func(p string, follow bool) (err error) {
		if follow {
			sz, err = unix.Listxattr(p, dest)
		} else {
			sz, err = unix.Llistxattr(p, dest)
		}
		return err
	})
	return sz, errno
}

func (n *putNode) loopSetxattr(attr string, data []byte, flags uint32) syscall.Errno {
	return n.withXattrPath(func(p string, follow bool) error {
		if follow {
			return unix.Setxattr(p, attr, data, int(flags))
		}
		return unix.Lsetxattr(p, attr, data, int(flags))
	})
}

func (n *putNode) loopRemovexattr(attr string) syscall.Errno {
	return n.withXattrPath(func(p string, follow bool) error {
		if follow {
			return unix.Removexattr(p, attr)
		}
		return unix.Lremovexattr(p, attr)
	})
}
