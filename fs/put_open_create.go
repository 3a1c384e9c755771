package fs

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
)

// Open and create in put/: every handle counts as open in its entry from
// OPEN/CREATE to RELEASE (see openFiles). The handle is the loopback's,
// without kernel passthrough: every write goes through the daemon, which
// is the only way it can see a write fail (see putFile).

// putOpenFlags are the open flags of every put/ handle. Writes must reach
// the daemon (see putFile.PassthroughFd); these make that as cheap as it
// can be:
//
//   - FOPEN_DIRECT_IO: the kernel hands the writer's pages to the WRITE
//     request instead of first copying them into its own page cache of the
//     FUSE file (which it did on top of the staged file's page cache: every
//     byte cached twice, and copied once more). Sequential writes ran at
//     about twice the speed in the same run (BENCHMARKS.md). Reads go to
//     the daemon each time, which only matters for reading put/ back.
//     Shared mmap still works through the page cache (the mount takes
//     CAP_DIRECT_IO_ALLOW_MMAP), and its writeback is a WRITE the daemon
//     sees like any other.
//   - FOPEN_NOFLUSH: no FLUSH request at each close(2), one round trip
//     less per file copied. The daemon has nothing to do there: the
//     staged file is local, so closing it cannot fail, and the handle is
//     counted closed at RELEASE anyway (see openFiles.waitReleased for
//     what a seal right after a close does without it).
const putOpenFlags = fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH

func (n *putNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	h := &putFile{fsys: n.fsys, node: n, writable: writes(flags)}
	entry := n.entry("")
	if errno := n.track(ctx, h, entry, "open"); errno != 0 {
		return nil, 0, errno
	}
	if h.writable {
		n.changed(entry)
	}
	fh, fuseFlags, errno := n.loopOpen(ctx, flags)
	if errno != 0 {
		n.fsys.open.close(&h.openHandle, false)
		return nil, 0, errno
	}
	h.LoopbackFile = fh.(*gofs.LoopbackFile)
	fuseFlags |= putOpenFlags
	if flags&syscall.O_TRUNC != 0 {
		// The kernel asks (OPEN_KILL_SUIDGID) for what a local file
		// system does on a truncating open by an unprivileged caller.
		h.killPriv(ctx)
		h.truncated()
	}
	return h, fuseFlags, 0
}

func (n *putNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	h := &putFile{fsys: n.fsys, writable: true}
	entry := n.entry(name)
	if errno := n.track(ctx, h, entry, "create"); errno != 0 {
		return nil, nil, 0, errno
	}
	n.changed(entry)
	ch, fh, fuseFlags, errno := n.loopCreate(ctx, name, flags, mode, out)
	if errno != 0 {
		n.fsys.open.close(&h.openHandle, false)
		return nil, nil, 0, errno
	}
	h.LoopbackFile = fh.(*gofs.LoopbackFile)
	fuseFlags |= putOpenFlags
	h.node, _ = ch.Operations().(*putNode)
	if flags&syscall.O_TRUNC != 0 {
		h.truncated() // the name may have been an existing file
	}
	n.fixMode(name, mode, &out.Attr)
	return ch, h, fuseFlags, 0
}

// track counts h open in entry; an entry being sealed cannot be opened.
func (n *putNode) track(ctx context.Context, h *putFile, entry, op string) syscall.Errno {
	if entry == "" {
		return 0 // put/ itself: nothing to seal
	}
	err := n.fsys.open.open(&h.openHandle, entryKey{n.ws, entry})
	if err == nil {
		return 0
	}
	errno := errnoOf(err)
	if errors.Is(err, archive.ErrSealing) {
		return n.refuse(ctx, op+" (entry is being sealed)", "", errno)
	}
	n.fsys.log.Error().Err(err).Str("workspace", n.ws).Str("entry", entry).Msg("open in put/")
	return errno
}

func writes(flags uint32) bool {
	return flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
}

// putFile is an open file of put/: the loopback's handle, counted in its
// entry until RELEASE. Every operation that stores bytes reports a failure
// to the engine (put_writefail.go), which then holds the entry back from
// the settle timer.
type putFile struct {
	*gofs.LoopbackFile
	openHandle // guarded by fsys.open.mu
	fsys       *FS
	node       *putNode // the file's node; nil if go-fuse gave another type
	writable   bool
	wrote      atomic.Bool
}

// PassthroughFd refuses kernel passthrough for put/ handles. With
// passthrough the kernel writes into the staged file itself and the daemon
// never learns that a write failed (ENOSPC): the short file would be
// sealed as if complete. A handle of an inode cannot be passthrough while
// another is not (the kernel fails such an open with EIO), so reads in
// put/ go through the daemon too. Batch files keep passthrough.
func (h *putFile) PassthroughFd() (int, bool) { return 0, false }

func (h *putFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return h.Writev(ctx, [][]byte{data}, off)
}

// Writev writes data at off. pwrite stops short, without an error, when
// the disk fills up (or at a quota, or the file size limit) and leaves the
// error to the next call; with direct I/O the kernel would hand the short
// count to the writer, which may not try again. So the daemon writes the
// rest itself until it is written or an error says why not, and reports
// that error: the writer still gets the short count, as from a local disk.
func (h *putFile) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	h.wrote.Store(true)
	h.killPriv(ctx)
	var done uint32
	for len(data) > 0 {
		n, errno := h.LoopbackFile.Writev(ctx, data, off+int64(done))
		done += n
		if errno != 0 {
			h.failed(ctx, "write", errno)
			if done > 0 {
				return done, 0
			}
			return 0, errno
		}
		if n == 0 {
			// Nothing written and no error: a broken promise of the
			// file system; it cannot be waited out.
			h.failed(ctx, "write", syscall.EIO)
			return done, 0
		}
		data = skipBytes(data, int(n))
	}
	return done, 0
}

// skipBytes drops the first n bytes of data.
func skipBytes(data [][]byte, n int) [][]byte {
	for len(data) > 0 && n >= len(data[0]) {
		n -= len(data[0])
		data = data[1:]
	}
	if len(data) > 0 && n > 0 {
		data = append([][]byte{data[0][n:]}, data[1:]...)
	}
	return data
}

func (h *putFile) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	h.wrote.Store(true)
	errno := h.LoopbackFile.Allocate(ctx, off, size, mode)
	if lostWrite(errno) {
		h.failed(ctx, "fallocate", errno)
	}
	return errno
}

func (h *putFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	errno := h.LoopbackFile.Fsync(ctx, flags)
	if lostWrite(errno) {
		h.failed(ctx, "fsync", errno)
	}
	return errno
}

// Flush comes with every close(2) of a descriptor of the handle: a change
// when the handle may have written, never a close.
func (h *putFile) Flush(ctx context.Context) syscall.Errno {
	errno := h.LoopbackFile.Flush(ctx)
	if lostWrite(errno) {
		h.failed(ctx, "close", errno)
	}
	h.fsys.open.flush(&h.openHandle, h.writable || h.wrote.Load())
	return errno
}

// Release comes once per handle, after the last close, asynchronously.
func (h *putFile) Release(ctx context.Context) syscall.Errno {
	errno := h.LoopbackFile.Release(ctx)
	h.fsys.open.close(&h.openHandle, h.writable || h.wrote.Load())
	return errno
}

// unwrap returns the loopback handle of a put/ handle.
func unwrap(fh gofs.FileHandle) gofs.FileHandle {
	if h, ok := fh.(*putFile); ok {
		return h.LoopbackFile
	}
	return fh
}

// CopyFileRange copies between two files of put/ inside the kernel; the
// loopback only knows its own handle type.
func (n *putNode) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode,
	fhOut gofs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	h, _ := fhOut.(*putFile)
	if h != nil {
		h.wrote.Store(true)
		h.killPriv(ctx)
	}
	written, errno := n.LoopbackNode.CopyFileRange(ctx, unwrap(fhIn), offIn, out, unwrap(fhOut), offOut, length, flags)
	if h != nil && lostWrite(errno) {
		h.failed(ctx, "copy_file_range", errno)
	}
	return written, errno
}
