package archive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// RebuildOptions says what Rebuild reads and where it writes.
type RebuildOptions struct {
	Catalog *catalog.Catalog // written; empty for a rebuild, a snapshot's for a restore
	Library tape.Library
	Cache   *cache.Cache // nil: no batch comes back CACHED_SYNCED
	Log     zerolog.Logger
	// Known says, per VOLSER, how many tape files (label included) the
	// catalog already knows: only later ones are read. nil: every tape file.
	Known map[string]int
	// Progress, when set, is called after each tape file.
	Progress func(RebuildStats)
}

// RebuildStats says what Rebuild read and wrote.
type RebuildStats struct {
	TapeFiles int   // tape files read
	Members   int   // aggregate members read
	Records   int   // records read
	Snapshots int   // catalog snapshots passed over
	BytesRead int64 // bytes read from tape
	Batches   int   // batches written to the catalog
	Purged    int   // batches the tapes say were purged
	Files     int   // files written to the catalog
}

// replayBatch is what the tapes say of one batch.
type replayBatch struct {
	id        uint64
	workspace string
	rec       *tape.Record // newest batch record
	recAt     time.Time    // when the tape file holding rec was closed
	state     *tape.Record // newest state record
	stateAt   time.Time
	lastFile  time.Time // newest closing time of a tape file with its members
	files     map[uint64]*catalog.File
}

// replay gathers the tapes' content; tape files are read in parallel.
type replay struct {
	mu         sync.Mutex
	batches    map[uint64]*replayBatch
	workspaces map[string]*tape.Record
	wsAt       map[string]time.Time
	pools      map[string]string // VOLSER -> pool named by its newest tape file that names one
	poolAt     map[string]time.Time
	admins     map[string]string // VOLSER -> root's state by its newest cartridge record
	adminAt    map[string]time.Time
	stats      RebuildStats
	dropped    map[dropKey]bool // copies replaced after they read back wrong
	gens       map[string]int   // label generation of each cartridge now
}

// tapeFileContent is one tape file's content before it is merged.
type tapeFileContent struct {
	volser  string
	n       int
	closed  time.Time
	pool    string // of the cartridge, as the closing record says
	members []readMember
	records []tape.Record
	bytes   int64
	snaps   int
}

type readMember struct {
	m   tape.Member
	off int64
}

// Rebuild reads the cartridges of the library (every tape file, or those
// after o.Known) and writes what they say into o.Catalog: workspaces,
// batches, files with their tape copies, removals and purges, and the
// cartridges. Replaying a tape file the catalog already holds changes
// nothing, so a restore may overlap its snapshot. The daemon must not run.
func Rebuild(ctx context.Context, o RebuildOptions) (RebuildStats, error) {
	r := &replay{batches: map[uint64]*replayBatch{}, workspaces: map[string]*tape.Record{}, wsAt: map[string]time.Time{},
		pools: map[string]string{}, poolAt: map[string]time.Time{}, admins: map[string]string{}, adminAt: map[string]time.Time{}}
	carts := o.Library.Cartridges()
	sort.Slice(carts, func(i, j int) bool { return carts[i].VOLSER < carts[j].VOLSER })
	if o.Known != nil {
		if err := dropErased(o, carts); err != nil {
			return r.stats, err
		}
	}
	work := make(chan tape.CartridgeInfo)
	errs := make(chan error, len(carts))
	var wg sync.WaitGroup
	for range max(len(o.Library.Drives()), 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if err := r.readCartridge(ctx, o, c); err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, c := range carts {
		if c.State == tape.CartridgeError {
			errs <- fmt.Errorf("cartridge %s: unreadable label or index: the catalog cannot be rebuilt without it", c.VOLSER)
			continue
		}
		work <- c
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := errors.Join(slicesOf(errs)...); err != nil {
		return r.stats, err
	}
	if err := r.write(o, carts); err != nil {
		return r.stats, err
	}
	return r.stats, nil
}

// dropErased forgets, in a catalog that is being brought up to date (a
// restored snapshot), every copy on a cartridge erased since the catalog
// was written: its label's generation is not the one the catalog
// recorded. Those tape files hold something else now (or nothing), so the
// copies are stale; the cartridge is read again from its first tape file,
// and a repack of it that the catalog still had queued is over.
func dropErased(o RebuildOptions, carts []tape.CartridgeInfo) error {
	return o.Catalog.Update(func(tx *catalog.Tx) error {
		for _, c := range carts {
			rec, err := tx.Cartridge(c.VOLSER)
			if errors.Is(err, catalog.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if rec.Generation == 0 || rec.Generation == c.Generation {
				continue
			}
			n, err := tx.DropCopies(c.VOLSER)
			if err != nil {
				return err
			}
			jobs, err := tx.Jobs(catalog.JobRepack)
			if err != nil {
				return err
			}
			for _, j := range jobs {
				if j.VOLSER == c.VOLSER {
					if err := tx.DeleteJob(j.ID); err != nil {
						return err
					}
				}
			}
			was := rec.Generation
			rec.Generation, rec.TapeFiles, rec.Dead = c.Generation, 0, 0
			if err := tx.EraseCartridge(rec); err != nil {
				return err
			}
			o.Known[c.VOLSER] = 0
			o.Log.Warn().Str("volser", c.VOLSER).Int("generation", c.Generation).Int("catalog_generation", was).Int("files", n).
				Msg("cartridge erased since the catalog was written: its copies there are dropped and it is read again")
		}
		return nil
	})
}

func slicesOf(ch chan error) []error {
	var out []error
	for e := range ch {
		out = append(out, e)
	}
	return out
}

// readCartridge reads the tape files of one cartridge in order, in one
// pass.
func (r *replay) readCartridge(ctx context.Context, o RebuildOptions, c tape.CartridgeInfo) error {
	first := max(o.Known[c.VOLSER], 1)
	if first >= c.TapeFiles {
		return nil
	}
	d, err := o.Library.Acquire(ctx, c.VOLSER)
	if err != nil {
		return fmt.Errorf("cartridge %s: %w", c.VOLSER, err)
	}
	defer o.Library.Release(d)
	for n := first; n < c.TapeFiles; n++ {
		if err := d.Locate(n, 0); err != nil {
			return fmt.Errorf("cartridge %s tape file %d: %w", c.VOLSER, n, err)
		}
		t := &tapeFileContent{volser: c.VOLSER, n: n}
		cr := &countReader{r: d}
		err := tape.ReadTapeFile(bufio.NewReaderSize(cr, 1<<20), tape.Visitor{
			Member: func(m tape.Member, off int64, _ io.Reader) error {
				t.members = append(t.members, readMember{m, off})
				return nil
			},
			Record: func(rec tape.Record) error {
				if rec.Kind == tape.RecordClosed {
					t.closed, _ = tape.ParseTimeField(rec.Fields["time"])
					t.pool = rec.Fields["pool"]
				} else {
					t.records = append(t.records, rec)
				}
				return nil
			},
			Snapshot: func(tape.Snapshot, io.Reader) error { t.snaps++; return nil },
		})
		if err != nil {
			return fmt.Errorf("cartridge %s tape file %d: %w", c.VOLSER, n, err)
		}
		t.bytes = cr.n
		r.merge(t, o)
		o.Log.Debug().Str("volser", c.VOLSER).Int("tape_file", n).Int("members", len(t.members)).Int("records", len(t.records)).Msg("tape file read for the catalog")
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (r *replay) batch(id uint64, ws string) *replayBatch {
	b := r.batches[id]
	if b == nil {
		b = &replayBatch{id: id, workspace: ws, files: map[uint64]*catalog.File{}}
		r.batches[id] = b
	}
	return b
}

// merge adds one tape file's content; where records disagree, the one
// written later wins.
func (r *replay) merge(t *tapeFileContent, o RebuildOptions) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.TapeFiles++
	r.stats.BytesRead += t.bytes
	r.stats.Members += len(t.members)
	r.stats.Records += len(t.records)
	r.stats.Snapshots += t.snaps
	if at, ok := r.poolAt[t.volser]; t.pool != "" && (!ok || !t.closed.Before(at)) {
		r.pools[t.volser], r.poolAt[t.volser] = t.pool, t.closed
	}
	for _, rec := range t.records {
		rec := rec
		id, _ := strconv.ParseUint(rec.Fields["batch"], 10, 64)
		ws := rec.Fields["workspace"]
		switch rec.Kind {
		case tape.RecordWorkspace:
			if old, ok := r.wsAt[ws]; !ok || !t.closed.Before(old) {
				r.workspaces[ws], r.wsAt[ws] = &rec, t.closed
			}
		case tape.RecordBatch:
			if id == 0 {
				continue
			}
			b := r.batch(id, ws)
			if b.rec == nil || !t.closed.Before(b.recAt) {
				b.rec, b.recAt = &rec, t.closed
			}
		case tape.RecordCartridge:
			v := rec.Fields["volser"]
			at, _ := tape.ParseTimeField(rec.Fields["time"])
			if old, ok := r.adminAt[v]; v != "" && (!ok || !at.Before(old)) {
				r.admins[v], r.adminAt[v] = rec.Fields["admin"], at
				if p := rec.Fields["pool"]; p != "" && (r.poolAt[v].IsZero() || !at.Before(r.poolAt[v])) {
					r.pools[v], r.poolAt[v] = p, at
				}
			}
		case tape.RecordDropped:
			if k, ok := parseDropped(rec); ok {
				if r.dropped == nil {
					r.dropped = map[dropKey]bool{}
				}
				r.dropped[k] = true
			}
		case tape.RecordState:
			if id == 0 {
				continue
			}
			b := r.batch(id, ws)
			at, _ := tape.ParseTimeField(rec.Fields["time"])
			if b.state == nil || !at.Before(b.stateAt) {
				b.state, b.stateAt = &rec, at
			}
		default:
			o.Log.Warn().Str("volser", t.volser).Int("tape_file", t.n).Str("record", rec.Kind).Msg("record of an unknown kind passed over (written by a newer tapefs?)")
		}
	}
	for _, rm := range t.members {
		m := rm.m
		b := r.batch(m.Batch, m.Workspace)
		if t.closed.After(b.lastFile) {
			b.lastFile = t.closed
		}
		f := b.files[m.FileID]
		if f == nil {
			f = fileOf(m)
			b.files[m.FileID] = f
		}
		if m.Type == tape.MemberFile {
			c := catalog.Copy{VOLSER: t.volser, TapeFile: t.n, Offset: rm.off, Length: m.Size}
			if !slices.Contains(f.Copies, c) {
				f.Copies = append(f.Copies, c)
			}
		}
	}
	if o.Progress != nil {
		o.Progress(r.stats)
	}
}

func fileOf(m tape.Member) *catalog.File {
	f := &catalog.File{ID: m.FileID, Batch: m.Batch, Path: m.Path, Name: path.Base(m.Path),
		Mode: m.Mode, UID: uint32(m.UID), GID: uint32(m.GID), Mtime: m.Mtime, MD5: m.MD5, CRC32C: m.CRC32C}
	switch m.Type {
	case tape.MemberDir:
		f.Type = catalog.TypeDir
	case tape.MemberSymlink:
		f.Type, f.Target = catalog.TypeSymlink, m.Target
	case tape.MemberLink:
		f.Type, f.Link = catalog.TypeFile, m.Link
	default:
		f.Type, f.Size = catalog.TypeFile, m.Size
	}
	return f
}

// write puts what the tapes said into the catalog, one transaction per
// batch.
func (r *replay) write(o RebuildOptions, carts []tape.CartridgeInfo) error {
	cat := o.Catalog
	r.gens = map[string]int{}
	for _, c := range carts {
		r.gens[c.VOLSER] = c.Generation
	}
	err := cat.Update(func(tx *catalog.Tx) error {
		for _, name := range sortedKeys(r.workspaces) {
			w, err := workspaceOf(r.workspaces[name])
			if err != nil {
				return err
			}
			if old, err := tx.Workspace(name); err == nil {
				w.Used = old.Used
			}
			if err := tx.PutWorkspace(w); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	ids := make([]uint64, 0, len(r.batches))
	for id := range r.batches {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		rb := r.batches[id]
		if err := cat.Update(func(tx *catalog.Tx) error { return r.writeBatch(tx, o, rb) }); err != nil {
			return fmt.Errorf("batch %d: %w", id, err)
		}
		r.batches[id] = nil // let the memory go
	}
	return cat.Update(func(tx *catalog.Tx) error {
		for _, c := range carts {
			if c.TapeFiles > 1 || r.admins[c.VOLSER] != "" || r.pools[c.VOLSER] != "" {
				rec := cartridgeRecord(c)
				rec.Pool = r.pools[c.VOLSER]
				rec.Admin = r.admins[c.VOLSER]
				if err := tx.PutCartridge(rec); err != nil {
					return err
				}
			}
		}
		if err := settleCachedStates(tx, o.Cache); err != nil {
			return err
		}
		if err := tx.RecountUsed(); err != nil {
			return err
		}
		_, err := tx.AppendEvent(catalog.Event{Time: time.Now(), Kind: EvRebuild,
			Message: fmt.Sprintf("catalog rebuilt from %d tape files: %d batches, %d files, %d purged batches left out", r.stats.TapeFiles, r.stats.Batches, r.stats.Files, r.stats.Purged)})
		return err
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func workspaceOf(rec *tape.Record) (catalog.Workspace, error) {
	f := rec.Fields
	w := catalog.Workspace{Name: f["workspace"]}
	var err error
	if f["quota"] != "" {
		if w.Quota, err = strconv.ParseInt(f["quota"], 10, 64); err != nil {
			return w, fmt.Errorf("workspace record of %s: quota: %w", w.Name, err)
		}
	}
	u := func(k string) uint32 {
		v, perr := strconv.ParseUint(f[k], 10, 32)
		if perr != nil && f[k] != "" && err == nil {
			err = fmt.Errorf("workspace record of %s: %s: %w", w.Name, k, perr)
		}
		return uint32(v)
	}
	w.Manager, w.Group = u("manager"), u("group")
	if f["copies"] != "" {
		n, perr := strconv.Atoi(f["copies"])
		if perr != nil || n < 0 || n > catalog.MaxCopies {
			return w, fmt.Errorf("workspace record of %s: copies %q: not 0 to %d", w.Name, f["copies"], catalog.MaxCopies)
		}
		w.Copies = n
	}
	if w.Created, err = tape.ParseTimeField(f["created"]); err != nil {
		return w, fmt.Errorf("workspace record of %s: created: %w", w.Name, err)
	}
	return w, err
}

// writeBatch merges one batch's replay into the catalog.
func (r *replay) writeBatch(tx *catalog.Tx, o RebuildOptions, rb *replayBatch) error {
	if rb.state != nil && rb.state.Fields["state"] == "PURGED" {
		r.stats.Purged++
		if _, err := tx.Batch(rb.id); err == nil {
			if err := tx.PurgeBatch(rb.id); err != nil {
				return err
			}
		}
		var last uint64
		for id := range rb.files {
			last = max(last, id)
		}
		return tx.RaiseIDs(rb.id, last)
	}
	b, err := tx.Batch(rb.id)
	existing := err == nil
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	files := map[uint64]*catalog.File{}
	if existing {
		old, err := tx.Files(b.ID, 0, 0)
		if err != nil {
			return err
		}
		for i := range old {
			files[old[i].ID] = &old[i]
		}
	} else {
		if rb.workspace == "" {
			return fmt.Errorf("no workspace on tape")
		}
		b = catalog.Batch{ID: rb.id, Workspace: rb.workspace}
		if err := batchFromRecord(&b, rb); err != nil {
			return err
		}
		if _, err := tx.Workspace(b.Workspace); errors.Is(err, catalog.ErrNotFound) {
			// Tapes written before workspace records: the workspace comes
			// back with no quota, managed by root.
			if err := tx.PutWorkspace(catalog.Workspace{Name: b.Workspace, Created: b.Created}); err != nil {
				return err
			}
		}
	}
	for id, f := range rb.files {
		if old := files[id]; old != nil {
			for _, c := range f.Copies {
				if !slices.Contains(old.Copies, c) {
					old.Copies = append(old.Copies, c)
				}
			}
			continue
		}
		files[id] = f
	}
	if len(r.dropped) > 0 {
		for _, f := range files {
			f.Copies = slices.DeleteFunc(f.Copies, func(c catalog.Copy) bool {
				return r.dropped[dropKey{f.ID, c.VOLSER, r.gens[c.VOLSER], c.TapeFile, c.Offset}]
			})
		}
	}
	ordered := make([]*catalog.File, 0, len(files))
	for _, f := range files {
		ordered = append(ordered, f)
	}
	sort.Slice(ordered, func(i, j int) bool { return ordered[i].ID < ordered[j].ID })
	// Directories and symbolic links counted apart, as registration does
	// (the tapes hold the entries, not the counts).
	b.Dirs, b.Symlinks, b.Kinds = 0, 0, true
	for _, f := range ordered {
		switch f.Type {
		case catalog.TypeDir:
			b.Dirs++
		case catalog.TypeSymlink:
			b.Symlinks++
		}
	}
	if !existing {
		if b.FirstFile == 0 && len(ordered) > 0 {
			b.FirstFile = ordered[0].ID
		}
		if b.Files == 0 && len(ordered) > 0 {
			b.Files = int64(ordered[len(ordered)-1].ID - b.FirstFile + 1)
		}
	}
	// The tree: parents by path, links take their owner's size and md5.
	dirs := map[string]uint64{}
	names := map[uint64]uint32{} // data owner -> names
	var bytes, onTape int64
	complete := int64(len(ordered)) == b.Files
	for _, f := range ordered {
		if f.Type == catalog.TypeDir {
			dirs[f.Path] = f.ID
		}
	}
	for _, f := range ordered {
		f.Batch = b.ID
		f.Name = path.Base(f.Path)
		f.Parent = 0
		if dir := path.Dir(f.Path); dir != "." {
			p, ok := dirs[dir]
			if !ok {
				return fmt.Errorf("%s: its directory %s is not on tape", f.Path, dir)
			}
			f.Parent = p
		}
		if f.Type != catalog.TypeFile {
			continue
		}
		names[f.DataID()]++
		if f.Link != 0 {
			continue
		}
		bytes += f.Size
		if len(f.Copies) == 0 {
			complete = false
		}
		for _, c := range f.Copies {
			onTape += c.Length
		}
	}
	for _, f := range ordered {
		if f.Type != catalog.TypeFile {
			continue
		}
		f.Nlink = names[f.DataID()]
		if f.Link != 0 {
			owner := files[f.Link]
			if owner == nil {
				return fmt.Errorf("%s: hard link to file %d, which is not on tape", f.Path, f.Link)
			}
			f.Size, f.MD5, f.CRC32C = owner.Size, owner.MD5, owner.CRC32C
		}
	}
	if !existing && b.Bytes == 0 {
		b.Bytes = bytes
	}
	b.OnTape = onTape
	// live is the state the batch has when it is not deleted.
	deleted := existing && b.State == catalog.Deleted
	var live catalog.State
	switch {
	case deleted:
		live = b.Prior
	case existing:
		live = b.State
	}
	if complete && !live.OnTape() {
		live = catalog.CachedSynced // settleCachedStates says whether it still is cached
		b.Synced, b.Reason = rb.lastFile, ""
		if rb.rec != nil && rb.rec.Fields["synced"] != "" {
			// Written by a repack: the batch was on tape long before.
			if t, err := tape.ParseTimeField(rb.rec.Fields["synced"]); err == nil {
				b.Synced = t
			}
		}
		if existing {
			if err := dropMigrateJobs(tx, b.ID); err != nil {
				return err
			}
		}
	}
	if !complete && !existing {
		live = catalog.Failed
		b.Reason = fmt.Sprintf("only part of batch %d was on tape when the catalog was rebuilt: the rest was lost with the catalog", b.ID)
	}
	prior := live
	// Removal and undelete: the newest state record decides.
	if s := rb.state; s != nil {
		deleted = catalog.State(s.Fields["state"]) == catalog.Deleted
		b.Deleted = time.Time{}
		if deleted {
			prior = catalog.State(s.Fields["prior"])
			if complete && !prior.OnTape() {
				prior = catalog.CachedSynced // as CommitAggregate makes it
			}
			if b.Deleted, err = tape.ParseTimeField(s.Fields["deleted"]); err != nil {
				return fmt.Errorf("state record: %w", err)
			}
		}
		removed := parseIDRanges(s.Fields["removed"])
		for _, f := range ordered {
			f.Removed = removed[f.ID]
		}
	}
	if deleted {
		b.State, b.Prior = catalog.Deleted, prior
	} else {
		b.State, b.Prior, b.Deleted = live, "", time.Time{}
	}
	out := make([]catalog.File, len(ordered))
	for i, f := range ordered {
		out[i] = *f
	}
	if err := tx.RestoreBatch(b, out); err != nil {
		return err
	}
	r.stats.Batches++
	r.stats.Files += len(out)
	return nil
}

// batchFromRecord fills b from the batch's newest record (tapes written
// before records: only what the members tell).
func batchFromRecord(b *catalog.Batch, rb *replayBatch) error {
	if rb.rec == nil {
		return nil
	}
	f := rb.rec.Fields
	var err error
	num := func(k string) int64 {
		if f[k] == "" || err != nil {
			return 0
		}
		var v int64
		v, err = strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			err = fmt.Errorf("batch record: %s: %w", k, err)
		}
		return v
	}
	when := func(k string) time.Time {
		if err != nil {
			return time.Time{}
		}
		var t time.Time
		t, err = tape.ParseTimeField(f[k])
		if err != nil {
			err = fmt.Errorf("batch record: %s: %w", k, err)
		}
		return t
	}
	b.Tag, b.Entry, b.Reason = f["tag"], f["entry"], f["reason"]
	b.Owner = uint32(num("owner"))
	b.Files, b.Bytes = num("files"), num("bytes")
	b.FirstFile = uint64(num("firstfile"))
	b.Attempts = int(num("attempts"))
	b.Copies = int(num("copies")) // absent before copies: 0, which is 1
	b.Created, b.Sealed = when("created"), when("sealed")
	return err
}

// parseIDRanges reads what idRanges wrote.
func parseIDRanges(s string) map[uint64]bool {
	out := map[uint64]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 64)
		if err != nil {
			continue
		}
		z := a
		if ok {
			if z, err = strconv.ParseUint(hi, 10, 64); err != nil {
				continue
			}
		}
		for id := a; id <= z; id++ {
			out[id] = true
		}
	}
	return out
}

// dropMigrateJobs removes the migrate jobs of a batch the tapes show whole.
func dropMigrateJobs(tx *catalog.Tx, batch uint64) error {
	jobs, err := tx.Jobs(catalog.JobMigrate)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Batch == batch {
			if err := tx.DeleteJob(j.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

// settleCachedStates makes a live batch on tape CACHED_SYNCED when the
// cache holds all its data, SYNCED otherwise (a restored home has lost its
// cache).
func settleCachedStates(tx *catalog.Tx, c *cache.Cache) error {
	bs, err := tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.CachedSynced, catalog.Synced}})
	if err != nil {
		return err
	}
	for _, b := range bs {
		cached := c != nil
		if cached {
			if err := forEachFile(tx, b, func(f catalog.File) {
				if f.Type == catalog.TypeFile && f.Link == 0 {
					if info, ok := c.Lookup(f.ID); !ok || info.Size != f.Size {
						cached = false
					}
				}
			}); err != nil {
				return err
			}
		}
		want := catalog.Synced
		if cached {
			want = catalog.CachedSynced
		}
		if b.State != want {
			b.State = want
			if err := tx.PutBatch(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// SnapshotOnTape locates a catalog snapshot in the library.
type SnapshotOnTape struct {
	VOLSER   string
	TapeFile int
	tape.Snapshot
}

// errPeeked stops reading a tape file once its first entry told what it
// is.
var errPeeked = errors.New("peeked")

// NewestSnapshot finds the newest catalog snapshot in the library (nil:
// none). It reads only the first header of each tape file.
func NewestSnapshot(ctx context.Context, lib tape.Library) (*SnapshotOnTape, error) {
	var newest *SnapshotOnTape
	for _, c := range lib.Cartridges() {
		if c.TapeFiles <= 1 {
			continue
		}
		d, err := lib.Acquire(ctx, c.VOLSER)
		if err != nil {
			return nil, fmt.Errorf("cartridge %s: %w", c.VOLSER, err)
		}
		for n := 1; n < c.TapeFiles; n++ {
			if err = d.Locate(n, 0); err != nil {
				break
			}
			var found *tape.Snapshot
			err = tape.ReadTapeFile(bufio.NewReader(d), tape.Visitor{
				Member: func(tape.Member, int64, io.Reader) error { return errPeeked },
				Record: func(tape.Record) error { return errPeeked },
				Snapshot: func(s tape.Snapshot, _ io.Reader) error {
					found = &s
					return errPeeked
				},
			})
			if err != nil && !errors.Is(err, errPeeked) {
				err = fmt.Errorf("tape file %d: %w", n, err)
				break
			}
			err = nil
			if found != nil && (newest == nil || found.Taken.After(newest.Taken)) {
				newest = &SnapshotOnTape{VOLSER: c.VOLSER, TapeFile: n, Snapshot: *found}
			}
		}
		lib.Release(d)
		if err != nil {
			return nil, fmt.Errorf("cartridge %s: %w", c.VOLSER, err)
		}
	}
	return newest, nil
}

// ReadSnapshot copies a catalog snapshot from tape to w.
func ReadSnapshot(ctx context.Context, lib tape.Library, s SnapshotOnTape, w io.Writer) error {
	d, err := lib.Acquire(ctx, s.VOLSER)
	if err != nil {
		return err
	}
	defer lib.Release(d)
	if err := d.Locate(s.TapeFile, 0); err != nil {
		return err
	}
	got := false
	err = tape.ReadTapeFile(bufio.NewReaderSize(d, 1<<20), tape.Visitor{
		Snapshot: func(_ tape.Snapshot, data io.Reader) error {
			got = true
			_, err := io.Copy(w, data)
			return err
		},
	})
	if err == nil && !got {
		err = fmt.Errorf("tape file %d of %s holds no catalog snapshot", s.TapeFile, s.VOLSER)
	}
	return err
}
