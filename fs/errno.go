package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
)

// errnoOf maps an error of the engine, the catalog or the cache to what a
// system call returns. Unknown errors are EIO; the caller logs them.
func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var rej *archive.RejectError
	var errno syscall.Errno
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// An interrupted reader: the recall it waited for goes on.
		return syscall.EINTR
	case errors.As(err, &rej):
		return rejectErrno(rej)
	case errors.Is(err, archive.ErrSealing):
		return syscall.EBUSY
	case errors.Is(err, catalog.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, catalog.ErrExists):
		return syscall.EEXIST
	case errors.Is(err, cache.ErrNoSpace):
		return syscall.ENOSPC
	case errors.Is(err, cache.ErrBusy):
		return syscall.EBUSY
	case errors.As(err, &errno):
		return errno
	}
	return syscall.EIO
}

// rejectErrno tells a refused seal's cause by errno, so setfattr and
// scripts can tell a full quota from a file that is too big.
func rejectErrno(rej *archive.RejectError) syscall.Errno {
	switch {
	case errors.Is(rej, archive.ErrQuota):
		return syscall.EDQUOT
	case errors.Is(rej, archive.ErrFileTooBig):
		return syscall.EFBIG
	case errors.Is(rej, archive.ErrEntryOpen):
		return syscall.EBUSY
	}
	return syscall.EPERM
}

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
