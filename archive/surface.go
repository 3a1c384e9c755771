package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/tapefs/tapefs/archive/errkind"
	"github.com/tapefs/tapefs/catalog"

	"github.com/tapefs/tapefs/internal/ident"
)

// Surface is the one door to the archive for the faces above it: the
// mount (fs), the control API (api/server) and the status page (web). It
// takes the caller of every request, applies the access rule of access.go,
// and answers with the engine's own views (view.go). It knows nothing of
// FUSE or HTTP. *Engine provides it through Engine.Surface; fs's tests
// provide fakes.
type Surface interface {
	// Read runs fn with one consistent read of the archive as c sees it:
	// workspaces c may not see are "not found".
	Read(c Caller, fn func(Snapshot) error) error

	// Put/ entries being written through the mount.
	StagingDir(workspace string) string
	EntryOpened(workspace, entry string) error
	EntryClosed(workspace, entry string)
	EntryChanged(workspace, entry string)
	EntryState(workspace, entry string) (EntryState, string)
	// Failed writes in put/ (an entry with one is not sealed as it
	// stands), and their repair.
	WriteFailed(workspace, path string, fd int, op string, errno syscall.Errno)
	FileRewritten(workspace, path string, fd int)
	HasWriteFailures(workspace string) bool
	// PutEntries lists the entries of put/ that are not batches (pending,
	// sealing, rejected, write-failed) of one workspace, or ("") of
	// every workspace c may see, refused ones first.
	PutEntries(c Caller, workspace string) ([]PutEntry, error)
	// Seal seals an entry of put/ now; the batch belongs to the entry's
	// owner.
	Seal(ctx context.Context, c Caller, workspace, entry, tag string) (Batch, error)

	// Open returns a reader of a regular file's bytes, if c may read them.
	Open(c Caller, fileID uint64) (FileReader, File, error)
	Recall(c Caller, fileIDs ...uint64) error
	RecallBatch(c Caller, batch uint64) error

	// Removal and its undoing.
	// RemoveEntry hides an entry of a batch tree (rm, rmdir inside a
	// batch), provisionally (remove.go); RemoveEmptied deletes a batch
	// whose tree rm has emptied (rmdir of the batch directory).
	RemoveEntry(c Caller, ws string, batch, parent uint64, name string, dir bool) error
	RemoveEmptied(c Caller, ws string, batch uint64) (Batch, error)
	Remove(c Caller, batch uint64) (Batch, error)
	Undelete(c Caller, batch uint64) (Batch, error)

	// The command line's put, workspace administration, the cache.
	CreateWorkspace(c Caller, w Workspace) (Workspace, error)
	SetQuota(c Caller, workspace string, quota int64) (Workspace, error)
	// SetCopies sets a workspace's copies policy (root; 0: the daemon's
	// default) and queues the missing copies of its batches on tape.
	SetCopies(c Caller, workspace string, copies int) (Workspace, error)
	// SetCartridge changes a cartridge's pool or root's state (root); it
	// returns the cartridge and how many batches get copies re-created.
	SetCartridge(c Caller, volser string, ch CartridgeChange) (Cartridge, int, error)
	// Reserve registers a CLI put of bytes whose largest file (at
	// largestPath) is largest bytes: refused before any batch exists when
	// that file is over the maximum file size.
	Reserve(c Caller, workspace, tag string, bytes int64, largestPath string, largest int64) (Batch, error)
	Ingest(ctx context.Context, c Caller, batch uint64, r io.Reader) (Batch, error)
	WaitBatch(ctx context.Context, c Caller, batch uint64) (Batch, error)
	Evict(c Caller, batch uint64) (int64, error)

	// VerifyCache checks cached objects against their sealed md5: one
	// batch, one workspace, or (neither) every workspace c may see.
	VerifyCache(ctx context.Context, c Caller, batch uint64, workspace string) (VerifyReport, error)
	// VerifyTape reads back the tape copies of a batch, a cartridge or a
	// workspace (verifytape.go) and compares them with their sealed md5,
	// without caching them. A whole cartridge is root's to ask for.
	VerifyTape(ctx context.Context, c Caller, scope TapeScope) (TapeVerifyReport, error)
	// Progress is how far the work a command named token got (a
	// read-back): the token, of the command's own choosing, is the key.
	Progress(token string) (WorkProgress, bool)

	// Access applies the access rule to one caller and batch (and, if
	// file is not 0, that file of it).
	Access(c Caller, batch, file uint64) (Access, error)

	// Subscribe tells the mount of batch changes made behind its back
	// (notify.go); WaitNotified waits until every subscriber heard of
	// the changes made so far (never from inside a FUSE request).
	Subscribe(fn func(Change)) (cancel func())
	WaitNotified(ctx context.Context) error
	// ChangesFollowed reports whether every change, also another host's
	// on a shared catalog, reaches Subscribe's fn at once (follow.go):
	// only then may the mount let the kernel cache directories long.
	ChangesFollowed() bool
	// Checksum is the md5 of a file the caller was already allowed to
	// see, waiting for it while its batch is still SEALING.
	Checksum(ctx context.Context, fileID uint64) (string, error)

	// Repack queues the repack of a cartridge (root): its live copies
	// go to other cartridges and it is erased to scratch (repack.go).
	Repack(c Caller, volser string) (RepackStatus, error)

	// What the page and the metrics show of the machinery.
	Library() Library
	CacheStats() CacheStats
	Stats() Stats
	// RecallQueue is the recall queue with its estimates (eta.go).
	RecallQueue() RecallQueue
}

// Snapshot is one consistent read of the archive, as one caller sees it.
// Its records are valid after the read ends.
type Snapshot interface {
	Workspace(name string) (Workspace, error)
	Workspaces() ([]Workspace, error)
	// Batch reads a batch of a workspace the caller may see.
	Batch(id uint64) (Batch, error)
	// Batches pages through batches; q.Workspace "" means every
	// workspace the caller may see.
	Batches(q BatchQuery) ([]Batch, error)
	// File reads an entry of a batch tree by ID.
	File(id uint64) (File, error)
	// Lookup finds the entry name in directory parent (0: top level).
	Lookup(batch, parent uint64, name string) (File, error)
	// Children lists directory parent after the name after (""), in name
	// order, removed entries included (a listing skips them): the
	// entries' attributes, without MD5 and Copies (File, Lookup and Files
	// have them; a listing does not read them).
	Children(batch, parent uint64, after string, limit int) ([]File, error)
	// Names is Children with each entry's name, type and inode only,
	// for a listing that needs no attributes (much cheaper to read).
	Names(batch, parent uint64, after string, limit int) ([]Name, error)
	// Files lists a batch's entries by ID after after.
	Files(batch, after uint64, limit int) ([]File, error)
	// FindPath lists the batches of a workspace holding a path.
	FindPath(workspace, path string) ([]uint64, error)
	// LastEvent is the sequence number of the newest event (0: none).
	LastEvent() (uint64, error)
	// Events lists events after sequence number after, oldest first
	// (limit 0: no limit), of one workspace or ("") every one the caller
	// may see.
	Events(after uint64, limit int, workspace string) ([]Event, error)
}

// BatchQuery pages through batches.
type BatchQuery struct {
	Workspace string       // "" = every workspace the caller may see
	States    []BatchState // empty = every state
	After     uint64       // cursor: IDs after (or before, with Newest) this one
	Limit     int          // 0 = no limit
	Newest    bool         // newest first
}

// FileReader reads the bytes of one file. A reader of a file whose whole
// object is cached also has Cached() *os.File (kernel passthrough).
type FileReader interface {
	ReadAt(ctx context.Context, p []byte, off int64) (int, error)
	Size() int64
	Close() error
}

// Surface returns the engine's surface.
func (e *Engine) Surface() Surface { return door{e} }

type door struct{ e *Engine }

func (d door) Read(c Caller, fn func(Snapshot) error) error {
	return d.e.cat.View(func(tx *catalog.Tx) error {
		return fn(&snapshot{e: d.e, tx: tx, c: c})
	})
}

// snapshot is a Snapshot over one catalog transaction.
type snapshot struct {
	e   *Engine
	tx  *catalog.Tx
	c   Caller
	wss map[string]*catalog.Workspace // read once per snapshot
	bs  map[uint64]catalog.Batch      // batches seen, read once per snapshot
	cj  map[uint64]bool               // batches with a copy job, read once per snapshot
	cws map[string]int                // ... counted by workspace
}

// copyJobs is the set of batches whose missing copies are being written.
func (s *snapshot) copyJobs() map[uint64]bool {
	if s.cj == nil {
		s.cj, _ = copyJobs(s.tx)
	}
	return s.cj
}

// workspaceView is w as the caller sees it, with its copies policy and
// the batches still short of it.
func (s *snapshot) workspaceView(w catalog.Workspace) Workspace {
	v := workspaceView(w)
	v.Copies = w.CopiesOr(s.e.cfg.Copies)
	if s.cws == nil {
		s.cws = map[string]int{}
		for id := range s.copyJobs() {
			if b, err := s.tx.Batch(id); err == nil {
				s.cws[b.Workspace]++
			}
		}
	}
	v.CopiesMissing = s.cws[w.Name]
	return v
}

func (s *snapshot) batchView(b catalog.Batch) Batch {
	v := s.e.batchViewIn(s.tx, b)
	v.CopiesMissing = s.copyJobs()[b.ID]
	return v
}

func (s *snapshot) workspace(name string) (catalog.Workspace, error) {
	if w, ok := s.wss[name]; ok {
		if w == nil {
			return catalog.Workspace{}, fmt.Errorf("workspace %q: %w", name, ErrNotFound)
		}
		return *w, nil
	}
	if s.wss == nil {
		s.wss = map[string]*catalog.Workspace{}
	}
	w, err := s.tx.Workspace(name)
	if errors.Is(err, ErrNotFound) || err == nil && !MaySee(s.c, workspaceView(w)) {
		s.wss[name] = nil
		return w, fmt.Errorf("no workspace %q (or you are not in its group): %w", name, ErrNotFound)
	}
	if err != nil {
		return w, err
	}
	s.wss[name] = &w
	return w, nil
}

func (s *snapshot) Workspace(name string) (Workspace, error) {
	w, err := s.workspace(name)
	return s.workspaceView(w), err
}

func (s *snapshot) Workspaces() ([]Workspace, error) {
	all, err := s.tx.Workspaces()
	out := make([]Workspace, 0, len(all))
	for _, w := range all {
		if v := workspaceView(w); MaySee(s.c, v) {
			out = append(out, s.workspaceView(w))
		}
	}
	return out, err
}

func (s *snapshot) batch(id uint64) (catalog.Batch, error) {
	if b, ok := s.bs[id]; ok {
		return b, nil
	}
	b, err := s.tx.Batch(id)
	if err == nil {
		_, err = s.workspace(b.Workspace)
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return b, fmt.Errorf("no batch %d: %w", id, ErrNotFound)
		}
		return b, err
	}
	if s.bs == nil {
		s.bs = map[uint64]catalog.Batch{}
	}
	s.bs[id] = b
	return b, nil
}

func (s *snapshot) Batch(id uint64) (Batch, error) {
	b, err := s.batch(id)
	if err != nil {
		return Batch{}, err
	}
	return s.batchView(b), nil
}

func (s *snapshot) Batches(q BatchQuery) ([]Batch, error) {
	names := []string{q.Workspace}
	if q.Workspace == "" {
		names = nil
		wss, err := s.Workspaces()
		if err != nil {
			return nil, err
		}
		if len(wss) == 0 {
			return nil, nil
		}
		all, err := s.tx.Workspaces()
		if err != nil {
			return nil, err
		}
		if len(wss) == len(all) {
			names = []string{""} // every workspace: one ordered scan
		} else {
			for _, w := range wss {
				names = append(names, w.Name)
			}
		}
	} else if _, err := s.workspace(q.Workspace); err != nil {
		return nil, err
	}
	var out []Batch
	for _, ws := range names {
		bs, err := s.tx.Batches(catalog.ListOptions{Workspace: ws, States: catalogStates(q.States), After: q.After, Limit: q.Limit, Newest: q.Newest})
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			out = append(out, s.batchView(b))
		}
	}
	return out, nil
}

func (s *snapshot) file(id uint64) (catalog.File, error) {
	f, err := s.tx.File(id)
	if err != nil {
		return f, err
	}
	if _, err := s.batch(f.Batch); err != nil {
		return f, fmt.Errorf("no file %d: %w", id, ErrNotFound)
	}
	return f, nil
}

func (s *snapshot) File(id uint64) (File, error) {
	f, err := s.file(id)
	if err != nil {
		return File{}, err
	}
	return s.e.fileView(&f), nil
}

func (s *snapshot) Lookup(batch, parent uint64, name string) (File, error) {
	if _, err := s.batch(batch); err != nil {
		return File{}, err
	}
	f, err := s.tx.Lookup(batch, parent, name)
	if err != nil {
		return File{}, err
	}
	return s.e.fileView(&f), nil
}

func (s *snapshot) Children(batch, parent uint64, after string, limit int) ([]File, error) {
	if _, err := s.batch(batch); err != nil {
		return nil, err
	}
	fs, err := s.tx.Children(batch, parent, after, limit)
	return s.files(fs), err
}

func (s *snapshot) Names(batch, parent uint64, after string, limit int) ([]Name, error) {
	if _, err := s.batch(batch); err != nil {
		return nil, err
	}
	ns, err := s.tx.ChildNames(batch, parent, after, limit)
	out := make([]Name, len(ns))
	for i := range ns {
		n := &ns[i]
		out[i] = Name{Name: n.Name, ID: n.ID, DataID: n.DataID(), Type: FileType(n.Type), Removed: n.Removed}
	}
	return out, err
}

func (s *snapshot) Files(batch, after uint64, limit int) ([]File, error) {
	if _, err := s.batch(batch); err != nil {
		return nil, err
	}
	fs, err := s.tx.Files(batch, after, limit)
	return s.files(fs), err
}

func (s *snapshot) files(fs []catalog.File) []File {
	out := make([]File, len(fs))
	for i := range fs {
		out[i] = s.e.fileView(&fs[i])
	}
	return out
}

func (s *snapshot) FindPath(workspace, path string) ([]uint64, error) {
	if _, err := s.workspace(workspace); err != nil {
		return nil, err
	}
	return s.tx.FindPath(workspace, path)
}

func (s *snapshot) LastEvent() (uint64, error) { return s.tx.LastEvent() }

// Events of no workspace (the library's) are shown to root and the page.
func (s *snapshot) Events(after uint64, limit int, workspace string) ([]Event, error) {
	if workspace != "" {
		if _, err := s.workspace(workspace); err != nil {
			return nil, err
		}
	}
	evs, err := s.tx.Events(after, limit, workspace)
	out := make([]Event, 0, len(evs))
	for _, ev := range evs {
		visible := s.c.IsRoot() || s.c.Unknown
		if ev.Workspace != "" && !visible {
			_, werr := s.workspace(ev.Workspace)
			visible = werr == nil
		}
		if visible {
			out = append(out, eventView(ev))
		}
	}
	return out, err
}

// ---- the rule applied to requests ----

// check reads a batch and its workspace as c sees them and applies rule.
func (d door) check(c Caller, batch uint64, what string, rule func(Workspace, Batch) bool) (catalog.Batch, error) {
	var b catalog.Batch
	var w catalog.Workspace
	err := d.e.cat.View(func(tx *catalog.Tx) error {
		s := &snapshot{e: d.e, tx: tx, c: c}
		var err error
		if b, err = s.batch(batch); err != nil {
			return err
		}
		w, err = s.workspace(b.Workspace)
		return err
	})
	if err != nil {
		return b, err
	}
	if !rule(workspaceView(w), d.e.batchView(b)) {
		return b, fmt.Errorf("%s batch %d: %w (workspace %s: root, its manager %s%s)", what, batch, ErrDenied, w.Name, ident.UserText(w.Manager), ownerNote(what, b))
	}
	return b, nil
}

func ownerNote(what string, b catalog.Batch) string {
	if what == "remove" {
		return fmt.Sprintf(" or the batch's owner %s may", ident.UserText(b.Owner))
	}
	return " may"
}

func (d door) manage(c Caller, workspace, what string) (catalog.Workspace, error) {
	var w catalog.Workspace
	err := d.e.cat.View(func(tx *catalog.Tx) error {
		var err error
		w, err = (&snapshot{e: d.e, tx: tx, c: c}).workspace(workspace)
		return err
	})
	if err == nil && !MayManage(c, workspaceView(w)) {
		err = fmt.Errorf("%s in workspace %s: %w (only root and its manager %s may)", what, workspace, ErrDenied, ident.UserText(w.Manager))
	}
	return w, err
}

func (d door) StagingDir(workspace string) string        { return d.e.StagingDir(workspace) }
func (d door) EntryOpened(workspace, entry string) error { return d.e.EntryOpened(workspace, entry) }
func (d door) EntryClosed(workspace, entry string)       { d.e.EntryClosed(workspace, entry) }
func (d door) EntryChanged(workspace, entry string)      { d.e.EntryChanged(workspace, entry) }
func (d door) EntryState(workspace, entry string) (EntryState, string) {
	return d.e.EntryState(workspace, entry)
}
func (d door) WriteFailed(workspace, path string, fd int, op string, errno syscall.Errno) {
	d.e.WriteFailed(workspace, path, fd, op, errno)
}
func (d door) FileRewritten(workspace, path string, fd int) { d.e.FileRewritten(workspace, path, fd) }
func (d door) HasWriteFailures(workspace string) bool       { return d.e.HasWriteFailures(workspace) }

func (d door) PutEntries(c Caller, workspace string) ([]PutEntry, error) {
	var names []string
	err := d.Read(c, func(s Snapshot) error {
		if workspace != "" {
			_, err := s.Workspace(workspace)
			names = []string{workspace}
			return err
		}
		wss, err := s.Workspaces()
		names = []string{} // none visible: none listed
		for _, w := range wss {
			names = append(names, w.Name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return d.e.PutEntries(names), nil
}

// entryOwner is the owner of a put/ entry: its batch belongs to them. It
// is the one place that works this out, for a seal on request and by the
// settle timer alike.
func (e *Engine) entryOwner(workspace, entry string) (uint32, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(e.StagingDir(workspace), entry), &st); err != nil {
		return 0, err
	}
	return st.Uid, nil
}

func (d door) Seal(ctx context.Context, c Caller, workspace, entry, tag string) (Batch, error) {
	if _, err := d.manage(c, workspace, "seal"); err != nil {
		return Batch{}, err
	}
	owner, err := d.e.entryOwner(workspace, entry)
	if err != nil {
		// No such entry: Seal says so in its own words.
		owner = c.UID
	}
	b, err := d.e.Seal(ctx, workspace, entry, owner, tag)
	return d.e.batchView(b), err
}

func (d door) Open(c Caller, fileID uint64) (FileReader, File, error) {
	var f catalog.File
	var w catalog.Workspace
	var dirs []File
	err := d.e.cat.View(func(tx *catalog.Tx) error {
		s := &snapshot{e: d.e, tx: tx, c: c}
		if _, err := s.file(fileID); err != nil {
			return err
		}
		var err error
		if f, dirs, err = d.e.fileAndDirs(tx, fileID); err != nil {
			return err
		}
		b, err := s.batch(f.Batch)
		if err != nil {
			return err
		}
		w, err = s.workspace(b.Workspace)
		return err
	})
	if err != nil {
		return nil, File{}, err
	}
	v := d.e.fileView(&f)
	if !MayRead(c, workspaceView(w), dirs, v) {
		return nil, v, fmt.Errorf("read %s (batch %d): %w by its mode %04o (owner %s, group %s) or a directory above it", f.Path, f.Batch, ErrDenied, f.Mode, ident.UserText(f.UID), ident.GroupText(f.GID))
	}
	r, err := d.e.Open(fileID)
	if err != nil {
		return nil, v, err
	}
	return r, v, nil
}

func (d door) Recall(c Caller, fileIDs ...uint64) error {
	err := d.e.cat.View(func(tx *catalog.Tx) error {
		s := &snapshot{e: d.e, tx: tx, c: c}
		for _, id := range fileIDs {
			if _, err := s.file(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return d.e.Recall(fileIDs...)
}

func (d door) RecallBatch(c Caller, batch uint64) error {
	if _, err := d.check(c, batch, "recall", func(w Workspace, _ Batch) bool { return MaySee(c, w) }); err != nil {
		return err
	}
	return d.e.RecallBatch(batch)
}

func (d door) RemoveEntry(c Caller, ws string, batch, parent uint64, name string, dir bool) error {
	if _, err := d.check(c, batch, "remove", func(w Workspace, b Batch) bool { return MayRemove(c, w, b) }); err != nil {
		return err
	}
	_, err := d.e.RemoveEntry(ws, batch, parent, name, dir)
	return err
}

func (d door) RemoveEmptied(c Caller, ws string, batch uint64) (Batch, error) {
	if _, err := d.check(c, batch, "remove", func(w Workspace, b Batch) bool { return MayRemove(c, w, b) }); err != nil {
		return Batch{}, err
	}
	b, err := d.e.RemoveEmptied(ws, batch)
	return d.e.batchView(b), err
}

func (d door) Remove(c Caller, batch uint64) (Batch, error) {
	b, err := d.check(c, batch, "remove", func(w Workspace, b Batch) bool { return MayRemove(c, w, b) })
	if err != nil {
		return Batch{}, err
	}
	if b.State == catalog.Deleted {
		return d.e.batchView(b), fmt.Errorf("batch %d is already deleted: %w", batch, ErrConflict)
	}
	b, err = d.e.Remove(batch)
	return d.e.batchView(b), conflict(err)
}

// Undelete follows the removal rule: whoever may remove a batch may undo it.
func (d door) Undelete(c Caller, batch uint64) (Batch, error) {
	b, err := d.check(c, batch, "undelete", func(w Workspace, b Batch) bool { return MayRemove(c, w, b) })
	if err != nil {
		return Batch{}, err
	}
	// A live batch with a removal in progress gets its hidden entries back.
	if b.State != catalog.Deleted && !b.Removal.Pending() {
		return d.e.batchView(b), fmt.Errorf("batch %d is not deleted (%s) and no removal inside it is in progress: %w", batch, b.State, ErrConflict)
	}
	b, err = d.e.Undelete(batch)
	return d.e.batchView(b), conflict(err)
}

// conflict marks an engine refusal that is about the batch's state.
func conflict(err error) error {
	if err == nil || KindOf(err) != errkind.Internal {
		return err
	}
	return fmt.Errorf("%w: %w", ErrConflict, err)
}

func (d door) CreateWorkspace(c Caller, w Workspace) (Workspace, error) {
	if !c.IsRoot() {
		return w, fmt.Errorf("create workspace %s: %w (only root creates workspaces)", w.Name, ErrDenied)
	}
	cw := catalog.Workspace{Name: w.Name, Quota: w.Quota, Manager: w.Manager, Group: w.Group, Created: w.Created}
	if err := ValidWorkspaceName(w.Name); err != nil {
		return w, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := d.e.CreateWorkspace(cw); err != nil {
		return w, err
	}
	var out Workspace
	err := d.Read(c, func(s Snapshot) error {
		var err error
		out, err = s.Workspace(w.Name)
		return err
	})
	return out, err
}

func (d door) SetQuota(c Caller, workspace string, quota int64) (Workspace, error) {
	if !c.IsRoot() {
		return Workspace{}, fmt.Errorf("set quota of %s: %w (only root sets quotas)", workspace, ErrDenied)
	}
	w, err := d.e.SetQuota(workspace, quota)
	return workspaceView(w), err
}

func (d door) SetCopies(c Caller, workspace string, copies int) (Workspace, error) {
	if !c.IsRoot() {
		return Workspace{}, fmt.Errorf("set copies of %s: %w (only root sets copies)", workspace, ErrDenied)
	}
	if _, err := d.e.SetCopies(workspace, copies); err != nil {
		return Workspace{}, err
	}
	var out Workspace
	err := d.Read(c, func(s Snapshot) error {
		var err error
		out, err = s.Workspace(workspace)
		return err
	})
	return out, err
}

func (d door) SetCartridge(c Caller, volser string, ch CartridgeChange) (Cartridge, int, error) {
	if !c.IsRoot() {
		return Cartridge{}, 0, fmt.Errorf("change cartridge %s: %w (only root changes cartridges)", volser, ErrDenied)
	}
	rec, n, err := d.e.SetCartridge(volser, ch)
	if err != nil {
		return Cartridge{}, 0, err
	}
	return Cartridge{VOLSER: rec.VOLSER, Pool: rec.Pool, Admin: rec.Admin}, n, nil
}

func (d door) Reserve(c Caller, workspace, tag string, bytes int64, largestPath string, largest int64) (Batch, error) {
	if _, err := d.manage(c, workspace, "put"); err != nil {
		return Batch{}, err
	}
	if err := d.e.CheckFileSize(workspace, largestPath, largest); err != nil {
		return Batch{}, err
	}
	b, err := d.e.Reserve(workspace, tag, c.UID, bytes)
	return d.e.batchView(b), err
}

func (d door) Ingest(ctx context.Context, c Caller, batch uint64, r io.Reader) (Batch, error) {
	b, err := d.check(c, batch, "put into", func(w Workspace, b Batch) bool {
		return MayManage(c, w) && (c.IsRoot() || b.Owner == c.UID)
	})
	if err != nil {
		return Batch{}, err
	}
	if b.State != catalog.Caching {
		return d.e.batchView(b), fmt.Errorf("batch %d is %s: only a CACHING batch takes data: %w", batch, b.State, ErrConflict)
	}
	b, err = d.e.Ingest(ctx, batch, r)
	if KindOf(err) == errkind.Internal {
		// What the engine does not classify is the stream's fault: a
		// malformed tar, a name or type tapefs cannot archive.
		err = fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return d.e.batchView(b), err
}

func (d door) WaitBatch(ctx context.Context, c Caller, batch uint64) (Batch, error) {
	if _, err := d.check(c, batch, "wait for", func(w Workspace, _ Batch) bool { return MaySee(c, w) }); err != nil {
		return Batch{}, err
	}
	b, err := d.e.WaitBatch(ctx, batch)
	return d.e.batchView(b), err
}

func (d door) Evict(c Caller, batch uint64) (int64, error) {
	if batch == 0 && !c.IsRoot() {
		return 0, fmt.Errorf("evict every batch: %w (only root; give -b ID)", ErrDenied)
	}
	if batch != 0 {
		b, err := d.check(c, batch, "evict", func(w Workspace, _ Batch) bool { return MayManage(c, w) })
		if err != nil {
			return 0, err
		}
		if !b.State.OnTape() {
			return 0, fmt.Errorf("batch %d is %s: only batches on tape can be evicted: %w", b.ID, b.State, ErrConflict)
		}
	}
	return d.e.EvictBatch(batch)
}

func (d door) Access(c Caller, batch, file uint64) (Access, error) {
	var a Access
	// Read as root: the answer for a caller who may not see the batch
	// says so instead of "not found".
	err := d.e.cat.View(func(tx *catalog.Tx) error {
		b, err := tx.Batch(batch)
		if err != nil {
			return err
		}
		w, err := tx.Workspace(b.Workspace)
		if err != nil {
			return err
		}
		wv := workspaceView(w)
		a = AccessTo(c, wv, d.e.batchViewIn(tx, b))
		if file == 0 {
			return nil
		}
		f, dirs, err := d.e.fileAndDirs(tx, file)
		if err != nil {
			return err
		}
		if f.Batch != batch {
			return fmt.Errorf("file %d is not in batch %d: %w", file, batch, ErrNotFound)
		}
		a.Read = MayRead(c, wv, dirs, d.e.fileView(&f))
		return nil
	})
	return a, err
}

// VerifyCache checks only what the caller may see. Reading is all it
// takes to ask: what it does to a damaged object (drop and recall what is
// on tape, keep and fail what is not) is what a read would have led to.
func (d door) VerifyCache(ctx context.Context, c Caller, batch uint64, workspace string) (VerifyReport, error) {
	scope := VerifyScope{Batch: batch}
	err := d.Read(c, func(s Snapshot) error {
		switch {
		case batch != 0:
			b, err := s.Batch(batch)
			if err != nil {
				return err
			}
			if workspace != "" && b.Workspace != workspace {
				return fmt.Errorf("batch %d belongs to workspace %s, not %s: %w", batch, b.Workspace, workspace, ErrNotFound)
			}
		case workspace != "":
			if _, err := s.Workspace(workspace); err != nil {
				return err
			}
			scope.Workspaces = map[string]bool{workspace: true}
		case !c.IsRoot():
			wss, err := s.Workspaces()
			scope.Workspaces = map[string]bool{}
			for _, w := range wss {
				scope.Workspaces[w.Name] = true
			}
			return err
		}
		return nil
	})
	if err != nil {
		return VerifyReport{}, err
	}
	if c.Unknown {
		return VerifyReport{}, fmt.Errorf("verify the cache: %w (the status page changes nothing)", ErrDenied)
	}
	return d.e.VerifyCache(ctx, scope)
}

// fileAndDirs reads a file (its data owner, for a hard link) and the
// directories of its batch tree above it, outermost first.
func (e *Engine) fileAndDirs(tx *catalog.Tx, id uint64) (catalog.File, []File, error) {
	f, err := tx.File(id)
	if err == nil && f.Link != 0 {
		// A hard link shares its data owner's attributes.
		f, err = tx.File(f.Link)
	}
	if err != nil {
		return f, nil, err
	}
	var dirs []File
	for p := f.Parent; p != 0; {
		dir, err := tx.File(p)
		if err != nil {
			return f, nil, err
		}
		dirs = append([]File{e.fileView(&dir)}, dirs...)
		p = dir.Parent
	}
	return f, dirs, nil
}

func (d door) Library() Library {
	verified, damaged := d.e.CartridgesVerified()
	recs := d.e.cartRecords()
	carts := map[string]Cartridge{}
	for v, r := range recs {
		carts[v] = Cartridge{VOLSER: v, Pool: r.Pool, Admin: r.Admin}
	}
	hosts, err := d.e.Hosts()
	if err != nil {
		d.e.log.Warn().Err(err).Msg("library status: the hosts could not be read from the catalog")
	}
	l := Library{Drives: d.e.lib.Drives(), Cartridges: d.e.lib.Cartridges(), Counters: d.e.lib.Counters(),
		Verified: verified, VerifyDamaged: damaged, VerifyFailures: d.e.TapeVerifyFailures(), Admin: carts,
		Dead: map[string]int64{}, Repacking: map[string]RepackStatus{}, Hosts: hosts}
	_ = d.e.cat.View(func(tx *catalog.Tx) error {
		cs, err := tx.Cartridges()
		for _, c := range cs {
			if c.Dead > 0 {
				l.Dead[c.VOLSER] = c.Dead
			}
		}
		return err
	})
	if rs, err := d.e.Repacks(); err == nil {
		for _, r := range rs {
			l.Repacking[r.VOLSER] = r
		}
	}
	return l
}

// Repack is root's: a cartridge holds everybody's files.
func (d door) Repack(c Caller, volser string) (RepackStatus, error) {
	if !c.IsRoot() {
		return RepackStatus{}, fmt.Errorf("repack %s: %w (only root repacks cartridges)", volser, ErrDenied)
	}
	return d.e.Repack(volser)
}

// VerifyTape reads back only what the caller may see: a batch or
// workspace the caller may read, or (root) a whole cartridge. Reading the
// copies changes nothing but drive time, yet a whole cartridge holds
// everybody's files, so it is root's.
func (d door) Progress(token string) (WorkProgress, bool) { return d.e.Progress(token) }

func (d door) VerifyTape(ctx context.Context, c Caller, scope TapeScope) (TapeVerifyReport, error) {
	if c.Unknown {
		return TapeVerifyReport{}, fmt.Errorf("verify tape copies: %w (the status page changes nothing)", ErrDenied)
	}
	if scope.Batch == 0 && scope.VOLSER == "" && scope.Workspace == "" {
		return TapeVerifyReport{}, fmt.Errorf("verify tape copies: name a batch, a cartridge or a workspace: %w", ErrInvalid)
	}
	err := d.Read(c, func(s Snapshot) error {
		if scope.Batch != 0 {
			b, err := s.Batch(scope.Batch)
			if err != nil {
				return err
			}
			if scope.Workspace != "" && b.Workspace != scope.Workspace {
				return fmt.Errorf("batch %d belongs to workspace %s, not %s: %w", scope.Batch, b.Workspace, scope.Workspace, ErrNotFound)
			}
		}
		if scope.Workspace != "" {
			if _, err := s.Workspace(scope.Workspace); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return TapeVerifyReport{}, err
	}
	if scope.VOLSER != "" && scope.Batch == 0 && scope.Workspace == "" && !c.IsRoot() {
		return TapeVerifyReport{}, fmt.Errorf("verify cartridge %s: it holds other users' files; root may, or name a batch or workspace: %w", scope.VOLSER, ErrDenied)
	}
	scope.Workspaces = nil
	return d.e.VerifyTape(ctx, scope)
}

func (d door) CacheStats() CacheStats { return d.e.cache.Stats() }

func (d door) Stats() Stats { return d.e.Stats() }

func (d door) RecallQueue() RecallQueue { return d.e.RecallQueue() }

// cachedFile is what a Reader of a wholly cached file offers for kernel
// passthrough.
var _ interface{ Cached() *os.File } = (*Reader)(nil)

func (d door) Subscribe(fn func(Change)) (cancel func()) { return d.e.Subscribe(fn) }

func (d door) WaitNotified(ctx context.Context) error { return d.e.WaitNotified(ctx) }

func (d door) ChangesFollowed() bool { return d.e.ChangesFollowed() }

func (d door) Checksum(ctx context.Context, fileID uint64) (string, error) {
	return d.e.Checksum(ctx, fileID)
}
