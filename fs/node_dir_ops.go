package fs

import (
	"context"
	"errors"
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

// mayRemove applies the archive's removal rule (archive/access.go) to the
// caller of a request.
func mayRemove(ctx context.Context, w *archive.Workspace, b *archive.Batch) bool {
	return archive.MayRemove(whoCalls(ctx), *w, *b)
}

// hasVisibleChildren reports whether a directory of a batch (parent 0: its
// top level) still shows an entry.
func hasVisibleChildren(tx archive.Snapshot, batch, parent uint64) (bool, error) {
	after := ""
	for {
		files, err := tx.Children(batch, parent, after, 64)
		if err != nil {
			return false, err
		}
		for _, f := range files {
			if !f.Removed {
				return true, nil
			}
			after = f.Name
		}
		if len(files) < 64 {
			return false, nil
		}
	}
}

// removeEntry removes name from directory parent of a batch tree.
func (f *FS) removeEntry(ctx context.Context, ro readOnly, ws string, batch, parent uint64, name string, dir bool) syscall.Errno {
	op := "unlink"
	if dir {
		op = "rmdir"
	}
	var file archive.File
	errno := f.view(op, func(tx archive.Snapshot) error {
		b, err := liveBatch(tx, ws, batch)
		if err != nil {
			return err
		}
		w, err := tx.Workspace(ws)
		if err != nil {
			return err
		}
		if !mayRemove(ctx, &w, &b) {
			return syscall.EACCES
		}
		if file, err = tx.Lookup(batch, parent, name); err != nil {
			return err
		}
		switch {
		case file.Removed:
			return archive.ErrNotFound
		case dir && file.Type != archive.TypeDir:
			return syscall.ENOTDIR
		case !dir && file.Type == archive.TypeDir:
			return syscall.EISDIR
		case dir:
			if visible, err := hasVisibleChildren(tx, batch, file.ID); err != nil || visible {
				return errors.Join(err, syscall.ENOTEMPTY)
			}
		}
		return nil
	})
	if errno == syscall.EACCES {
		return ro.refuse(ctx, op, name, errno)
	}
	if errno != 0 {
		return errno
	}
	// The engine checks again and hides the entry in one transaction.
	if err := f.eng.RemoveEntry(whoCalls(ctx), ws, batch, parent, name, dir); err != nil {
		errno := errnoOf(err)
		if errno == syscall.EIO {
			f.log.Error().Err(err).Str("workspace", ws).Uint64("batch", batch).Str("path", file.Path).Msg("rm in batch failed")
		}
		return errno
	}
	f.log.Debug().Str("workspace", ws).Uint64("batch", batch).Str("path", file.Path).Msg("entry hidden in batch (provisional removal)")
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
		ws, err := tx.Workspace(w.ws)
		if err != nil {
			return err
		}
		if !mayRemove(ctx, &ws, &b) {
			return syscall.EACCES
		}
		if visible, err := hasVisibleChildren(tx, id, 0); err != nil || visible {
			return errors.Join(err, syscall.ENOTEMPTY)
		}
		return nil
	})
	if errno == syscall.EACCES {
		return w.refuse(ctx, "rmdir", name, errno)
	}
	if errno != 0 || gone {
		return errno
	}
	// The engine checks again that the tree is empty and deletes the batch
	// in one transaction.
	b, err := w.fsys.eng.RemoveEmptied(whoCalls(ctx), w.ws, id)
	if err != nil {
		errno := errnoOf(err)
		if errno == syscall.EIO {
			w.fsys.log.Error().Err(err).Str("workspace", w.ws).Uint64("batch", id).Msg("removing batch failed")
		}
		return errno
	}
	w.fsys.log.Info().Str("workspace", w.ws).Uint64("batch", b.ID).Msg("batch removed (soft delete)")
	return 0
}
