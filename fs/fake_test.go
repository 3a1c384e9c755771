package fs

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/tapefs/tapefs/archive"
)

// fakeSurface is an archive.Surface held in memory, so that the nodes'
// logic (lookup, listing, attributes, xattrs, open and removal decisions)
// is tested without a mount and without an engine. It applies the real
// access rule (archive.MayRead, archive.MayRemove) to the caller fs hands
// it. Operations the node tests do not reach panic through the embedded
// nil interface.
type fakeSurface struct {
	archive.Surface

	mu      sync.Mutex
	wss     []archive.Workspace
	batches []archive.Batch
	files   []archive.File
	// what the nodes asked for
	opened      []uint64
	recalled    []uint64
	removed     []uint64 // batches
	hidden      []uint64 // entries
	notFollowed bool     // ChangesFollowed answers false
}

func (f *fakeSurface) Read(c archive.Caller, fn func(archive.Snapshot) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn(fakeSnapshot{f, c})
}

type fakeSnapshot struct {
	f *fakeSurface
	c archive.Caller
}

func notFound(what string, args ...any) error {
	return fmt.Errorf(what+": %w", append(args, archive.ErrNotFound)...)
}

func (s fakeSnapshot) Workspace(name string) (archive.Workspace, error) {
	for _, w := range s.f.wss {
		if w.Name == name && archive.MaySee(s.c, w) {
			return w, nil
		}
	}
	return archive.Workspace{}, notFound("workspace %s", name)
}

func (s fakeSnapshot) Workspaces() ([]archive.Workspace, error) {
	var out []archive.Workspace
	for _, w := range s.f.wss {
		if archive.MaySee(s.c, w) {
			out = append(out, w)
		}
	}
	return out, nil
}

func (s fakeSnapshot) Batch(id uint64) (archive.Batch, error) {
	for _, b := range s.f.batches {
		if b.ID == id {
			if _, err := s.Workspace(b.Workspace); err != nil {
				break
			}
			return b, nil
		}
	}
	return archive.Batch{}, notFound("batch %d", id)
}

func (s fakeSnapshot) Batches(q archive.BatchQuery) ([]archive.Batch, error) {
	var out []archive.Batch
	for _, b := range s.f.batches {
		if q.Workspace != "" && b.Workspace != q.Workspace || b.ID <= q.After {
			continue
		}
		if len(q.States) > 0 {
			keep := false
			for _, st := range q.States {
				keep = keep || st == b.State
			}
			if !keep {
				continue
			}
		}
		out = append(out, b)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (s fakeSnapshot) File(id uint64) (archive.File, error) {
	for _, f := range s.f.files {
		if f.ID == id {
			return f, nil
		}
	}
	return archive.File{}, notFound("file %d", id)
}

func (s fakeSnapshot) Lookup(batch, parent uint64, name string) (archive.File, error) {
	for _, f := range s.f.files {
		if f.Batch == batch && f.Parent == parent && f.Name == name {
			return f, nil
		}
	}
	return archive.File{}, notFound("%s in directory %d of batch %d", name, parent, batch)
}

func (s fakeSnapshot) Children(batch, parent uint64, after string, limit int) ([]archive.File, error) {
	var out []archive.File
	for _, f := range s.f.files {
		if f.Batch == batch && f.Parent == parent && f.Name > after {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (s fakeSnapshot) Names(batch, parent uint64, after string, limit int) ([]archive.Name, error) {
	files, err := s.Children(batch, parent, after, limit)
	out := make([]archive.Name, len(files))
	for i, f := range files {
		out[i] = archive.Name{Name: f.Name, ID: f.ID, DataID: f.DataID(), Type: f.Type, Removed: f.Removed}
	}
	return out, err
}

func (s fakeSnapshot) Files(batch, after uint64, limit int) ([]archive.File, error) {
	panic("Files: not used by the mount")
}

func (s fakeSnapshot) FindPath(workspace, path string) ([]uint64, error) {
	panic("FindPath: not used by the mount")
}

func (s fakeSnapshot) LastEvent() (uint64, error) { return 0, nil }

func (s fakeSnapshot) Events(after uint64, limit int, workspace string) ([]archive.Event, error) {
	return nil, nil
}

// batchOf reads the workspace and batch of a file, as root.
func (f *fakeSurface) batchOf(id uint64) (archive.Workspace, archive.Batch, archive.File, error) {
	s := fakeSnapshot{f, archive.Root()}
	file, err := s.File(id)
	if err != nil {
		return archive.Workspace{}, archive.Batch{}, file, err
	}
	b, err := s.Batch(file.Batch)
	if err != nil {
		return archive.Workspace{}, b, file, err
	}
	w, err := s.Workspace(b.Workspace)
	return w, b, file, err
}

func (f *fakeSurface) Open(c archive.Caller, id uint64) (archive.FileReader, archive.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, _, file, err := f.batchOf(id)
	if err != nil {
		return nil, file, err
	}
	var dirs []archive.File
	s := fakeSnapshot{f, archive.Root()}
	for p := file.Parent; p != 0; {
		d, err := s.File(p)
		if err != nil {
			return nil, file, err
		}
		dirs = append([]archive.File{d}, dirs...)
		p = d.Parent
	}
	if !archive.MayRead(c, w, dirs, file) {
		return nil, file, fmt.Errorf("read %s: %w", file.Path, archive.ErrDenied)
	}
	f.opened = append(f.opened, id)
	return &fakeReader{data: []byte(file.MD5)}, file, nil
}

func (f *fakeSurface) Recall(c archive.Caller, ids ...uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recalled = append(f.recalled, ids...)
	return nil
}

func (f *fakeSurface) RemoveEntry(c archive.Caller, ws string, batch, parent uint64, name string, dir bool) error {
	f.mu.Lock()
	var id uint64
	for _, file := range f.files {
		if file.Batch == batch && file.Parent == parent && file.Name == name {
			id = file.ID
		}
	}
	f.mu.Unlock()
	if id == 0 {
		return archive.ErrNotFound
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	w, b, _, err := f.batchOf(id)
	if err != nil {
		return err
	}
	if !archive.MayRemove(c, w, b) {
		return archive.ErrDenied
	}
	// The engine's checks (archive/remove.go), as the mount relies on them.
	for _, file := range f.files {
		if file.ID != id {
			continue
		}
		switch {
		case dir && file.Type != archive.TypeDir:
			return archive.ErrNotDir
		case !dir && file.Type == archive.TypeDir:
			return archive.ErrIsDir
		case dir && f.visibleChildren(batch, id):
			return archive.ErrNotEmpty
		}
	}
	for i := range f.files {
		if f.files[i].ID == id {
			f.files[i].Removed = true
		}
	}
	f.hidden = append(f.hidden, id)
	return nil
}

func (f *fakeSurface) RemoveEmptied(c archive.Caller, ws string, id uint64) (archive.Batch, error) {
	f.mu.Lock()
	for _, b := range f.batches {
		if b.ID != id {
			continue
		}
		w, err := fakeSnapshot{f, archive.Root()}.Workspace(b.Workspace)
		if err == nil && archive.MayRemove(c, w, b) && f.visibleChildren(id, 0) {
			f.mu.Unlock()
			return b, archive.ErrNotEmpty
		}
	}
	f.mu.Unlock()
	return f.Remove(c, id)
}

// visibleChildren reports whether directory parent of batch shows an
// entry (f.mu held).
func (f *fakeSurface) visibleChildren(batch, parent uint64) bool {
	for _, file := range f.files {
		if file.Batch == batch && file.Parent == parent && !file.Removed {
			return true
		}
	}
	return false
}

func (f *fakeSurface) Remove(c archive.Caller, id uint64) (archive.Batch, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, b := range f.batches {
		if b.ID != id {
			continue
		}
		w, err := fakeSnapshot{f, archive.Root()}.Workspace(b.Workspace)
		if err != nil {
			return b, err
		}
		if !archive.MayRemove(c, w, b) {
			return b, archive.ErrDenied
		}
		f.batches[i].State = archive.StateDeleted
		f.removed = append(f.removed, id)
		return f.batches[i], nil
	}
	return archive.Batch{}, notFound("batch %d", id)
}

// fakeReader serves a fixed content.
type fakeReader struct{ data []byte }

func (r *fakeReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= int64(len(r.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.data[off:])
	return n, nil
}

func (r *fakeReader) Size() int64  { return int64(len(r.data)) }
func (r *fakeReader) Close() error { return nil }

// The fake's batches change only through it: nothing to notify.
func (f *fakeSurface) Subscribe(fn func(archive.Change)) (cancel func()) { return func() {} }

func (f *fakeSurface) ChangesFollowed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.notFollowed
}

func (f *fakeSurface) WaitNotified(ctx context.Context) error { return nil }

func (f *fakeSurface) Checksum(ctx context.Context, id uint64) (string, error) {
	_, _, file, err := f.batchOf(id)
	return file.MD5, err
}
