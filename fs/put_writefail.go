package fs

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// Failed writes and privilege bits in put/. A write that fails (ENOSPC on
// a full cache disk, EIO) leaves a short staged file; the engine is told,
// marks the file and keeps its entry out of the settle timer's reach until
// the file is truncated and written again, replaced or removed. Only
// failures the daemon sees can be reported: a write the kernel refuses
// before it reaches the daemon (RLIMIT_FSIZE, a bad buffer) is the
// writer's own error, and put/ has no kernel passthrough (see putFile).

// lostWrite reports whether errno from an operation that stores bytes
// (fallocate, copy_file_range, truncate, fsync, close) means that bytes
// were lost, rather than that the operation is unsupported and the caller
// falls back to another (EOPNOTSUPP, EXDEV, EINVAL). A failed write(2) is
// always a loss.
func lostWrite(errno syscall.Errno) bool {
	switch errno {
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EFBIG:
		return true
	}
	return false
}

// fd is the handle's descriptor of the staged file.
func (h *putFile) fd() int {
	fd, ok := h.LoopbackFile.PassthroughFd()
	if !ok {
		return -1
	}
	return fd
}

// failed reports to the engine that op failed with errno on the handle's
// file.
func (h *putFile) failed(ctx context.Context, op string, errno syscall.Errno) {
	if h.node != nil {
		h.node.writeFailed(ctx, h.fd(), op, errno)
	}
}

// truncated tells the engine that the handle's file was emptied.
func (h *putFile) truncated() {
	if h.node != nil {
		h.node.rewritten(h.fd())
	}
}

// writeFailed reports a failed op on the file of n (fd: a descriptor of
// it, or -1). A file in no directory any more (unlinked while open)
// belongs to no entry: nothing to hold back.
func (n *putNode) writeFailed(ctx context.Context, fd int, op string, errno syscall.Errno) {
	if n.entry("") == "" {
		return
	}
	rel := n.Path(n.rootInode())
	ev := n.fsys.log.Warn().Str("workspace", n.ws).Str("op", op).Str("path", rel).Str("errno", errnoName(errno))
	if uid, _, ok := caller(ctx); ok {
		ev = ev.Uint32("uid", uid)
	}
	ev.Msg("write into put/ failed; the entry is held back from sealing")
	n.fsys.eng.WriteFailed(n.ws, rel, fd, op, errno)
}

// rewritten tells the engine that the file of n was truncated to nothing:
// whatever write failed in it before no longer matters.
func (n *putNode) rewritten(fd int) {
	if n.entry("") == "" || !n.fsys.eng.HasWriteFailures(n.ws) {
		return
	}
	n.fsys.eng.FileRewritten(n.ws, n.Path(n.rootInode()), fd)
}

// killPriv clears the setuid bit, and the setgid bit of a file that is
// group-executable or whose group the caller is not in, before an
// unprivileged caller writes to the file: what the kernel does on a local
// file system. The mount takes FUSE_HANDLE_KILLPRIV_V2 (see fs.go), which
// leaves this to the daemon; go-fuse does not pass the kernel's kill flag
// of the request down, so "unprivileged" is taken as "not root".
func (h *putFile) killPriv(ctx context.Context) {
	if uid, _, ok := caller(ctx); !ok || uid == 0 || h.node == nil {
		return
	}
	h.node.dropPriv(ctx, h.fd())
}

// dropPriv clears setuid/setgid of the file open as fd (-1: by path) as
// a write by the caller would. It reports the mode it left, or 0 if it
// changed nothing.
func (n *putNode) dropPriv(ctx context.Context, fd int) uint32 {
	l := loc{dir: fd}
	if fd < 0 {
		var errno syscall.Errno
		if l, errno = n.locate(""); errno != 0 {
			return 0
		}
		defer l.close()
	}
	var st unix.Stat_t
	err := unix.Fstatat(l.dir, l.name, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&(unix.S_ISUID|unix.S_ISGID) == 0 {
		return 0
	}
	kill := st.Mode & unix.S_ISUID
	if st.Mode&unix.S_ISGID != 0 && (st.Mode&unix.S_IXGRP != 0 || !callerInGroup(ctx, st.Gid)) {
		kill |= unix.S_ISGID
	}
	if kill == 0 {
		return 0
	}
	mode := st.Mode & 0o7777 &^ kill
	if fd >= 0 {
		err = unix.Fchmod(fd, mode)
	} else {
		err = unix.Fchmodat(l.dir, l.name, mode, 0)
	}
	if err != nil {
		n.fsys.log.Warn().Err(err).Str("workspace", n.ws).Str("path", n.Path(n.rootInode())).Msg("cannot clear setuid/setgid of a file written in put/")
		return 0
	}
	// The kernel caches the old mode: have it ask again. Not from this
	// request, which the kernel may be waiting on with the inode locked.
	go n.NotifyContent(0, 0)
	return st.Mode&unix.S_IFMT | mode
}

// callerInGroup reports whether the caller of the request has gid as its
// group or as one of its supplementary groups (from /proc: the request
// carries only the primary group).
func callerInGroup(ctx context.Context, gid uint32) bool {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return true
	}
	if c.Gid == gid {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		groups, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		for _, g := range strings.Fields(groups) {
			if v, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(v) == gid {
				return true
			}
		}
	}
	return false
}

// setattrDone does what a successful or failed SETATTR means for put/:
// a truncation to nothing rewrites the file, a failed one (extending past
// a full disk) loses bytes, and the kernel may ask for setuid/setgid to go.
func (n *putNode) setattrDone(ctx context.Context, fd int, in *fuse.SetAttrIn, out *fuse.AttrOut, errno syscall.Errno) {
	size, hasSize := in.GetSize()
	if hasSize && fd < 0 && (errno == 0 && size == 0 || lostWrite(errno)) {
		// truncate(2) by path: the engine marks the file through a
		// descriptor, which reaches a file at any depth.
		if l, e := n.locate(""); e == 0 {
			if own, err := unix.Openat(l.dir, l.name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
				defer unix.Close(own)
				fd = own
			}
			l.close()
		}
	}
	switch {
	case !hasSize:
	case errno == 0 && size == 0:
		n.rewritten(fd)
	case lostWrite(errno):
		n.writeFailed(ctx, fd, "truncate", errno)
	}
	// Root keeps the bits on truncate; on chown the daemon's own lchown
	// has done what the kernel does for root.
	if uid, _, ok := caller(ctx); errno == 0 && in.Valid&fuse.FATTR_KILL_SUIDGID != 0 && ok && uid != 0 {
		if mode := n.dropPriv(ctx, fd); mode != 0 {
			out.Mode = mode
		}
	}
}
