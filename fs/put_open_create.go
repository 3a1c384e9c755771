package fs

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
)

// Open and create in put/: every handle counts as open in its entry from
// OPEN/CREATE to RELEASE (see openFiles). The handle is the loopback's, so
// go-fuse asks the kernel for passthrough where it can; then the daemon
// sees no reads or writes, only the open, the flushes and the release.

func (n *putNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	h := &putFile{fsys: n.fsys, writable: writes(flags)}
	entry := n.entry("")
	if errno := n.track(ctx, h, entry, "open"); errno != 0 {
		return nil, 0, errno
	}
	if h.writable {
		n.changed(entry)
	}
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		n.fsys.open.close(&h.openHandle, false)
		return nil, 0, errno
	}
	h.LoopbackFile = fh.(*gofs.LoopbackFile)
	return h, fuseFlags, 0
}

func (n *putNode) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	h := &putFile{fsys: n.fsys, writable: true}
	entry := n.entry(name)
	if errno := n.track(ctx, h, entry, "create"); errno != 0 {
		return nil, nil, 0, errno
	}
	n.changed(entry)
	ch, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		n.fsys.open.close(&h.openHandle, false)
		return nil, nil, 0, errno
	}
	h.LoopbackFile = fh.(*gofs.LoopbackFile)
	n.fixMode(filepath.Join(n.path(), name), mode, &out.Attr)
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
// entry until RELEASE.
type putFile struct {
	*gofs.LoopbackFile
	openHandle // guarded by fsys.open.mu
	fsys       *FS
	writable   bool
	wrote      atomic.Bool
}

func (h *putFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.wrote.Store(true)
	return h.LoopbackFile.Write(ctx, data, off)
}

func (h *putFile) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	h.wrote.Store(true)
	return h.LoopbackFile.Allocate(ctx, off, size, mode)
}

// Flush comes with every close(2) of a descriptor of the handle: a change
// when the handle may have written, never a close.
func (h *putFile) Flush(ctx context.Context) syscall.Errno {
	errno := h.LoopbackFile.Flush(ctx)
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
	if h, ok := fhOut.(*putFile); ok {
		h.wrote.Store(true)
	}
	return n.LoopbackNode.CopyFileRange(ctx, unwrap(fhIn), offIn, out, unwrap(fhOut), offOut, length, flags)
}
