package archive

// Copies and cartridge pools.
//
// A workspace's policy (catalog.Workspace.Copies, else Config.Copies) says
// how many tape copies each file gets. Each copy of a file is on another
// cartridge and, where the library has pools, in another pool. Migration
// writes the copies a batch needs as parallel streams, one per target pool,
// each on its own drive; the batch is CACHED_SYNCED only once every stream
// has written, flushed and recorded its part (commitAggregate).
//
// Copies that are missing later — the policy was raised, or root marked a
// cartridge lost or disabled — are copy jobs (catalog.JobCopy), one per
// batch, persisted so a restart continues them. A copy job takes the data
// from the cache when it is there and otherwise recalls it first (tape
// order, through the recall scheduler), then writes it with the same
// streams as migration. The batch keeps its state meanwhile: its data is
// on tape already.

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/catalog"
)

// cartState caches the pool and root's state of every cartridge: reads pick
// a copy by it on every recall, so it must not cost a transaction.
// SetCartridge and the pool assignment reload it here; another host's
// change (an EvCartridge event) reloads it when the follower reads it.
type cartState struct {
	mu   sync.Mutex
	recs map[string]catalog.CartridgeRecord // nil: load from the catalog
}

// cartRecords returns the catalog's cartridge records by VOLSER (shared:
// callers must not change the map). It is called inside catalog
// transactions (picking a copy to read), so it reads the catalog only the
// first time, before any such caller runs (Open loads it); every change
// reloads it at once, outside a transaction (reloadCartRecords).
func (e *Engine) cartRecords() map[string]catalog.CartridgeRecord {
	e.carts.mu.Lock()
	defer e.carts.mu.Unlock()
	if e.cat == nil { // an engine that only writes records (rebuild's tests)
		return map[string]catalog.CartridgeRecord{}
	}
	if e.carts.recs == nil {
		m, err := e.readCartRecords()
		if err != nil {
			e.log.Warn().Err(err).Msg("cartridge records not read: every cartridge counts as usable, in no pool")
			return map[string]catalog.CartridgeRecord{}
		}
		e.carts.recs = m
	}
	return e.carts.recs
}

func (e *Engine) readCartRecords() (map[string]catalog.CartridgeRecord, error) {
	var m map[string]catalog.CartridgeRecord
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		m, err = tx.CartridgeMap()
		return err
	})
	return m, err
}

// reloadCartRecords reads the records again after a change. It must run
// outside any transaction; on an error the previous records stay (a
// lazy reload could happen inside a caller's transaction, which on
// PostgreSQL holds a second pool connection).
func (e *Engine) reloadCartRecords() {
	if e.cat == nil {
		return
	}
	m, err := e.readCartRecords()
	if err != nil {
		e.log.Warn().Err(err).Msg("cartridge records not re-read: the previous ones stay in use")
		return
	}
	e.carts.mu.Lock()
	e.carts.recs = m
	e.carts.mu.Unlock()
}

// cartBad reports whether copies on a cartridge do not count: root marked
// it disabled or lost.
func (e *Engine) cartBad(volser string) bool {
	r, ok := e.cartRecords()[volser]
	return ok && !r.Readable()
}

// readCopy is the copy a recall reads: the first on a cartridge that is
// neither disabled nor lost.
func (e *Engine) readCopy(f *catalog.File) (catalog.Copy, bool) {
	for _, c := range f.Copies {
		if !e.cartBad(c.VOLSER) {
			return c, true
		}
	}
	return catalog.Copy{}, false
}

// copyPlan decides where the copies a file is missing go.
type copyPlan struct {
	pools  []string          // every pool with a cartridge, sorted
	poolOf map[string]string // VOLSER -> pool
	bad    func(volser string) bool
}

func (e *Engine) newCopyPlan() copyPlan {
	recs := e.cartRecords()
	p := copyPlan{poolOf: map[string]string{}, bad: e.cartBad}
	seen := map[string]bool{}
	for v, r := range recs {
		p.poolOf[v] = r.Pool
		if r.Pool != "" && !seen[r.Pool] {
			seen[r.Pool] = true
			p.pools = append(p.pools, r.Pool)
		}
	}
	sort.Strings(p.pools)
	return p
}

// targets names the streams of the copies f is missing to have want good
// ones: first the pools holding none of its copies (in name order), then,
// when the pools run out, "*N" streams to any cartridge. A file that needs
// one copy and has none goes to any pool: pools keep copies of one file
// apart, they do not place single copies.
func (p copyPlan) targets(f *catalog.File, want int) []string {
	good := f.GoodCopies(p.bad)
	missing := want - len(good)
	if missing <= 0 {
		return nil
	}
	if len(good) == 0 && want == 1 {
		return []string{"*0"}
	}
	has := map[string]bool{}
	for _, c := range good {
		has[p.poolOf[c.VOLSER]] = true
	}
	var out []string
	for _, pool := range p.pools {
		if len(out) < missing && !has[pool] {
			out = append(out, pool)
		}
	}
	for i := 0; len(out) < missing; i++ {
		out = append(out, fmt.Sprintf("*%d", i))
	}
	return out
}

// copyStream is one copy of a write's members, written one cartridge after
// another in its pool.
type copyStream struct {
	key     string // a pool, or "*N": any cartridge
	members []migrant
	avoid   map[string]bool // cartridges holding a copy of one of its members
}

func (s *copyStream) pool() string {
	if strings.HasPrefix(s.key, "*") {
		return ""
	}
	return s.key
}

// copyTrack counts, per batch, the members of every stream not yet
// committed. mu serialises the commits of the streams (commitAggregate).
type copyTrack struct {
	mu        sync.Mutex
	remaining map[uint64]int
	migrate   bool // batches reaching 0 become CACHED_SYNCED
	// live is the migration's live progress (migrateprogress.go); nil
	// for copy jobs.
	live *flushLive
}

// streams splits the members of each batch into copy streams: a data file
// (and its link names after it) into each stream it needs, the batch's
// directories and symlinks into every stream of the batch, so that each
// copy of a batch holds its whole tree. dirsAlone: a batch with no data
// left to write still writes its tree (migration; not a copy job).
func (p copyPlan) streams(perBatch [][]migrant, dirsAlone bool) ([]*copyStream, *copyTrack) {
	// Two passes: the first counts each stream's members so that its list
	// is allocated once (a migrant is some 350 bytes; a list grown by
	// appends would leave as much garbage again, tens of MB for a batch of
	// 100,000 files).
	counts := map[string]int{}
	p.eachStreamMember(perBatch, dirsAlone, func(key string, m *migrant) { counts[key]++ })
	byKey := map[string]*copyStream{}
	track := &copyTrack{remaining: map[uint64]int{}}
	p.eachStreamMember(perBatch, dirsAlone, func(key string, m *migrant) {
		s := byKey[key]
		if s == nil {
			s = &copyStream{key: key, avoid: map[string]bool{}, members: make([]migrant, 0, counts[key])}
			byKey[key] = s
		}
		s.members = append(s.members, *m)
		for _, c := range m.file.Copies {
			s.avoid[c.VOLSER] = true
		}
		track.remaining[m.member.Batch]++
	})
	out := make([]*copyStream, 0, len(byKey))
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		out = append(out, byKey[k])
	}
	return out, track
}

// eachStreamMember calls add for every member of every stream that
// streams makes, in stream order.
func (p copyPlan) eachStreamMember(perBatch [][]migrant, dirsAlone bool, add func(key string, m *migrant)) {
	for _, ms := range perBatch {
		if len(ms) == 0 {
			continue
		}
		var keys []string
		for _, m := range ms {
			for _, k := range m.targets {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
		if len(keys) == 0 {
			if !dirsAlone {
				continue
			}
			keys = p.targets(&catalog.File{}, ms[0].batch.Want())
		}
		var owner []string
		for i := range ms {
			m := &ms[i]
			switch {
			case len(m.targets) > 0:
				owner = m.targets
				for _, k := range m.targets {
					add(k, m)
				}
			case m.member.Link != 0:
				for _, k := range owner {
					add(k, m)
				}
			default:
				for _, k := range keys {
					add(k, m)
				}
			}
		}
	}
}

// cartClaims keeps the streams of one write on cartridges of their own, so
// that two copies of a file never share a cartridge.
type cartClaims struct {
	mu sync.Mutex
	by map[string]string // VOLSER -> stream key
}

// pick runs choose, which must pick only cartridges ok allows, and claims
// what it picked for stream key.
func (c *cartClaims) pick(key string, choose func(ok func(string) bool) (string, error)) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err := choose(func(v string) bool { k, taken := c.by[v]; return !taken || k == key })
	if err == nil {
		c.by[v] = key
	}
	return v, err
}

// writeStreams writes every stream, each on a drive of its own when the
// library has enough (a stream blocks in Acquire otherwise). The first
// damaged object found wins over other errors: it decides what happens to
// the batch.
func (e *Engine) writeStreams(workspace string, streams []*copyStream, track *copyTrack) error {
	claims := &cartClaims{by: map[string]string{}}
	if len(streams) == 1 {
		return e.writeMembers(workspace, streams[0], claims, track)
	}
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.writeMembers(workspace, s, claims, track)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		var d *DamageError
		if errors.As(err, &d) {
			return err
		}
	}
	return errors.Join(errs...)
}

func anyCartridge(string) bool { return true }

func copiesText(n int) string {
	if n == 1 {
		return "1 copy"
	}
	return fmt.Sprintf("%d copies", n)
}

// copyLoop runs copy jobs, one batch at a time, oldest first.
func (e *Engine) copyLoop() {
	t := time.NewTicker(min(max(e.cfg.FlushAge/4, 50*time.Millisecond), 5*time.Second))
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.copyWake:
		case <-t.C:
		}
		for e.CopyOnce() && e.ctx.Err() == nil {
		}
	}
}

func (e *Engine) wakeCopies() {
	select {
	case e.copyWake <- struct{}{}:
	default:
	}
}

// CopyOnce runs the oldest copy job that is due, and reports whether there
// was one.
func (e *Engine) CopyOnce() bool {
	e.copyMu.Lock()
	defer e.copyMu.Unlock()
	now := e.now()
	var job catalog.Job
	var found bool
	if err := e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobCopy)
		var hv hostView // several hosts: skip jobs another live host holds (hosts.go)
		if err == nil && e.shared() {
			hv, err = e.readHosts(tx)
		}
		for _, j := range jobs {
			if !j.NotBefore.After(now) && e.claimable(hv, j, catalog.Batch{}) {
				job, found = j, true
				break
			}
		}
		return err
	}); err != nil {
		e.log.Error().Err(err).Msg("copies: cannot read the job queue")
		return false
	}
	if !found || !e.holding() {
		return false
	}
	if claimed := e.claimJobs([]catalog.Job{job}); len(claimed) == 1 {
		job = claimed[0]
		defer e.endClaims(claimed)
	} else {
		return false // another host claimed it first
	}
	err := e.makeCopies(job)
	if err == nil || e.ctx.Err() != nil || e.fenced(err, []catalog.Job{job}) {
		return true
	}
	job.Attempts++
	delay := min(e.cfg.Backoff<<min(job.Attempts-1, 10), time.Hour)
	job.NotBefore = now.Add(delay)
	e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		if _, err := tx.Job(job.ID); err != nil {
			return nil // done or dropped meanwhile
		}
		if err := tx.PutJob(job); err != nil {
			return err
		}
		b, _ := tx.Batch(job.Batch)
		return pl.record(tx, catalog.Event{Time: now, Workspace: b.Workspace, Batch: job.Batch, Kind: EvRetry,
			Message: fmt.Sprintf("writing the missing copies of batch %d failed (attempt %d), retry in %s: %v", job.Batch, job.Attempts, delay, err)})
	}), "the retry of a copy job (it runs again at once)", func(l *zerolog.Event) *zerolog.Event { return l.Uint64("batch", job.Batch) })
	return true
}

// copyChunk bounds the bytes one round of a copy job recalls into the
// cache before writing them: a share of the cache, so a batch larger than
// the cache is copied in rounds.
func (e *Engine) copyChunk() int64 {
	if lim := e.cache.Stats().Limit; lim > 0 {
		return max(lim/4, 1<<20)
	}
	return 1 << 40
}

// makeCopies writes the copies one batch is missing.
func (e *Engine) makeCopies(j catalog.Job) error {
	for round := 0; ; round++ {
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		plan := e.newCopyPlan()
		var b catalog.Batch
		var ms []migrant
		var done, skip bool
		var lost []string
		err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			ms, lost, done, skip = nil, nil, false, false
			var err error
			b, err = tx.Batch(j.Batch)
			if errors.Is(err, catalog.ErrNotFound) {
				skip = true // purged
				return tx.DeleteJob(j.ID)
			}
			if err != nil {
				return err
			}
			if !b.State.OnTape() && !(b.State == catalog.Deleted && b.Prior.OnTape()) {
				// Not on tape yet: migration writes every copy it needs.
				skip = true
				return tx.DeleteJob(j.ID)
			}
			ws, err := tx.Workspace(b.Workspace)
			if err != nil {
				return err
			}
			if want := ws.CopiesOr(e.cfg.Copies); b.Copies < want {
				b.Copies = want
				if err := tx.PutBatch(b); err != nil {
					return err
				}
			}
			all, err := e.migrants(tx, b, plan)
			if err != nil {
				return err
			}
			skipped := false
			for _, m := range all {
				// A file with no good copy left comes back only from the
				// cache; without it, it is lost, and says so.
				if len(m.targets) > 0 {
					skipped = false
					if len(m.file.GoodCopies(plan.bad)) == 0 {
						if _, ok := e.cache.Lookup(m.file.ID); !ok {
							lost = append(lost, m.file.Path)
							skipped = true
							continue
						}
					}
				} else if m.member.Link != 0 && skipped {
					continue // a name of the file passed over
				}
				ms = append(ms, m)
			}
			if hasData(ms) {
				return nil
			}
			done = true
			if err := tx.DeleteJob(j.ID); err != nil {
				return err
			}
			msg := fmt.Sprintf("batch %d has its %s", b.ID, copiesText(b.Want()))
			kind := EvCopies
			if len(lost) > 0 {
				kind = EvFailed
				msg = fmt.Sprintf("batch %d: %d files have no readable copy left on tape and are not in the cache, so their copies cannot be re-created (first: %s); put them again from their source, or mark the cartridge holding them usable again if it was found", b.ID, len(lost), lost[0])
			}
			return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, Kind: kind, Message: msg})
		})
		if err != nil || done || skip {
			return err
		}
		chunk := e.chunkOf(ms)
		log := e.log.With().Uint64("batch", b.ID).Str("workspace", b.Workspace).Int("round", round).Logger()
		unpin, err := e.stageForCopy(chunk)
		if err != nil {
			unpin()
			return err
		}
		log.Info().Int("members", len(chunk)).Msg("writing missing copies")
		streams, track := plan.streams([][]migrant{chunk}, false)
		err = e.writeStreams(b.Workspace, streams, track)
		unpin()
		if err != nil {
			return err
		}
	}
}

func hasData(ms []migrant) bool {
	for _, m := range ms {
		if len(m.targets) > 0 {
			return true
		}
	}
	return false
}

// chunkOf takes the members of one round of a copy job: data up to
// copyChunk bytes (at least one file), with its link names, and every
// directory and symlink (cheap; each round's tape files then hold the tree
// above their files).
func (e *Engine) chunkOf(ms []migrant) []migrant {
	limit := e.copyChunk()
	var out []migrant
	var bytes int64
	full, included := false, false
	for _, m := range ms {
		switch {
		case len(m.targets) > 0:
			full = full || bytes > 0 && bytes+m.file.Size > limit
			if included = !full; included {
				bytes += m.file.Size
				out = append(out, m)
			}
		case m.member.Link != 0:
			if included { // a name of the data file just taken
				out = append(out, m)
			}
		default:
			out = append(out, m)
		}
	}
	return out
}

// stageForCopy makes sure the data of members is in the cache, recalling
// what is not (the scheduler serves it in tape order), and pins it until
// unpin so the write finds it.
func (e *Engine) stageForCopy(members []migrant) (unpin func(), err error) {
	var pinned []uint64
	unpin = func() {
		for _, id := range pinned {
			e.cache.Pin(id, false)
		}
	}
	var files []catalog.File
	for _, m := range members {
		if len(m.targets) == 0 {
			continue
		}
		e.cache.Pin(m.file.ID, true)
		pinned = append(pinned, m.file.ID)
		if info, ok := e.cache.Lookup(m.file.ID); !ok || info.Partial {
			files = append(files, m.file)
		}
	}
	if len(files) == 0 {
		return unpin, nil
	}
	reqs, err := e.requestRecalls(files)
	if err != nil {
		return unpin, err
	}
	var errs []error
	for _, r := range reqs {
		select {
		case <-r.done:
		case <-e.ctx.Done():
			return unpin, e.ctx.Err()
		}
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.file.Path, r.err))
		}
	}
	for _, f := range files {
		e.cache.Pin(f.ID, true) // now that the object exists
	}
	if len(errs) > 0 {
		return unpin, fmt.Errorf("recall for a second copy: %w", errors.Join(errs...))
	}
	return unpin, nil
}

// SetCopies sets a workspace's copies policy (0: the daemon's default) and
// queues copy jobs for its batches on tape that have fewer.
func (e *Engine) SetCopies(workspace string, n int) (catalog.Workspace, error) {
	if n < 0 || n > catalog.MaxCopies {
		return catalog.Workspace{}, fmt.Errorf("%w: copies %d: use 1 to %d (0: the daemon's default)", ErrInvalid, n, catalog.MaxCopies)
	}
	var w catalog.Workspace
	queued := 0
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		queued = 0
		var err error
		if w, err = tx.Workspace(workspace); err != nil {
			return err
		}
		w.Copies = n
		if err := tx.PutWorkspace(w); err != nil {
			return err
		}
		want := w.CopiesOr(e.cfg.Copies)
		bs, err := tx.Batches(catalog.ListOptions{Workspace: workspace})
		if err != nil {
			return err
		}
		jobs, err := copyJobs(tx)
		if err != nil {
			return err
		}
		for _, b := range bs {
			onTape := b.State.OnTape() || b.State == catalog.Deleted && b.Prior.OnTape()
			if !onTape || b.Want() >= want || jobs[b.ID] {
				continue
			}
			if _, err := tx.AddJob(catalog.Job{Kind: catalog.JobCopy, Batch: b.ID, Created: e.now()}); err != nil {
				return err
			}
			queued++
		}
		msg := fmt.Sprintf("copies of workspace %s set to %d", workspace, want)
		if n == 0 {
			msg = fmt.Sprintf("copies of workspace %s set to the default (%d)", workspace, want)
		}
		if queued > 0 {
			msg += fmt.Sprintf(": the missing copies of %d batches are being written", queued)
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: workspace, Kind: EvWorkspace, Message: msg})
	})
	if err != nil {
		return w, err
	}
	e.log.Info().Str("workspace", workspace).Int("copies", n).Int("batches", queued).Msg("copies policy set")
	e.wakeCopies()
	return w, nil
}

func copyJobs(tx *catalog.Tx) (map[uint64]bool, error) {
	jobs, err := tx.Jobs(catalog.JobCopy)
	out := map[uint64]bool{}
	for _, j := range jobs {
		out[j.Batch] = true
	}
	return out, err
}

// CartridgeChange is what root changes of a cartridge: nil leaves a field.
type CartridgeChange struct {
	State *string // read-only, disabled, lost; "" (or the library's own state) clears root's
	Pool  *string
}

// SetCartridge changes a cartridge's pool or root's state. Marking it lost
// or disabled queues copy jobs for every batch with a copy on it, in the
// same transaction, so a crash cannot forget them.
func (e *Engine) SetCartridge(volser string, ch CartridgeChange) (catalog.CartridgeRecord, int, error) {
	if _, err := e.lib.Cartridge(volser); err != nil {
		return catalog.CartridgeRecord{}, 0, fmt.Errorf("%w: cartridge %s is not in the library", ErrNotFound, volser)
	}
	if ch.State != nil {
		switch *ch.State {
		case catalog.CartridgeScratch, catalog.CartridgeFilling, catalog.CartridgeFull, "none", "ok":
			*ch.State = "" // what the library computes: root's override goes
		}
		if !catalog.AdminState(*ch.State) {
			return catalog.CartridgeRecord{}, 0, fmt.Errorf("%w: state %q: use read-only, disabled, lost, or ok (the library's own state)", ErrInvalid, *ch.State)
		}
	}
	var rec catalog.CartridgeRecord
	queued := 0
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		queued = 0
		old, err := tx.Cartridge(volser)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		rec = old
		var what []string
		if ch.Pool != nil && *ch.Pool != old.Pool {
			if rec, err = tx.SetCartridgePool(volser, *ch.Pool); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			what = append(what, fmt.Sprintf("moved to pool %q", *ch.Pool))
		}
		if ch.State != nil && *ch.State != old.Admin {
			if rec, err = tx.SetCartridgeAdmin(volser, *ch.State); err != nil {
				return fmt.Errorf("%w: %w", ErrInvalid, err)
			}
			if *ch.State == "" {
				what = append(what, "back in use")
			} else {
				what = append(what, "marked "+*ch.State)
			}
			if !rec.Readable() && old.Readable() {
				if queued, err = e.queueCopiesOf(tx, volser); err != nil {
					return err
				}
			}
		}
		if len(what) == 0 {
			return nil
		}
		msg := fmt.Sprintf("cartridge %s %s by root", volser, strings.Join(what, ", "))
		if queued > 0 {
			msg += fmt.Sprintf(": the copies it held are being re-created for %d batches", queued)
		}
		return pl.record(tx, catalog.Event{Time: e.now(), VOLSER: volser, Kind: EvCartridge, Message: msg})
	})
	e.reloadCartRecords()
	if err != nil {
		return rec, 0, err
	}
	e.log.Info().Str("volser", volser).Str("pool", rec.Pool).Str("state", rec.Status()).Int("batches", queued).Msg("cartridge changed")
	e.wakeCopies()
	return rec, queued, nil
}

// queueCopiesOf adds a copy job for every batch with a copy on volser.
func (e *Engine) queueCopiesOf(tx *catalog.Tx, volser string) (int, error) {
	jobs, err := copyJobs(tx)
	if err != nil {
		return 0, err
	}
	bs, err := tx.Batches(catalog.ListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, b := range bs {
		if jobs[b.ID] {
			continue
		}
		holds := false
		err := forEachFile(tx, b, func(f catalog.File) {
			for _, c := range f.Copies {
				holds = holds || c.VOLSER == volser
			}
		})
		if err != nil {
			return n, err
		}
		if !holds {
			continue
		}
		if _, err := tx.AddJob(catalog.Job{Kind: catalog.JobCopy, Batch: b.ID, Created: e.now()}); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// CopiesMissing counts, per workspace, the batches still waiting for
// copies their policy asks for (copy jobs not done).
func (e *Engine) CopiesMissing() (map[string]int, error) {
	out := map[string]int{}
	err := e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobCopy)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if b, err := tx.Batch(j.Batch); err == nil {
				out[b.Workspace]++
			}
		}
		return nil
	})
	return out, err
}

// AssignPools puts every cartridge that is in no pool into one of pools,
// in VOLSER order, the first share into the first pool and so on: a new
// home's library is split this way.
func (e *Engine) AssignPools(pools ...string) error {
	if len(pools) == 0 {
		return nil
	}
	carts := e.lib.Cartridges()
	sort.Slice(carts, func(i, j int) bool { return carts[i].VOLSER < carts[j].VOLSER })
	err := e.cat.Update(func(tx *catalog.Tx) error {
		for i, c := range carts {
			old, err := tx.Cartridge(c.VOLSER)
			if err == nil && old.Pool != "" {
				continue
			}
			if _, err := tx.SetCartridgePool(c.VOLSER, pools[i*len(pools)/len(carts)]); err != nil {
				return err
			}
		}
		return nil
	})
	e.reloadCartRecords()
	return err
}
