package archive

import (
	"bufio"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
	"github.com/tapefs/tapefs/tape"
)

// migrateLoop flushes workspaces whose pending batches pass a threshold,
// and retries failed migrations with backoff.
func (e *Engine) migrateLoop() {
	tick := min(max(e.cfg.FlushAge/4, 50*time.Millisecond), 5*time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.migrateWake:
		case <-t.C:
		}
		for e.migrateOnce(false) && e.ctx.Err() == nil {
		}
	}
}

// pendingWorkspace is what waits for migration in one workspace.
type pendingWorkspace struct {
	jobs   []catalog.Job
	bytes  int64
	files  int64
	oldest time.Time
}

// migrateOnce flushes at most one workspace. force ignores the thresholds
// (tests and shutdown-free benchmarks). It reports whether it did work.
func (e *Engine) migrateOnce(force bool) bool {
	// One flush at a time: two flushes of the same queue would write the
	// same members twice.
	e.migrateMu.Lock()
	defer e.migrateMu.Unlock()
	if !e.holding() {
		return false // heartbeat not renewed: no new work (hosts.go)
	}
	now := e.now()
	pending := map[string]*pendingWorkspace{}
	err := e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobMigrate)
		if err != nil {
			return err
		}
		var hv hostView
		if e.shared() {
			if hv, err = e.readHosts(tx); err != nil {
				return err
			}
		}
		for _, j := range jobs {
			if j.NotBefore.After(now) {
				continue
			}
			b, err := tx.Batch(j.Batch)
			if err != nil || !e.claimable(hv, j, b) {
				continue
			}
			p := pending[b.Workspace]
			if p == nil {
				p = &pendingWorkspace{oldest: b.Sealed}
				pending[b.Workspace] = p
			}
			p.jobs = append(p.jobs, j)
			p.bytes += b.Bytes*int64(b.Want()) - b.OnTape
			p.files += b.Files
			if b.Sealed.Before(p.oldest) {
				p.oldest = b.Sealed
			}
		}
		return nil
	})
	if err != nil {
		e.log.Error().Err(err).Msg("migration: cannot read the job queue")
		return false
	}
	names := make([]string, 0, len(pending))
	for ws := range pending {
		names = append(names, ws)
	}
	sort.Strings(names)
	for _, ws := range names {
		p := pending[ws]
		due := force || p.bytes >= e.cfg.FlushBytes || p.files >= int64(e.cfg.FlushFiles) || now.Sub(p.oldest) >= e.cfg.FlushAge
		if !due {
			continue
		}
		jobs := e.claimJobs(p.jobs) // several hosts: only what this one claims
		if len(jobs) == 0 {
			continue
		}
		e.flush(ws, jobs)
		e.returnMemory(int(p.files))
		return true
	}
	return false
}

// Flush migrates every pending batch now, whatever the thresholds, and
// returns when the queue holds nothing that is due (tests, benchmarks).
func (e *Engine) Flush() {
	for e.migrateOnce(true) && e.ctx.Err() == nil {
	}
}

// migrant is one member to write, with the batch it belongs to.
type migrant struct {
	member tape.Member
	file   catalog.File
	batch  *catalog.Batch // for the batch's record on tape
	// targets are the copy streams a data file still needs (copies.go);
	// empty for directories, symlinks and link names, which go with
	// their batch's or their data owner's streams.
	targets []string
}

// flush writes the batches of one workspace's migrate jobs to tape.
func (e *Engine) flush(workspace string, jobs []catalog.Job) {
	defer e.endClaims(jobs) // several hosts (hosts.go)
	if jobs = e.withoutDamaged(jobs); len(jobs) == 0 {
		return
	}
	var (
		perBatch [][]migrant
		batches  []catalog.Batch
	)
	plan := e.newCopyPlan()
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		perBatch, batches = perBatch[:0], batches[:0]
		ws, err := tx.Workspace(workspace)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			b, err := tx.Batch(j.Batch)
			if err != nil {
				return err
			}
			if b.Sealing != "" {
				continue // objects not adopted yet
			}
			// The policy when the batch goes to tape is what it gets; a
			// later raise makes copy jobs (copies.go).
			b.Copies = max(b.Copies, ws.CopiesOr(e.cfg.Copies))
			ms, err := e.migrants(tx, b, plan)
			if err != nil {
				return err
			}
			perBatch = append(perBatch, ms)
			state := b.State
			if state != catalog.Deleted {
				b.State = catalog.Syncing
			}
			if err := tx.PutBatch(b); err != nil {
				return err
			}
			batches = append(batches, b)
			if state != catalog.Syncing && state != catalog.Deleted {
				if err := pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, Kind: EvState, State: catalog.Syncing,
					Message: fmt.Sprintf("batch %d is being written to tape (%s)", b.ID, human.Size(b.Bytes-b.OnTape))}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		e.log.Error().Err(err).Str("workspace", workspace).Msg("migration: cannot start")
		return
	}
	if len(batches) == 0 {
		return
	}
	streams, track := plan.streams(perBatch, true)
	perBatch = nil // the streams hold the members now: one copy, not two
	track.migrate = true
	track.live = e.beginFlush(workspace, batches, streams)
	defer e.endFlush(track.live)
	if err := e.writeStreams(workspace, streams, track); err != nil {
		var damaged *DamageError
		if errors.As(err, &damaged) {
			e.migrationDamaged(batches, damaged)
			return
		}
		if e.fenced(err, jobs) {
			return // another host took the work over (hosts.go)
		}
		e.migrationFailed(batches, err)
	}
}

// migrants lists what a batch still has to write: every regular file that
// owns data and has fewer good tape copies than the batch wants (with the
// streams its missing copies go to), each followed by its other names (hard
// links, which tar can only restore from the same tape file), and the
// batch's directories and symlinks (cheap, and needed to rebuild the tree
// from any one copy alone). The names of a file already on tape went with it.
func (e *Engine) migrants(tx *catalog.Tx, b catalog.Batch, plan copyPlan) ([]migrant, error) {
	// Sized for the whole batch at once: a migrant is some 350 bytes, and
	// growing by appends would leave as much garbage again behind.
	out := make([]migrant, 0, max(b.Files, 0))
	links := map[uint64][]catalog.File{} // data owner -> its other names
	bp := &b
	var after uint64
	for {
		files, err := tx.Files(b.ID, after, 10_000)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if f.Type == catalog.TypeFile && f.Link != 0 {
				links[f.Link] = append(links[f.Link], f)
				continue
			}
			var targets []string
			if f.Type == catalog.TypeFile {
				if targets = plan.targets(&f, b.Want()); len(targets) == 0 {
					continue
				}
			}
			out = append(out, migrant{member: memberOf(b, f), file: f, batch: bp, targets: targets})
		}
		if len(files) < 10_000 {
			break
		}
		after = files[len(files)-1].ID
	}
	if len(links) == 0 {
		return out, nil
	}
	withLinks := make([]migrant, 0, len(out))
	for _, m := range out {
		withLinks = append(withLinks, m)
		for _, l := range links[m.file.ID] {
			lm := memberOf(b, l)
			lm.Type, lm.Size, lm.Target, lm.Link = tape.MemberLink, 0, m.file.Path, m.file.ID
			withLinks = append(withLinks, migrant{member: lm, file: l, batch: bp})
		}
	}
	return withLinks, nil
}

func memberOf(b catalog.Batch, f catalog.File) tape.Member {
	m := tape.Member{
		FileID: f.ID, Workspace: b.Workspace, Batch: b.ID, Path: f.Path,
		MD5: f.MD5, CRC32C: f.CRC32C, Mode: f.Mode, UID: int(f.UID), GID: int(f.GID), Mtime: f.Mtime,
		Size: f.Size, Target: f.Target,
	}
	switch f.Type {
	case catalog.TypeDir:
		m.Type, m.Size = tape.MemberDir, 0
	case catalog.TypeSymlink:
		m.Type, m.Size = tape.MemberSymlink, 0
	default:
		m.Type = tape.MemberFile
	}
	return m
}

// errNoCartridge: no cartridge has room for the next member.
var errNoCartridge = errors.New("no cartridge with room: add cartridges to the library")

// pickCartridge chooses where to append need bytes in pool ("": any): a
// cartridge already in a drive first (no mount), then one being filled,
// then a scratch one; never one root made read-only, disabled or lost, nor
// one ok refuses (another copy of the members is there).
func (e *Engine) pickCartridge(need int64, pool string, ok func(volser string) bool) (string, error) {
	recs := e.cartRecords()
	best, bestRank := "", 99
	for _, c := range e.lib.Cartridges() {
		r := recs[c.VOLSER]
		if !ok(c.VOLSER) || e.isRepacking(c.VOLSER) || !r.Writable() || (pool != "" && r.Pool != pool) ||
			(c.State != tape.CartridgeScratch && c.State != tape.CartridgeFilling) || c.Capacity-c.Used < need {
			continue
		}
		rank := 2
		if c.State == tape.CartridgeFilling {
			rank = 1
		}
		if c.Drive >= 0 {
			rank = 0
		}
		if e.leasedElsewhere(c.VOLSER) {
			rank = 3 // another host writes it: only if nothing else will do (hosts.go)
		}
		if rank < bestRank {
			best, bestRank = c.VOLSER, rank
		}
	}
	if best == "" {
		if pool != "" {
			return "", fmt.Errorf("%w in pool %s (need %d bytes; tapefs library set VOLSER --pool %s adds one)", errNoCartridge, pool, need, pool)
		}
		return "", fmt.Errorf("%w (need %d bytes)", errNoCartridge, need)
	}
	return best, nil
}

// writeMembers writes one copy stream's members as aggregates, committing
// each tape file to the catalog as soon as its filemark is down. Its
// cartridges are claimed in claims, so no other stream of the same write
// puts another copy of a member on them.
func (e *Engine) writeMembers(workspace string, s *copyStream, claims *cartClaims, track *copyTrack) error {
	members := s.members
	avoid := map[string]bool{}
	for i := 0; i < len(members); {
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		need := tape.MemberSize(members[i].member) + tape.TrailerSize + recordSlack
		volser, err := claims.pick(s.key, func(ok func(string) bool) (string, error) {
			return e.pickCartridge(need, s.pool(), func(v string) bool { return !avoid[v] && !s.avoid[v] && ok(v) })
		})
		if err != nil {
			return err
		}
		n, err := e.writeOnCartridge(volser, workspace, members[i:], track, track.live.stream(s.key))
		i += n
		if errors.Is(err, tape.ErrEndOfTape) {
			avoid[volser] = true
			e.log.Warn().Str("workspace", workspace).Str("volser", volser).Str("pool", s.pool()).Msg("end of tape: the aggregate continues on another cartridge")
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			avoid[volser] = true
		}
	}
	return nil
}

// writeOnCartridge appends aggregates to one cartridge until the members
// run out or the cartridge is full. It returns how many members were
// committed.
func (e *Engine) writeOnCartridge(volser, workspace string, members []migrant, track *copyTrack, live *streamLive) (int, error) {
	live.onDrive(-1, volser)
	d, err := e.lib.Acquire(e.ctx, volser)
	if err != nil {
		return 0, err
	}
	defer e.lib.Release(d)
	live.onDrive(d.Index(), volser)
	done := 0
	buf := make([]byte, smallMember)
	for done < len(members) {
		tapeFile, err := d.SeekEOD()
		if err != nil {
			return done, err
		}
		pool := e.cartRecords()[volser].Pool
		room := d.Remaining() - closedRecordSize(pool)
		live.newTapeFile()
		bw := bufio.NewWriterSize(live.writer(d), 1<<20)
		aw := tape.NewAggregateWriter(bw)
		if err := e.addWorkspaceRecord(aw, workspace); err != nil {
			return done, err
		}
		head := aw.Written()
		copies := map[uint64]catalog.Copy{}
		// The members in this tape file are members[done:done+n]: a
		// count, not a copy (a migrant is some 400 bytes, and a tape file
		// of small files holds 100,000 of them).
		n := 0
		recorded := map[uint64]bool{} // batches whose record is in this tape file
		for done+n < len(members) {
			group := linkGroup(members[done+n:])
			var size int64
			for _, m := range group {
				size += tape.MemberSize(m.member)
			}
			b := group[0].batch
			var rec tape.Record
			if !recorded[b.ID] {
				rec = batchRecord(*b)
				size += tape.RecordSize(rec)
			}
			if aw.Written()+size+tape.TrailerSize > room {
				break
			}
			if aw.Written() > head && aw.Written()+size > e.cfg.AggregateTarget {
				break
			}
			if !recorded[b.ID] {
				if err := aw.AddRecord(rec); err != nil {
					return done, err
				}
				recorded[b.ID] = true
			}
			for _, m := range group {
				live.member(m.member, aw.Written())
				off, err := e.addMember(aw, m, buf)
				if err != nil {
					return done, err
				}
				if m.member.Type == tape.MemberFile {
					copies[m.file.ID] = catalog.Copy{VOLSER: volser, TapeFile: tapeFile, Offset: off, Length: m.member.Size}
				}
				n++
			}
		}
		if n == 0 {
			return done, nil // the cartridge has no room for the next member
		}
		// The time the tape file is closed is also the Synced time of the
		// batches it completes: the tape says when, as the catalog does.
		closed := e.now()
		if err := aw.AddRecord(closedRecord(closed, pool)); err != nil {
			return done, err
		}
		if err := aw.Close(); err != nil {
			return done, err
		}
		if err := bw.Flush(); err != nil {
			return done, err
		}
		if err := d.WriteFilemark(); err != nil {
			return done, err
		}
		if err := e.commitAggregate(volser, tapeFile, aw.Written(), members[done:done+n], copies, track, closed, live); err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// smallMember is the size up to which a member's data is read into memory,
// hashed and written from there; larger members go to tape inside the
// kernel while they are hashed (copyChecked).
const smallMember = 1 << 20

// addMember streams one member's bytes from its cache object and checks
// them against the md5 recorded at sealing: a damaged object is a
// *DamageError, and the aggregate holding it must not be committed.
func (e *Engine) addMember(aw *tape.AggregateWriter, m migrant, buf []byte) (int64, error) {
	if m.member.Type != tape.MemberFile {
		return aw.Add(m.member, nil)
	}
	h, err := e.openMigrant(m) // this host's cache, or an adopted one (hosts.go)
	if err != nil {
		return 0, fmt.Errorf("%s (file %d): cache object: %w", m.file.Path, m.file.ID, err)
	}
	defer h.Close()
	// The handle's file is at offset 0: handed over whole, its bytes can
	// go to tape inside the kernel.
	off, sum, err := copyChecked(aw, m.member, h.File(), buf)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", m.file.Path, err)
	}
	if m.file.MD5 != "" && sum != m.file.MD5 {
		ident, _ := h.File().Stat()
		return 0, &DamageError{FileID: m.file.ID, Batch: m.member.Batch, Workspace: m.member.Workspace, Path: m.file.Path,
			Want: m.file.MD5, Got: sum, ident: ident}
	}
	return off, nil
}

// commitAggregate records, in one transaction, where every member of a
// tape file now is, and which batches are wholly on tape: every copy they
// need written and recorded. The streams of one write commit one at a
// time (track.mu), and a stream's members count as done only once its
// transaction has committed, so a batch is never marked on tape while
// another stream's copy of it is still unrecorded.
func (e *Engine) commitAggregate(volser string, tapeFile int, size int64, in []migrant, copies map[uint64]catalog.Copy, track *copyTrack, now time.Time, live *streamLive) error {
	track.mu.Lock()
	defer track.mu.Unlock()
	onTape := map[uint64]int64{}
	done := map[uint64]int{}
	for _, m := range in {
		onTape[m.member.Batch] += copies[m.file.ID].Length
		done[m.member.Batch]++
	}
	var synced []uint64
	for b := range onTape {
		if track.migrate && track.remaining[b] == done[b] {
			synced = append(synced, b)
		}
	}
	sort.Slice(synced, func(i, j int) bool { return synced[i] < synced[j] })
	info, err := e.lib.Cartridge(volser)
	if err != nil {
		return err
	}
	var wsName string
	if len(in) > 0 {
		wsName = in[0].member.Workspace
	}
	fence := e.fenceFor(volser, onTape) // several hosts: what this commit must still hold (hosts.go)
	e.testPause(hookBeforeCommit, e.log.With().Str("volser", volser).Int("tape_file", tapeFile).Logger())
	var syncedBatches []catalog.Batch
	var pl pendingLog
	err = e.cat.Update(func(tx *catalog.Tx) error {
		pl = pl[:0]
		commit := catalog.AggregateCommit{
			Copies: copies, OnTape: onTape, Synced: synced, Time: now, Fence: fence,
			Cartridge: cartridgeRecord(info),
		}
		if err := tx.CommitAggregate(commit); err != nil {
			return err
		}
		if err := (&pl).record(tx, catalog.Event{Time: now, Workspace: wsName, VOLSER: volser, Kind: EvAggregate,
			Message: fmt.Sprintf("tape file %d written on %s: %d members, %s", tapeFile, volser, len(in), human.Size(size))}); err != nil {
			return err
		}
		syncedBatches = syncedBatches[:0]
		for _, id := range synced {
			b, err := tx.Batch(id)
			if err != nil {
				return err
			}
			syncedBatches = append(syncedBatches, b)
			if err := (&pl).record(tx, catalog.Event{Time: now, Workspace: b.Workspace, Batch: id, VOLSER: volser, Kind: EvState, State: catalog.CachedSynced,
				Message: fmt.Sprintf("batch %d is on tape (%s, %s)", id, copiesText(b.Want()), human.Size(b.OnTape))}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record tape file %d on %s: %w", tapeFile, volser, err)
	}
	for b, n := range done {
		track.remaining[b] -= n
	}
	live.committed(in)
	e.stats.addMigrated(size, len(in))
	// The objects become evictable before anyone waiting for the batch
	// hears that it is on tape.
	for _, b := range syncedBatches {
		e.markSynced(b)
	}
	e.publishCommitted(pl)
	if len(syncedBatches) > 0 {
		if _, err := e.cache.Trim(); err != nil {
			e.log.Warn().Err(err).Msg("cache eviction after migration failed")
		}
	}
	return nil
}

// markSynced lets the cache evict a batch's objects: they are on tape.
func (e *Engine) markSynced(b catalog.Batch) {
	_ = e.eachDataFile(b, func(f catalog.File) error {
		e.cache.SetSynced(f.ID, true)
		return nil
	})
}

// eachDataFile calls fn for every regular file of a batch that owns data.
func (e *Engine) eachDataFile(b catalog.Batch, fn func(catalog.File) error) error {
	return e.eachDataPage(b.ID, func(files []catalog.File) error {
		for _, f := range files {
			if err := fn(f); err != nil {
				return err
			}
		}
		return nil
	})
}

// filePage is how many file records one read transaction of a batch walk
// holds: the walk's memory stays flat however large the batch.
const filePage = 10_000

// eachDataPage calls fn, outside any transaction, with the regular files
// of a batch that own data, a page at a time in ID order.
func (e *Engine) eachDataPage(batch uint64, fn func([]catalog.File) error) error {
	var after uint64
	for {
		var files []catalog.File
		if err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			files, err = tx.Files(batch, after, filePage)
			return err
		}); err != nil {
			return err
		}
		data := files[:0:0]
		for _, f := range files {
			if f.Type == catalog.TypeFile && f.Link == 0 {
				data = append(data, f)
			}
		}
		if len(data) > 0 {
			if err := fn(data); err != nil {
				return err
			}
		}
		if len(files) < filePage {
			return nil
		}
		after = files[len(files)-1].ID
	}
}

// migrationFailed puts batches back in the queue with backoff, or FAILED
// after the last attempt. Their data stays in the cache either way, and a
// FAILED batch keeps being retried, only less often.
func (e *Engine) migrationFailed(batches []catalog.Batch, cause error) {
	if errors.Is(cause, e.ctx.Err()) && e.ctx.Err() != nil {
		// Shutdown: the batch goes back to CACHED and is rewritten at restart.
		e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			for _, b := range batches {
				cur, err := tx.Batch(b.ID)
				if err == nil && cur.State == catalog.Syncing {
					cur.State = catalog.Cached
					if err := tx.PutBatch(cur); err != nil {
						return err
					}
				}
			}
			return nil
		}), "the batches of an interrupted migration as CACHED (recovery at the next start does it)", nil)
		return
	}
	now := e.now()
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		jobs, err := tx.Jobs(catalog.JobMigrate)
		if err != nil {
			return err
		}
		for _, b := range batches {
			cur, err := tx.Batch(b.ID)
			if err != nil {
				continue
			}
			if cur.State.OnTape() {
				continue
			}
			cur.Attempts++
			delay := e.cfg.Backoff << min(cur.Attempts-1, 10)
			delay = min(delay, time.Hour)
			kind, msg := EvRetry, fmt.Sprintf("writing batch %d to tape failed (attempt %d of %d), retry in %s: %v", b.ID, cur.Attempts, e.cfg.MaxAttempts, delay, cause)
			next := catalog.Cached
			if cur.Attempts >= e.cfg.MaxAttempts {
				next, kind = catalog.Failed, EvFailed
				msg = fmt.Sprintf("batch %d FAILED to reach tape after %d attempts: %v; its data stays in the cache and it is retried every %s", b.ID, cur.Attempts, cause, delay)
			}
			if err := putRetry(tx, cur, next, cause.Error(), jobs, now.Add(delay)); err != nil {
				return err
			}
			if err := pl.record(tx, catalog.Event{Time: now, Workspace: b.Workspace, Batch: b.ID, Kind: kind, State: next, Message: msg}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.log.Error().Err(err).AnErr("cause", cause).Msg("migration failed and the failure could not be recorded")
	}
}

// putRetry records a failed attempt to write batch b to tape: its new
// state (a deleted batch stays deleted), the reason, and when its migrate
// jobs may run again.
func putRetry(tx *catalog.Tx, b catalog.Batch, state catalog.State, reason string, jobs []catalog.Job, notBefore time.Time) error {
	if b.State != catalog.Deleted {
		b.State = state
	}
	b.Reason = reason
	if err := tx.PutBatch(b); err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Batch == b.ID {
			j.Attempts = b.Attempts
			j.NotBefore = notBefore
			if err := tx.PutJob(j); err != nil {
				return err
			}
		}
	}
	return nil
}
