package fs

import (
	"syscall"

	"github.com/tapefs/tapefs/archive"
)

// errnoOf maps an error of the archive to what a system call returns, by
// the one table of archive/errkind. Unknown errors are EIO; the caller
// logs them.
func errnoOf(err error) syscall.Errno { return archive.Errno(err) }

// errnoName is the symbolic name of an errno for log lines.
func errnoName(e syscall.Errno) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return e.Error()
}

var errnoNames = map[syscall.Errno]string{
	syscall.EROFS: "EROFS", syscall.EACCES: "EACCES", syscall.EPERM: "EPERM",
	syscall.ENOENT: "ENOENT", syscall.EBUSY: "EBUSY", syscall.EIO: "EIO",
	syscall.EINTR: "EINTR", syscall.ENOTEMPTY: "ENOTEMPTY", syscall.EISDIR: "EISDIR",
	syscall.ENOTDIR: "ENOTDIR", syscall.EDQUOT: "EDQUOT", syscall.EFBIG: "EFBIG",
	syscall.EINVAL: "EINVAL", syscall.EXDEV: "EXDEV", syscall.ENOSPC: "ENOSPC",
	syscall.EEXIST: "EEXIST", syscall.ENODATA: "ENODATA", syscall.ERANGE: "ERANGE",
}
