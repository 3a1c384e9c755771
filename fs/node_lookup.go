package fs

import (
	"context"
	"fmt"
	"strconv"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/tapefs/tapefs/archive"
)

// Lookup, readdir, getattr and readlink of the read-only tree. All of them
// answer from the catalog; none of them may start a recall.

// liveStates are the batch states listed in a workspace directory.
var liveStates = []archive.BatchState{
	archive.StateCaching, archive.StateSealing, archive.StateCached, archive.StateSyncing,
	archive.StateCachedSynced, archive.StateSynced, archive.StateFailed,
}

// errGone reports a batch that is not (or no longer) part of the holdings.
var errGone = fmt.Errorf("batch is deleted: %w", archive.ErrNotFound)

// liveBatch reads a batch of the workspace that is part of the holdings.
func liveBatch(tx archive.Snapshot, ws string, id uint64) (archive.Batch, error) {
	b, err := tx.Batch(id)
	if err != nil {
		return b, err
	}
	if b.Workspace != ws || !b.State.Live() {
		return b, errGone
	}
	return b, nil
}

// lookupEntry finds a visible entry of a batch directory. For a hard link
// it returns the data owner's record, whose attributes all links share.
func lookupEntry(tx archive.Snapshot, batch, parent uint64, name string) (archive.File, error) {
	f, err := tx.Lookup(batch, parent, name)
	if err != nil {
		return f, err
	}
	if f.Removed {
		return f, fmt.Errorf("%s was removed: %w", f.Path, archive.ErrNotFound)
	}
	if f.Type == archive.TypeFile && f.Link != 0 {
		return tx.File(f.Link)
	}
	return f, nil
}

// parseBatchName reads a batch directory name: the decimal ID, exactly as
// tapefs writes it.
func parseBatchName(name string) (uint64, bool) {
	id, err := strconv.ParseUint(name, 10, 64)
	if err != nil || id == 0 || strconv.FormatUint(id, 10) != name {
		return 0, false
	}
	return id, true
}

// ---- root ----

func (r *rootDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.fsys.rootAttr(&out.Attr)
	return 0
}

func (r *rootDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	w, errno := r.fsys.workspace("lookup", name)
	if errno != 0 {
		return nil, errno
	}
	return r.child(ctx, &w, out), 0
}

func (r *rootDir) child(ctx context.Context, w *archive.Workspace, out *fuse.EntryOut) *gofs.Inode {
	wsAttr(w, &out.Attr)
	out.SetEntryTimeout(r.fsys.dirTimeout())
	out.SetAttrTimeout(r.fsys.dirTimeout())
	return r.NewInode(ctx, r.fsys.newWorkspace(w.Name), gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: workspaceIno(w.Name)})
}

func (r *rootDir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &catalogDir{
		self:   rootIno,
		parent: rootIno,
		fetch: func(context.Context, string) (items []listed, next string, more bool, errno syscall.Errno) {
			errno = r.fsys.view("readdir", func(tx archive.Snapshot) error {
				wss, err := tx.Workspaces()
				for i := range wss {
					w := &wss[i]
					items = append(items, listed{
						de: fuse.DirEntry{Name: w.Name, Mode: syscall.S_IFDIR, Ino: workspaceIno(w.Name)},
						ws: w,
					})
				}
				return err
			})
			return items, "", false, errno
		},
		child: func(ctx context.Context, it *listed, out *fuse.EntryOut) *gofs.Inode {
			return r.child(ctx, it.ws, out)
		},
		lookup: r.Lookup,
	}, 0, 0
}

// ---- workspace ----

func (w *wsDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	ws, errno := w.fsys.workspace("getattr", w.ws)
	if errno != 0 {
		return errno
	}
	wsAttr(&ws, &out.Attr)
	out.SetTimeout(w.fsys.dirTimeout())
	return 0
}

func (w *wsDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if name == "put" {
		return w.lookupPut(ctx, out)
	}
	id, ok := parseBatchName(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	var b archive.Batch
	var ws archive.Workspace
	errno := w.fsys.view("lookup", func(tx archive.Snapshot) error {
		var err error
		if b, err = liveBatch(tx, w.ws, id); err != nil {
			return err
		}
		ws, err = tx.Workspace(w.ws)
		return err
	})
	if errno != 0 {
		return nil, errno
	}
	return w.batchChild(ctx, &b, &ws, out), 0
}

func (w *wsDir) batchChild(ctx context.Context, b *archive.Batch, ws *archive.Workspace, out *fuse.EntryOut) *gofs.Inode {
	batchAttr(b, ws, &out.Attr)
	out.SetEntryTimeout(w.fsys.dirTimeout())
	out.SetAttrTimeout(w.fsys.dirTimeout())
	return w.NewInode(ctx, w.fsys.newBatchDir(w.ws, b.ID), gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: batchIno(b.ID)})
}

func (w *wsDir) lookupPut(ctx context.Context, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ws, errno := w.fsys.workspace("lookup", w.ws)
	if errno != 0 {
		return nil, errno
	}
	p, st, err := w.fsys.newPutRoot(w.ws)
	if err != nil {
		w.fsys.log.Error().Err(err).Str("workspace", w.ws).Msg("staging directory unusable")
		return nil, syscall.EIO
	}
	putRootAttr(&ws, st, &out.Attr)
	out.SetEntryTimeout(shortTimeout)
	out.SetAttrTimeout(shortTimeout)
	return w.NewInode(ctx, p, gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: putIno(w.ws)}), 0
}

// OpendirHandle lists put/ and then the live batches, a page at a time.
func (w *wsDir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &catalogDir{
		self:   workspaceIno(w.ws),
		parent: rootIno,
		fetch: func(_ context.Context, cursor string) (items []listed, next string, more bool, errno syscall.Errno) {
			var after uint64
			if cursor == "" {
				items = append(items, listed{de: fuse.DirEntry{Name: "put", Mode: syscall.S_IFDIR, Ino: putIno(w.ws)}})
			} else {
				after, _ = strconv.ParseUint(cursor, 10, 64)
			}
			next = cursor
			errno = w.fsys.view("readdir", func(tx archive.Snapshot) error {
				ws, err := tx.Workspace(w.ws)
				if err != nil {
					return err
				}
				bs, err := tx.Batches(archive.BatchQuery{Workspace: w.ws, States: liveStates, After: after, Limit: pageSize})
				if err != nil {
					return err
				}
				more = len(bs) == pageSize
				for i := range bs {
					b := &bs[i]
					name := strconv.FormatUint(b.ID, 10)
					next = name
					items = append(items, listed{
						de:    fuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: batchIno(b.ID)},
						batch: b,
						ws:    &ws,
					})
				}
				return nil
			})
			if next == "" {
				next = "0"
			}
			return items, next, more, errno
		},
		child: func(ctx context.Context, it *listed, out *fuse.EntryOut) *gofs.Inode {
			if it.batch == nil {
				return nil
			}
			return w.batchChild(ctx, it.batch, it.ws, out)
		},
		lookup: w.Lookup,
	}, 0, 0
}

// ---- batch directory ----

func (b *batchDir) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	b.fsys.trees.use(b.ws, b.id)
	var bt archive.Batch
	var ws archive.Workspace
	errno := b.fsys.view("getattr", func(tx archive.Snapshot) error {
		var err error
		if bt, err = liveBatch(tx, b.ws, b.id); err != nil {
			return err
		}
		ws, err = tx.Workspace(b.ws)
		return err
	})
	if errno != 0 {
		return errno
	}
	batchAttr(&bt, &ws, &out.Attr)
	out.SetTimeout(b.fsys.dirTimeout())
	return 0
}

func (b *batchDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return b.fsys.lookupChild(ctx, &b.Inode, b.ws, b.id, 0, name, out)
}

func (b *batchDir) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	b.fsys.trees.use(b.ws, b.id)
	d := b.fsys.openTreeDir(&b.Inode, b.ws, b.id, 0, b.Lookup)
	d.self, d.parent = batchIno(b.id), workspaceIno(b.ws)
	return d, 0, 0
}

// ---- batch tree entries ----

func (n *entryNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fsys.trees.use(n.ws, n.batch)
	var file archive.File
	errno := n.fsys.view("getattr", func(tx archive.Snapshot) error {
		var err error
		file, err = tx.File(n.id)
		return err
	})
	if errno != 0 {
		return errno
	}
	n.fsys.entryAttr(&file, &out.Attr)
	out.SetTimeout(treeAttrTimeout)
	return 0
}

func (n *entryNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if n.typ != archive.TypeDir {
		return nil, syscall.ENOTDIR
	}
	return n.fsys.lookupChild(ctx, &n.Inode, n.ws, n.batch, n.id, name, out)
}

func (n *entryNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if n.typ != archive.TypeDir {
		return nil, 0, syscall.ENOTDIR
	}
	n.fsys.trees.use(n.ws, n.batch)
	d := n.fsys.openTreeDir(&n.Inode, n.ws, n.batch, n.id, n.Lookup)
	d.self, d.parent = fileIno(n.id), n.parentIno
	return d, 0, 0
}

func (n *entryNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.typ != archive.TypeSymlink {
		return nil, syscall.EINVAL
	}
	n.fsys.trees.use(n.ws, n.batch)
	var file archive.File
	errno := n.fsys.view("readlink", func(tx archive.Snapshot) error {
		var err error
		file, err = tx.File(n.id)
		return err
	})
	return []byte(file.Target), errno
}

// lookupChild looks up name in directory parent (0: the top level) of a
// batch tree whose inode is dir.
func (f *FS) lookupChild(ctx context.Context, dir *gofs.Inode, ws string, batch, parent uint64, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	var file archive.File
	errno := f.view("lookup", func(tx archive.Snapshot) error {
		if _, err := liveBatch(tx, ws, batch); err != nil {
			return err
		}
		var err error
		file, err = lookupEntry(tx, batch, parent, name)
		return err
	})
	if errno != 0 {
		return nil, errno
	}
	if file.Type != archive.TypeDir {
		f.attrs.statted(ctx)
	}
	return f.entryChild(ctx, dir, ws, &file, out), 0
}

func (f *FS) entryChild(ctx context.Context, dir *gofs.Inode, ws string, file *archive.File, out *fuse.EntryOut) *gofs.Inode {
	f.entryAttr(file, &out.Attr)
	out.SetEntryTimeout(treeEntryTimeout)
	out.SetAttrTimeout(treeAttrTimeout)
	// Lookups and readdirplus of the tree both come here.
	f.trees.use(ws, file.Batch)
	stable := entryStable(file)
	if ch := dir.GetChild(file.Name); ch != nil && ch.StableAttr() == stable {
		// Known already (the kernel revalidates an expired entry):
		// go-fuse would keep its node and drop a new one.
		return ch
	}
	// A new node, counted for trim.go. go-fuse may still keep another
	// one instead (a hard link known under another name, a concurrent
	// lookup); the sweep corrects the count once the tree is dropped.
	f.trees.adopted(ws, file.Batch)
	return dir.NewInode(ctx, f.newEntry(ws, file), stable)
}

func (f *FS) openTreeDir(dir *gofs.Inode, ws string, batch, parent uint64,
	lookup func(context.Context, string, *fuse.EntryOut) (*gofs.Inode, syscall.Errno)) *catalogDir {
	return &catalogDir{
		fetch: func(ctx context.Context, cursor string) ([]listed, string, bool, syscall.Errno) {
			return f.childPage(batch, parent, cursor, !f.attrs.want(ctx))
		},
		child: func(ctx context.Context, it *listed, out *fuse.EntryOut) *gofs.Inode {
			return f.entryChild(ctx, dir, ws, it.file, out)
		},
		lookup: lookup,
	}
}
