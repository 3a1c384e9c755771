package fs

import (
	"context"
	"errors"
	"io"
	"os"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
)

// Open and read of batch files. Open never blocks on tape. A file whose
// whole object is in the cache is read by the kernel itself (passthrough)
// where it can, through the page cache otherwise. A file that is not is
// opened for direct I/O: each read is one request that waits for its own
// range with the request's context, so a reader interrupted by a signal
// gets EINTR while the recall goes on. (Page-cache reads of a file being
// recalled would wait in kernel readahead, which only a fatal signal
// interrupts.) Direct-I/O handles do not take part in the kernel's
// passthrough/cached mode of the inode, so the two kinds may be open at
// once.

func (n *entryNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.typ != archive.TypeFile {
		return nil, 0, syscall.EISDIR
	}
	n.fsys.trees.use(n.ws, n.batch)
	if errno := n.openReadOnly(ctx, flags); errno != 0 {
		return nil, 0, errno
	}
	r, _, err := n.fsys.eng.Open(whoCalls(ctx), n.id)
	if err != nil {
		errno := errnoOf(err)
		if errno == syscall.EACCES {
			// The kernel checked the same rule from the attributes; a
			// refusal here means they changed under it (or a caller in
			// groups the kernel counted differently).
			uid, _, _ := caller(ctx)
			n.fsys.log.Warn().Err(err).Str("workspace", n.ws).Uint64("batch", n.batch).Uint64("file", n.id).Uint32("uid", uid).Msg("read refused by the access rule")
			return nil, 0, errno
		}
		if errno == syscall.EIO {
			n.fsys.log.Error().Err(err).Str("workspace", n.ws).Uint64("batch", n.batch).Uint64("file", n.id).Msg("open failed")
		}
		return nil, 0, errno
	}
	if cr, ok := r.(cachedReader); ok {
		// Not while a direct-I/O handle of the file is open: one that
		// is mapped shared (the mount allows it, for put/: see
		// putOpenFlags) holds the inode in the kernel's cached mode,
		// and a passthrough open would then fail with EIO.
		if f := cr.Cached(); f != nil && n.direct.Load() == 0 {
			// Batch files never change: the page cache may outlive
			// the handle when passthrough is not possible.
			return &passHandle{readHandle{node: n, r: r}, f}, fuse.FOPEN_KEEP_CACHE, 0
		}
	}
	n.direct.Add(1)
	return &readHandle{node: n, r: r, direct: true}, fuse.FOPEN_DIRECT_IO, 0
}

// readHandle reads a batch file through the daemon.
type readHandle struct {
	node   *entryNode
	r      Reader
	direct bool // opened FOPEN_DIRECT_IO, counted in node.direct
}

func (h *readHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	got, err := h.r.ReadAt(ctx, dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		// No partial result: the kernel would take a short read for
		// the end of the file.
		errno := errnoOf(err)
		if errno == syscall.EIO {
			n := h.node
			n.fsys.log.Error().Err(err).Str("workspace", n.ws).Uint64("batch", n.batch).Uint64("file", n.id).Int64("offset", off).Msg("read failed")
		}
		return nil, errno
	}
	return fuse.ReadResultData(dest[:got]), 0
}

func (h *readHandle) Release(ctx context.Context) syscall.Errno {
	if h.direct {
		h.node.direct.Add(-1)
	}
	return errnoOf(h.r.Close())
}

// passHandle hands the kernel the complete cached object to read from.
// Without passthrough (not root, an old kernel) reads arrive as READ and
// are served like readHandle's. go-fuse registers one backing file per
// inode and shares it between the inode's passthrough handles; the kernel
// opens its own file on it for each.
type passHandle struct {
	readHandle
	f *os.File
}

func (h *passHandle) PassthroughFd() (int, bool) { return int(h.f.Fd()), true }
