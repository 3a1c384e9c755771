package archive

// Reading from another copy, and repairing the bad one.
//
// A recall that cannot read its copy (a medium error, a tape file shorter
// than recorded, a cartridge that cannot be mounted) or reads bytes whose
// md5 is not the sealed one goes on from the file's next copy
// (File.Copies, in order, skipping copies known bad): the same shared
// request is queued again for the other cartridge, so every reader waiting
// on it gets the good bytes, never EIO while any copy is good. An event
// names the cartridge and the file.
//
// Readers must not see bytes of a copy that later proves wrong, so the
// partial object of a file that has another copy to fall back on gives
// out no byte before the whole copy is verified (cache.Partial.Hold); a
// file with one copy streams as before (there is nothing to fall back on:
// its readers get EIO at the end, as the cache's last-bytes rule says).
//
// The bad copy gets a repair job (catalog.JobRepair, which survives a
// restart): once the file's good bytes are in the cache (the failed-over
// recall put them there, or the repair recalls them), they are written as
// a new tape file on a cartridge holding no other copy of the file, and
// one transaction replaces the catalog's reference to the bad copy with
// the new one (in its place in File.Copies) and counts the bad bytes as
// dead on their cartridge. Until then recalls skip the bad copy.

import (
	"bufio"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// copyError is a recall's failure to get good bytes from one copy: the
// next copy may still serve the read.
type copyError struct {
	copy     catalog.Copy
	mismatch bool // read whole, wrong md5
	bad      bool // the copy itself is bad (mismatch, medium error, short): repair it
	err      error
}

func (c *copyError) Error() string { return c.err.Error() }
func (c *copyError) Unwrap() error { return c.err }

// badKey names a copy of a file.
type badKey struct {
	file uint64
	copy catalog.Copy
}

// badCopies lists the copies waiting for their repair.
func (e *Engine) badCopies() map[badKey]bool {
	out := map[badKey]bool{}
	_ = e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobRepair)
		for _, j := range jobs {
			out[badKey{j.File, j.Copy}] = true
		}
		return err
	})
	return out
}

// badOn counts the copies on a cartridge waiting for their repair.
func (e *Engine) badOn(volser string) int {
	n := 0
	for k := range e.badCopies() {
		if k.copy.VOLSER == volser {
			n++
		}
	}
	return n
}

// recallCopy is the copy a recall of f reads first: the first on a
// cartridge that counts (readCopy: not disabled or lost) and not known bad
// (waiting for its repair); a known-bad one only when no other is left (it
// may read after all).
func (e *Engine) recallCopy(f *catalog.File, bad map[badKey]bool) (catalog.Copy, bool) {
	var fallback *catalog.Copy
	for _, c := range f.Copies {
		if e.cartBad(c.VOLSER) {
			continue
		}
		if !bad[badKey{f.ID, c}] {
			return c, true
		}
		if fallback == nil {
			fallback = &c
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return catalog.Copy{}, false
}

// scheduleRepairs records bad copies and queues their repair.
func (e *Engine) scheduleRepairs(bad []*liveCopy, why string) error {
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		jobs, err := tx.Jobs(catalog.JobRepair)
		if err != nil {
			return err
		}
		known := map[badKey]bool{}
		for _, j := range jobs {
			known[badKey{j.File, j.Copy}] = true
		}
		for _, lc := range bad {
			k := badKey{lc.file.ID, lc.copy}
			if known[k] {
				continue
			}
			known[k] = true
			if _, err := tx.AddJob(catalog.Job{Kind: catalog.JobRepair, Batch: lc.file.Batch, File: lc.file.ID, Copy: lc.copy, Created: e.now()}); err != nil {
				return err
			}
			if err := pl.record(tx, catalog.Event{Time: e.now(), Workspace: lc.batch.Workspace, Batch: lc.file.Batch, VOLSER: lc.copy.VOLSER, Kind: EvCopyBad,
				Message: fmt.Sprintf("copy of %s (batch %d) on cartridge %s, tape file %d, does not read back as sealed (%s): read from another copy; a repair is queued",
					lc.file.Path, lc.file.Batch, lc.copy.VOLSER, lc.copy.TapeFile, why)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		e.wakeRepair()
	}
	return err
}

// failover queues a failed recall again on the file's next copy. It
// reports false when there is none (or the failure is not the copy's):
// the caller then ends the request with err.
func (e *Engine) failover(r *recallReq, err error) bool {
	var ce *copyError
	if e.ctx.Err() != nil || !errors.As(err, &ce) {
		return false
	}
	var f catalog.File
	var b catalog.Batch
	if e.cat.View(func(tx *catalog.Tx) error {
		var err error
		if f, err = tx.File(r.file.ID); err != nil {
			return err
		}
		b, err = tx.Batch(f.Batch)
		return err
	}) != nil {
		return false
	}
	bad := e.badCopies()
	referred := false
	for _, c := range f.Copies {
		referred = referred || c == ce.copy
	}
	q := e.recalls
	q.mu.Lock()
	if r.tried == nil {
		r.tried = map[catalog.Copy]bool{}
	}
	r.tried[ce.copy] = true
	var next *catalog.Copy
	for _, c := range f.Copies {
		if !r.tried[c] && !bad[badKey{f.ID, c}] && c != ce.copy && !e.cartBad(c.VOLSER) {
			next = &c
			break
		}
	}
	if next == nil || q.closed {
		// No other copy: the reader gets the error, and there is nothing
		// to repair from (a single copy's damage is the md5-mismatch or
		// recall-failed event's business).
		q.mu.Unlock()
		return false
	}
	q.mu.Unlock()
	if ce.bad && referred {
		if serr := e.scheduleRepairs([]*liveCopy{{file: f, batch: &b, copy: ce.copy}}, err.Error()); serr != nil {
			e.log.Error().Err(serr).Str("volser", ce.copy.VOLSER).Uint64("batch", f.Batch).Str("path", f.Path).Msg("bad copy: its repair could not be queued")
		}
	}
	q.mu.Lock()
	if q.closed || q.byID[f.ID] != r {
		q.mu.Unlock()
		return false
	}
	r.file, r.copy = f, *next
	q.addLocked(r)
	q.mu.Unlock()
	q.signal()
	e.log.Warn().Str("volser", ce.copy.VOLSER).Str("next", next.VOLSER).Uint64("batch", f.Batch).Str("workspace", b.Workspace).
		Str("path", f.Path).Err(err).Msg("recall: copy unreadable, reading the next copy")
	if !ce.bad || !referred {
		// Not the copy's fault (the cartridge could not be mounted, or it
		// was repacked meanwhile): no repair, but the reader's event.
		e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: f.Batch, VOLSER: ce.copy.VOLSER, Kind: EvCopyBad,
				Message: fmt.Sprintf("copy of %s (batch %d) on cartridge %s could not be read (%v): read from %s instead", f.Path, f.Batch, ce.copy.VOLSER, err, next.VOLSER)})
		}), "a copy that could not be read", func(l *zerolog.Event) *zerolog.Event {
			return l.Uint64("batch", f.Batch).Str("workspace", b.Workspace).Str("volser", ce.copy.VOLSER)
		})
	}
	return true
}

func (e *Engine) wakeRepair() {
	select {
	case e.repairWake <- struct{}{}:
	default:
	}
}

// repairLoop works through the repair jobs.
func (e *Engine) repairLoop() {
	t := time.NewTicker(e.takeoverTick(repackTick))
	defer t.Stop()
	for {
		for e.repairOnce() && e.ctx.Err() == nil {
		}
		select {
		case <-e.ctx.Done():
			return
		case <-e.repairWake:
		case <-t.C:
		}
	}
}

// repairOnce repairs the oldest due bad copy; it reports whether it did
// something. With several hosts the job is claimed first, like a copy job
// (hosts.go): a repair another live host holds is left to it, and that of
// a host whose heartbeat lapsed is taken over.
func (e *Engine) repairOnce() bool {
	claimed := e.claimDue(catalog.JobRepair)
	if claimed == nil {
		return false
	}
	defer e.endClaims(claimed)
	due := &claimed[0]
	err := e.repair(*due)
	if err == nil || e.ctx.Err() != nil {
		return err == nil
	}
	if e.fenced(err, claimed) {
		return true // the host that took the job over repairs the copy
	}
	delay := min(max(e.cfg.Backoff, time.Second)<<min(due.Attempts, 10), time.Hour)
	e.log.Warn().Err(err).Str("volser", due.Copy.VOLSER).Uint64("batch", due.Batch).Uint64("file", due.File).Dur("retry_in", delay).Msg("repair of a bad copy failed; retried")
	e.unrecorded(e.cat.Update(func(tx *catalog.Tx) error {
		j, jerr := tx.Job(due.ID)
		if jerr != nil {
			return nil
		}
		j.Attempts++
		j.NotBefore = e.now().Add(delay)
		j.Note = err.Error() // why, for a repack that waits for it
		return tx.PutJob(j)
	}), "the backoff of a repair (it is tried again at once)", func(l *zerolog.Event) *zerolog.Event {
		return l.Uint64("batch", due.Batch).Str("volser", due.Copy.VOLSER)
	})
	return false
}

// repair rewrites one bad copy from the file's good bytes.
func (e *Engine) repair(j catalog.Job) error {
	var f catalog.File
	var b catalog.Batch
	var links []catalog.File
	gone := false
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		if f, err = tx.File(j.File); errors.Is(err, catalog.ErrNotFound) {
			gone = true
			return nil
		} else if err != nil {
			return err
		}
		if b, err = tx.Batch(f.Batch); err != nil {
			return err
		}
		return forEachFile(tx, b, func(l catalog.File) {
			if l.Type == catalog.TypeFile && l.Link == f.ID {
				links = append(links, l)
			}
		})
	})
	if err != nil {
		return err
	}
	referred := false
	for _, c := range f.Copies {
		referred = referred || c == j.Copy
	}
	if gone || !referred {
		// Purged, or the reference was switched (a repack) meanwhile.
		return e.cat.Update(func(tx *catalog.Tx) error { return tx.DeleteJob(j.ID) })
	}
	// The good bytes, in the cache: the recall reads a good copy.
	if info, ok := e.cache.Lookup(f.ID); !ok || info.Partial {
		bad := e.badCopies()
		good := false
		for _, c := range f.Copies {
			good = good || !bad[badKey{f.ID, c}]
		}
		if !good {
			return fmt.Errorf("every copy of %s is bad and the cache has not its bytes: nothing to repair from", f.Path)
		}
		reqs, err := e.requestRecalls([]catalog.File{f})
		if err != nil {
			return err
		}
		for _, r := range reqs {
			select {
			case <-r.done:
			case <-e.ctx.Done():
				return e.ctx.Err()
			}
			if r.err != nil {
				return fmt.Errorf("no good copy of %s to repair from: %w", f.Path, r.err)
			}
		}
	}
	avoid := map[string]bool{}
	for _, c := range f.Copies {
		avoid[c.VOLSER] = true
	}
	bp := &b
	members := []migrant{{member: memberOf(b, f), file: f, batch: bp}}
	for _, l := range links {
		lm := memberOf(b, l)
		lm.Type, lm.Size, lm.Target, lm.Link = tape.MemberLink, 0, f.Path, f.ID
		members = append(members, migrant{member: lm, file: l, batch: bp})
	}
	need := tape.MemberSize(members[0].member) + tape.TrailerSize + recordSlack
	for {
		volser, err := e.pickInPool(need, e.cartRecords()[j.Copy.VOLSER].Pool, avoid)
		if err != nil {
			return err
		}
		var gen int
		if info, err := e.lib.Cartridge(j.Copy.VOLSER); err == nil {
			gen = info.Generation
		}
		err = e.writeRepair(volser, members, droppedRecord(f, b.Workspace, j.Copy, gen), func(newCopy catalog.Copy) error {
			return e.commitRepair(j, f, b, newCopy)
		})
		if errors.Is(err, tape.ErrEndOfTape) {
			avoid[volser] = true
			continue
		}
		return err
	}
}

// commitRepair records the new copy in place of the bad one. It runs
// while the drive is held, so that with several hosts the fence checks the
// cartridge lease the copy was written under and the claim of the job: a
// host paused past its lease records nothing.
func (e *Engine) commitRepair(j catalog.Job, f catalog.File, b catalog.Batch, newCopy catalog.Copy) error {
	info, err := e.lib.Cartridge(newCopy.VOLSER)
	if err != nil {
		return err
	}
	fence := e.jobFence(newCopy.VOLSER, j)
	return e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		if err := tx.CheckFence(fence); err != nil {
			return err
		}
		if err := tx.ReplaceCopy(f.ID, j.Copy, newCopy); err != nil {
			return err
		}
		if err := tx.PutCartridge(cartridgeRecord(info)); err != nil {
			return err
		}
		if err := tx.AddDead(j.Copy.VOLSER, j.Copy.Length); err != nil {
			return err
		}
		if err := tx.DeleteJob(j.ID); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, VOLSER: j.Copy.VOLSER, Kind: EvCopyRepaired,
			Message: fmt.Sprintf("bad copy of %s (batch %d) on cartridge %s, tape file %d, replaced by a copy on %s, tape file %d", f.Path, b.ID, j.Copy.VOLSER, j.Copy.TapeFile, newCopy.VOLSER, newCopy.TapeFile)})
	})
}

// writeRepair writes one file (with its hard-link names) from its cache
// object as a tape file of its own, checking its md5 on the way, with the
// record that drops the bad copy, and commits the new copy (commit) before
// it releases the drive.
func (e *Engine) writeRepair(volser string, members []migrant, dropped tape.Record, commit func(catalog.Copy) error) error {
	d, err := e.lib.Acquire(e.ctx, volser)
	if err != nil {
		return err
	}
	defer e.lib.Release(d)
	tapeFile, err := d.SeekEOD()
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(d, 1<<20)
	aw := tape.NewAggregateWriter(bw)
	if err := e.addWorkspaceRecord(aw, members[0].batch.Workspace); err != nil {
		return err
	}
	if err := aw.AddRecord(batchRecord(*members[0].batch)); err != nil {
		return err
	}
	// The tape says too that the bad copy is none: a rebuild from the
	// library must not bring it back.
	if err := aw.AddRecord(dropped); err != nil {
		return err
	}
	buf := make([]byte, smallMember)
	var at int64
	for i, m := range members {
		off, err := e.addMember(aw, m, buf)
		if err != nil {
			return err
		}
		if i == 0 {
			at = off
		}
	}
	if err := aw.AddRecord(closedRecord(e.now(), e.cartRecords()[volser].Pool)); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := d.WriteFilemark(); err != nil {
		return err
	}
	return commit(catalog.Copy{VOLSER: volser, TapeFile: tapeFile, Offset: at, Length: members[0].member.Size})
}
