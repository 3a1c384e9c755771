package fs

import (
	"context"
	"syscall"

	"github.com/tapefs/tapefs/archive"
)

// rm in the holdings. Unlinking a file or removing an emptied directory of
// a batch tree hides that entry, provisionally (RemoveEntry: undone after a
// grace period or by undelete, unless the batch directory itself is
// removed; archive/remove.go); removing the emptied batch directory
// soft-deletes the batch (RemoveEmptied). Every other namespace operation
// is refused by readOnly.

func (b *batchDir) Unlink(ctx context.Context, name string) syscall.Errno {
	return b.fsys.removeEntry(ctx, b.readOnly, b.ws, b.id, 0, name, false)
}

func (b *batchDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	return b.fsys.removeEntry(ctx, b.readOnly, b.ws, b.id, 0, name, true)
}

func (n *entryNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.typ != archive.TypeDir {
		return syscall.ENOTDIR
	}
	return n.fsys.removeEntry(ctx, n.readOnly, n.ws, n.batch, n.id, name, false)
}

func (n *entryNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.typ != archive.TypeDir {
		return syscall.ENOTDIR
	}
	return n.fsys.removeEntry(ctx, n.readOnly, n.ws, n.batch, n.id, name, true)
}

// removeEntry removes name from directory parent of a batch tree.
func (f *FS) removeEntry(ctx context.Context, ro readOnly, ws string, batch, parent uint64, name string, dir bool) syscall.Errno {
	op := "unlink"
	if dir {
		op = "rmdir"
	}
	// The engine decides, in one transaction: who may remove (the
	// removal rule), what may be removed (ENOTDIR, EISDIR, ENOTEMPTY),
	// and hides the entry.
	if err := f.eng.RemoveEntry(whoCalls(ctx), ws, batch, parent, name, dir); err != nil {
		errno := errnoOf(err)
		switch errno {
		case syscall.EACCES, syscall.EPERM:
			return ro.refuse(ctx, op, name, errno)
		case syscall.EIO:
			f.log.Error().Err(err).Str("workspace", ws).Uint64("batch", batch).Str("name", name).Msg("rm in batch failed")
		}
		return errno
	}
	f.log.Debug().Str("workspace", ws).Uint64("batch", batch).Str("name", name).Msg("entry hidden in batch (provisional removal)")
	return 0
}

// Rmdir of MOUNT/<ws>/<id> soft-deletes the batch once rm has emptied it.
func (w *wsDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	id, ok := parseBatchName(name)
	if !ok {
		if name == "put" {
			return w.refuse(ctx, "rmdir", name, syscall.EROFS)
		}
		return syscall.ENOENT
	}
	gone := false
	errno := w.fsys.view("rmdir", func(tx archive.Snapshot) error {
		b, err := tx.Batch(id)
		if err != nil {
			return err
		}
		if b.Workspace != w.ws {
			return archive.ErrNotFound
		}
		if b.State == archive.StateDeleted {
			gone = true
			return nil
		}
		return nil
	})
	if errno != 0 || gone {
		return errno
	}
	// The engine applies the removal rule, checks that the tree is empty
	// and deletes the batch, in one transaction.
	w.fsys.own.begin(id)
	defer w.fsys.own.end(id)
	b, err := w.fsys.eng.RemoveEmptied(whoCalls(ctx), w.ws, id)
	if err != nil {
		errno := errnoOf(err)
		switch errno {
		case syscall.EACCES, syscall.EPERM:
			return w.refuse(ctx, "rmdir", name, errno)
		case syscall.EIO:
			w.fsys.log.Error().Err(err).Str("workspace", w.ws).Uint64("batch", id).Msg("removing batch failed")
		}
		return errno
	}
	w.fsys.log.Info().Str("workspace", w.ws).Uint64("batch", b.ID).Msg("batch removed (soft delete)")
	return 0
}
