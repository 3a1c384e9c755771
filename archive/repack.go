package archive

// Repack gets back the tape space of purged batches. A cartridge holds
// dead bytes once the batches written on it are purged (and copies on it
// are replaced by repairs); when its live share falls below
// Config.RepackBelow, or when root asks (`tapefs library repack VOLSER`),
// its live members are copied to other cartridges and it is erased to
// scratch (a new label, of the next generation).
//
// Decisions:
//
//   - Streamed tape to tape, not staged through the cache. The old
//     cartridge is read in one forward pass, tape file after tape file,
//     and each live member goes straight into an aggregate on another
//     cartridge in a second drive, its md5 checked on the way. That reads
//     each byte once and writes each live byte once with both drives
//     streaming at the same time, needs no cache space (a cartridge holds
//     terabytes; the cache may not), and keeps the cache for the readers.
//     Its price: it holds two drives, so it gives them back whenever
//     recalls or migration wait (at the end of each aggregate it writes),
//     and a library with a single drive cannot repack (refused, saying so).
//     The data of dead members is located over when that is cheaper than
//     reading it (tapeReader: longer than a locate's fixed cost at the
//     streaming rate, 4 GB on LTO-9), read through otherwise.
//   - What is carried over: every member the catalog still refers to
//     (data copies, the directories and symlinks of batches it holds, the
//     hard-link names of copied files), for every batch a state record of
//     the journal's tape files names (removals, undeletes, purges: rebuild
//     needs them or a purged batch would come back) its state as the
//     catalog has it now (currentState), and fresh workspace and batch records
//     from the catalog (with the batch's Synced time, so a rebuild keeps
//     it). Catalog snapshots are not: a snapshot taken before the erase
//     names copies on the old generation (rebuild.go drops those).
//   - Never fewer good copies, even for a moment: a new tape file is
//     committed (filemark) before the one transaction that switches the
//     references of its members from the old copies to the new ones
//     (catalog.ReplaceCopy, in place) and records how far the repack got
//     (Job.Progress). Only when no file refers to the old cartridge, as
//     read while holding its drive (every tape write commits to the
//     catalog before its drive is released), is it erased.
//   - kill -9 anywhere: the job is in the catalog and resumes from
//     Job.Progress. A tape file written but not committed holds verified
//     copies nobody refers to (dead bytes on the new cartridge). An erase
//     that was done but not recorded is known by the label's generation
//     (Job.Generation) and only recorded.
//   - A copy that reads back wrong is not copied: a repair job (see
//     failover.go) rewrites it from a good copy, and the erase waits for
//     the repair to switch the reference.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/checksum"
	"github.com/tapefs/tapefs/internal/human"
	"github.com/tapefs/tapefs/tape"
)

// errRepackYield: recalls or migration wait for the drives; the repack
// gives them back and goes on later.
var errRepackYield = errors.New("repack: drives given back to recalls and migration")

// errRepackWait: the repack cannot finish yet (copies wait for their
// repair, or a recall pass still uses the cartridge); tried again later.
type errRepackWait struct{ why string }

func (e *errRepackWait) Error() string { return "repack waits: " + e.why }

// RepackStatus is a repack as the command line and the page show it.
type RepackStatus struct {
	VOLSER   string    `json:"volser"`
	Job      uint64    `json:"job"`
	Queued   time.Time `json:"queued"`
	Progress int       `json:"progress"` // first tape file not yet copied
	Attempts int       `json:"attempts,omitempty"`
	Waits    string    `json:"waits,omitempty"` // why it cannot finish yet ("" : it is not held up)
}

// Repack queues the repack of a cartridge (or returns the one queued).
func (e *Engine) Repack(volser string) (RepackStatus, error) {
	info, err := e.lib.Cartridge(volser)
	if err != nil {
		return RepackStatus{}, fmt.Errorf("repack %s: %w", volser, ErrNotFound)
	}
	if len(e.lib.Drives()) < 2 {
		return RepackStatus{}, fmt.Errorf("repack %s: a repack reads one cartridge while it writes another, and the library has one drive: %w", volser, ErrInvalid)
	}
	if r := e.cartRecords()[volser]; !r.Writable() {
		// Erasing is writing: root said this cartridge is not to be
		// written (read-only), or read (disabled), or that it is gone.
		return RepackStatus{}, fmt.Errorf("repack %s: the cartridge is %s; tapefs library set %s --state ok first: %w", volser, r.Admin, volser, ErrInvalid)
	}
	var j catalog.Job
	err = e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		jobs, err := tx.Jobs(catalog.JobRepack)
		if err != nil {
			return err
		}
		for _, old := range jobs {
			if old.VOLSER == volser {
				j = old
				return nil
			}
		}
		if info.State == tape.CartridgeScratch {
			return fmt.Errorf("repack %s: the cartridge is scratch already: %w", volser, ErrInvalid)
		}
		if info.State == tape.CartridgeError {
			return fmt.Errorf("repack %s: the cartridge is in the error state and cannot be read: %w", volser, ErrInvalid)
		}
		j, err = tx.AddJob(catalog.Job{Kind: catalog.JobRepack, VOLSER: volser, Progress: 1, Generation: info.Generation, Created: e.now()})
		if err != nil {
			return err
		}
		rec, _ := tx.Cartridge(volser)
		return pl.record(tx, catalog.Event{Time: e.now(), VOLSER: volser, Kind: EvRepack,
			Message: fmt.Sprintf("repack of cartridge %s queued: %s of %s dead (%.0f%% live)", volser, human.Size(rec.Dead), human.Size(info.Used), 100*rec.LiveFraction(tape.LabelSize()))})
	})
	if err != nil {
		return RepackStatus{}, err
	}
	e.setRepacking(volser, true)
	e.wakeRepack()
	return repackStatus(j), nil
}

func repackStatus(j catalog.Job) RepackStatus {
	return RepackStatus{VOLSER: j.VOLSER, Job: j.ID, Queued: j.Created, Progress: j.Progress, Attempts: j.Attempts, Waits: j.Note}
}

// Repacks lists the repacks queued or running.
func (e *Engine) Repacks() ([]RepackStatus, error) {
	var out []RepackStatus
	err := e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobRepack)
		for _, j := range jobs {
			out = append(out, repackStatus(j))
		}
		return err
	})
	return out, err
}

// setRepacking marks a cartridge as being repacked: nothing is written to
// it until the repack is over (pickCartridge).
func (e *Engine) setRepacking(volser string, on bool) {
	// A scrub's place on the cartridge means nothing once it is rewritten.
	e.tapeVerify.mu.Lock()
	delete(e.tapeVerify.resume, volser)
	e.tapeVerify.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if on {
		e.repacking[volser] = true
	} else {
		delete(e.repacking, volser)
	}
}

func (e *Engine) isRepacking(volser string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.repacking[volser]
}

// loadRepacks marks the cartridges of queued repacks at start.
func (e *Engine) loadRepacks() error {
	return e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobRepack)
		for _, j := range jobs {
			e.repacking[j.VOLSER] = true
		}
		return err
	})
}

func (e *Engine) wakeRepack() {
	select {
	case e.repackWake <- struct{}{}:
	default:
	}
}

// repackTick is how often the repack loop looks for work without being
// woken (a purge or a queued repack wakes it at once).
const repackTick = time.Minute

// repackLoop queues repacks of cartridges below the threshold and runs
// the queued ones, one at a time.
func (e *Engine) repackLoop() {
	t := time.NewTicker(e.takeoverTick(repackTick))
	defer t.Stop()
	for {
		e.autoRepack()
		for e.repackOnce() && e.ctx.Err() == nil {
		}
		select {
		case <-e.ctx.Done():
			return
		case <-e.repackWake:
		case <-t.C:
		}
	}
}

// autoRepack queues the repack of every cartridge whose live share fell
// below Config.RepackBelow.
func (e *Engine) autoRepack() {
	if e.cfg.RepackBelow <= 0 || len(e.lib.Drives()) < 2 {
		return
	}
	var recs []catalog.CartridgeRecord
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		recs, err = tx.Cartridges()
		return err
	}); err != nil {
		return
	}
	label := tape.LabelSize()
	for _, r := range recs {
		if r.Dead <= 0 || !r.Writable() || e.isRepacking(r.VOLSER) || r.LiveFraction(label) >= e.cfg.RepackBelow {
			continue
		}
		if _, err := e.Repack(r.VOLSER); err != nil {
			e.log.Warn().Err(err).Str("volser", r.VOLSER).Msg("repack: cannot queue the repack of a sparse cartridge")
		}
	}
}

// repackOnce runs the oldest due repack; it reports whether it did
// something worth going on for.
func (e *Engine) repackOnce() bool {
	claimed := e.claimDue(catalog.JobRepack)
	if claimed == nil {
		return false
	}
	defer e.endClaims(claimed)
	due := &claimed[0]
	err := e.runRepack(*due)
	if err == nil || e.fenced(err, claimed) {
		return true
	}
	if e.ctx.Err() != nil {
		return false
	}
	var wait *errRepackWait
	var delay time.Duration
	switch {
	case errors.Is(err, errRepackYield):
		delay = max(e.cfg.RecallLinger, 100*time.Millisecond)
	case errors.As(err, &wait):
		delay = max(e.cfg.Backoff, time.Second)
	default:
		delay = min(e.cfg.Backoff<<min(due.Attempts, 10), time.Hour)
	}
	e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		j, jerr := tx.Job(due.ID)
		if jerr != nil {
			return nil // finished meanwhile
		}
		j.NotBefore = e.now().Add(delay)
		j.Note = ""
		if wait != nil {
			j.Note = wait.why
		}
		if errors.Is(err, errRepackYield) || wait != nil {
			return tx.PutJob(j)
		}
		j.Attempts++
		if err := tx.PutJob(j); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), VOLSER: j.VOLSER, Kind: EvRepackFailed,
			Message: fmt.Sprintf("repack of cartridge %s stopped at tape file %d (attempt %d), retried in %s: %v", j.VOLSER, j.Progress, j.Attempts, delay, err)})
	}), "the backoff of a repack (it is tried again at once)", func(l *zerolog.Event) *zerolog.Event { return l.Str("volser", due.VOLSER) })

	if wait != nil {
		e.log.Info().Str("volser", due.VOLSER).Str("why", wait.why).Msg("repack waits")
	}
	return false
}

// liveCopy is one copy on the cartridge being repacked that a file still
// refers to.
type liveCopy struct {
	file   catalog.File
	batch  *catalog.Batch
	copy   catalog.Copy
	others map[string]bool // cartridges holding the file's other copies
}

type tapePos struct {
	file int
	off  int64
}

// liveOn lists the copies on volser the catalog refers to, by position,
// leaving out those known bad (a repair will switch them).
func (e *Engine) liveOn(volser string) (map[tapePos]*liveCopy, error) {
	bad := e.badCopies()
	out := map[tapePos]*liveCopy{}
	var batches []catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		batches, err = tx.Batches(catalog.ListOptions{})
		return err
	}); err != nil {
		return nil, err
	}
	for i := range batches {
		b := &batches[i]
		err := e.eachDataFile(*b, func(f catalog.File) error {
			for _, c := range f.Copies {
				if c.VOLSER != volser || bad[badKey{f.ID, c}] {
					continue
				}
				lc := &liveCopy{file: f, batch: b, copy: c, others: map[string]bool{}}
				for _, o := range f.Copies {
					if o != c {
						lc.others[o.VOLSER] = true
					}
				}
				out[tapePos{c.TapeFile, c.Offset}] = lc
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// runRepack carries a repack job on from where it is.
func (e *Engine) runRepack(j catalog.Job) error {
	log := e.log.With().Str("volser", j.VOLSER).Uint64("job", j.ID).Logger()
	info, err := e.lib.Cartridge(j.VOLSER)
	if err != nil {
		return err
	}
	if j.Generation != 0 && info.Generation != j.Generation {
		// Erased already: a crash came between the erase and its record.
		return e.repackDone(j, info, 0, 0)
	}
	var moved, bytes int64
	restarted := false
	for {
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		if info, err = e.lib.Cartridge(j.VOLSER); err != nil {
			return err
		}
		if j.Progress < 1 {
			j.Progress = 1
		}
		if j.Progress < info.TapeFiles {
			n, b, err := e.repackPass(&j, info)
			moved, bytes = moved+n, bytes+b
			if err != nil {
				return err
			}
			continue
		}
		left, err := e.liveOn(j.VOLSER)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			// Copies skipped because the cartridge written holds another
			// copy of the same file: one more pass, to other cartridges.
			if restarted && moved == 0 {
				return fmt.Errorf("repack %s: %d copies could not be moved: every cartridge with room holds another copy of their files", j.VOLSER, len(left))
			}
			restarted, moved = true, 0
			j.Progress = 1
			log.Info().Int("copies", len(left)).Msg("repack: copies left on the cartridge, reading it again")
			continue
		}
		if n := e.badOn(j.VOLSER); n > 0 {
			why := fmt.Sprintf("%d bad copies on %s wait for their repair", n, j.VOLSER)
			if stuck := e.repairsStuck(j.VOLSER); stuck != "" {
				why += "; " + stuck
			}
			return &errRepackWait{why}
		}
		return e.repackErase(j, moved, bytes)
	}
}

// repackPass copies the live members of the cartridge's tape files from
// j.Progress on, one aggregate at a time, and records each.
func (e *Engine) repackPass(j *catalog.Job, info tape.CartridgeInfo) (moved, bytes int64, err error) {
	live, err := e.liveOn(j.VOLSER)
	if err != nil {
		return 0, 0, err
	}
	others := map[string]bool{}
	for _, lc := range live {
		for v := range lc.others {
			others[v] = true
		}
	}
	dx, err := e.lib.Acquire(e.ctx, j.VOLSER)
	if err != nil {
		return 0, 0, err
	}
	defer e.lib.Release(dx)
	var dy tape.Drive
	var target string
	defer func() {
		if dy != nil {
			e.lib.Release(dy)
		}
	}()
	avoid := map[string]bool{j.VOLSER: true}
	first := true
	for j.Progress < info.TapeFiles {
		if e.ctx.Err() != nil {
			return moved, bytes, e.ctx.Err()
		}
		if !first && e.busy() {
			return moved, bytes, errRepackYield
		}
		first = false
		if dy == nil {
			// Best: a cartridge holding no other copy of any file moved;
			// else any other, and the members it cannot take stay for
			// another pass.
			all := map[string]bool{}
			for v := range avoid {
				all[v] = true
			}
			for v := range others {
				all[v] = true
			}
			if target, err = e.pickInPool(tape.TrailerSize+recordSlack, e.cartRecords()[j.VOLSER].Pool, all); err != nil {
				if target, err = e.pickInPool(tape.TrailerSize+recordSlack, e.cartRecords()[j.VOLSER].Pool, avoid); err != nil {
					return moved, bytes, err
				}
			}
			if dy, err = e.lib.Acquire(e.ctx, target); err != nil {
				return moved, bytes, err
			}
		}
		res, err := e.repackAggregate(dx, dy, target, j.Progress, info.TapeFiles, live)
		switch {
		case errors.Is(err, tape.ErrEndOfTape):
			e.log.Info().Str("volser", j.VOLSER).Str("target", target).Msg("repack: end of tape, the aggregate is written again on another cartridge")
			avoid[target] = true
			e.lib.Release(dy)
			dy = nil
			continue
		case err != nil:
			return moved, bytes, err
		}
		if len(res.bad) > 0 {
			// Not committed: written again without the bad copies, which
			// their repair replaces.
			if err := e.scheduleRepairs(res.bad, "repack of "+j.VOLSER); err != nil {
				return moved, bytes, err
			}
			for _, lc := range res.bad {
				delete(live, tapePos{lc.copy.TapeFile, lc.copy.Offset})
			}
			continue
		}
		if err := e.commitRepack(j, target, res); err != nil {
			return moved, bytes, err
		}
		moved += int64(len(res.switches))
		for _, s := range res.switches {
			bytes += s.new.Length
			delete(live, tapePos{s.old.TapeFile, s.old.Offset})
		}
	}
	return moved, bytes, nil
}

// repairsStuck says why repairs of bad copies on volser fail, if they do
// (a file whose every copy is bad cannot be repaired: the repack cannot
// finish until someone decides about it); "" when none has failed.
func (e *Engine) repairsStuck(volser string) string {
	var notes []string
	_ = e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobRepair)
		for _, j := range jobs {
			if j.Copy.VOLSER == volser && j.Note != "" {
				notes = append(notes, j.Note)
			}
		}
		return err
	})
	switch len(notes) {
	case 0:
		return ""
	case 1:
		return "its repair failed: " + notes[0]
	}
	return fmt.Sprintf("%d repairs failed, the first: %s", len(notes), notes[0])
}

// pickInPool picks a cartridge to write to, not one of avoid: in pool
// first (a copy moved or rewritten stays in the pool of the one it
// replaces, apart from the file's other copies), else in any.
func (e *Engine) pickInPool(need int64, pool string, avoid map[string]bool) (string, error) {
	ok := func(v string) bool { return !avoid[v] }
	v, err := e.pickCartridge(need, pool, ok)
	if err != nil && pool != "" {
		v, err = e.pickCartridge(need, "", ok)
		if err == nil {
			// Still on a cartridge of its own, but the pools no longer
			// keep the copies apart: say so, the administrator adds
			// cartridges to the pool.
			e.log.Warn().Str("pool", pool).Str("volser", v).
				Msg("no cartridge of the pool has room: copies are written to a cartridge of another pool; add scratch cartridges to the pool")
		}
	}
	return v, err
}

// repackSwitch is one reference to switch.
type repackSwitch struct {
	file     uint64
	old, new catalog.Copy
}

// repackResult is what one aggregate of a repack wrote.
type repackResult struct {
	tapeFile int // on the target; 0 when nothing was written
	next     int // first tape file of the old cartridge not read
	size     int64
	switches []repackSwitch
	bad      []*liveCopy // copies that did not read back as sealed
}

// repackAggregate reads tape files from..to-1 of the old cartridge (dx)
// until an aggregate's worth is copied, writing what is carried over as
// one tape file on dy.
func (e *Engine) repackAggregate(dx, dy tape.Drive, target string, from, to int, live map[tapePos]*liveCopy) (repackResult, error) {
	res := repackResult{next: from}
	tapeFile, err := dy.SeekEOD()
	if err != nil {
		return res, err
	}
	bw := bufio.NewWriterSize(dy, 1<<20)
	aw := tape.NewAggregateWriter(bw)
	wrote := false
	wsDone, batchDone, copied, stateDone := map[string]bool{}, map[uint64]bool{}, map[uint64]bool{}, map[uint64]bool{}
	// files and batches of members that are not data (dirs, symlinks,
	// links), read from the catalog as they come.
	lookup := func(id, batch uint64) (catalog.File, catalog.Batch, bool) {
		var f catalog.File
		var b catalog.Batch
		err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			if f, err = tx.File(id); err != nil {
				return err
			}
			b, err = tx.Batch(batch)
			return err
		})
		return f, b, err == nil && f.Batch == batch
	}
	heads := func(b catalog.Batch) error {
		if !wsDone[b.Workspace] {
			var w catalog.Workspace
			if err := e.cat.View(func(tx *catalog.Tx) error {
				var err error
				w, err = tx.Workspace(b.Workspace)
				return err
			}); err != nil {
				return err
			}
			if err := aw.AddRecord(workspaceRecord(w)); err != nil {
				return err
			}
			wsDone[b.Workspace] = true
		}
		if !batchDone[b.ID] {
			if err := aw.AddRecord(batchRecord(b)); err != nil {
				return err
			}
			batchDone[b.ID] = true
		}
		wrote = true
		return nil
	}
	for n := from; n < to; n++ {
		src, err := newTapeReader(dx, n, e.lib.Timing())
		if err != nil {
			return res, err
		}
		err = tape.ReadTapeFile(src, tape.Visitor{
			Record: func(r tape.Record) error {
				if r.Kind == tape.RecordDropped {
					// A fact that does not change: carried as it is.
					wrote = true
					return aw.AddRecord(r)
				}
				if r.Kind != tape.RecordState {
					return nil
				}
				id, err := strconv.ParseUint(r.Fields["batch"], 10, 64)
				if err != nil || stateDone[id] {
					return nil
				}
				stateDone[id] = true
				rec, err := e.currentState(id, r.Fields["workspace"])
				if err != nil {
					return err
				}
				wrote = true
				return aw.AddRecord(rec)
			},
			Member: func(m tape.Member, off int64, data io.Reader) error {
				switch m.Type {
				case tape.MemberFile:
					lc := live[tapePos{n, off}]
					if lc == nil || lc.file.ID != m.FileID || lc.others[target] {
						return nil // dead, or for another pass
					}
					if err := heads(*lc.batch); err != nil {
						return err
					}
					// Checked as a recall is: by the CRC32C when the file
					// has one (memory speed), else by the md5.
					h := checksum.New(lc.file.CRC32C == "")
					at, err := aw.Add(memberOf(*lc.batch, lc.file), io.TeeReader(io.LimitReader(data, lc.copy.Length), h))
					if err != nil {
						return err
					}
					sum := sumsOf(h)
					if !sum.matches(&lc.file) {
						e.log.Error().Str("volser", lc.copy.VOLSER).Uint64("batch", lc.file.Batch).Str("path", lc.file.Path).
							Str("want_md5", lc.file.MD5).Str("got_md5", sum.md5).Str("want_crc32c", lc.file.CRC32C).Str("got_crc32c", sum.crc).
							Msg("repack: a copy does not read back as sealed; it is repaired from another copy")
						res.bad = append(res.bad, lc)
						return nil
					}
					res.switches = append(res.switches, repackSwitch{file: lc.file.ID, old: lc.copy,
						new: catalog.Copy{VOLSER: target, TapeFile: tapeFile, Offset: at, Length: lc.copy.Length}})
					copied[lc.file.ID] = true
				case tape.MemberLink:
					if !copied[m.Link] {
						return nil
					}
					f, b, ok := lookup(m.FileID, m.Batch)
					if !ok {
						return nil
					}
					if err := heads(b); err != nil {
						return err
					}
					lm := memberOf(b, f)
					lm.Type, lm.Size, lm.Target, lm.Link = tape.MemberLink, 0, m.Target, m.Link
					_, err := aw.Add(lm, nil)
					return err
				default:
					f, b, ok := lookup(m.FileID, m.Batch)
					if !ok {
						return nil
					}
					if err := heads(b); err != nil {
						return err
					}
					_, err := aw.Add(memberOf(b, f), nil)
					return err
				}
				return nil
			},
		})
		if err != nil {
			if errors.Is(err, tape.ErrEndOfTape) {
				return res, err
			}
			return res, fmt.Errorf("repack: reading tape file %d: %w", n, err)
		}
		res.next = n + 1
		if aw.Written() >= e.cfg.AggregateTarget {
			break
		}
	}
	if len(res.bad) > 0 || !wrote {
		// Nothing reaches the tape: the bytes in the buffer are dropped
		// and a locate abandons what the drive began.
		if n, _ := dy.Position(); n == tapeFile {
			if err := dy.Locate(tapeFile, 0); err != nil {
				return res, err
			}
		}
		return res, nil
	}
	if err := aw.AddRecord(closedRecord(e.now(), e.cartRecords()[target].Pool)); err != nil {
		return res, err
	}
	if err := aw.Close(); err != nil {
		return res, err
	}
	if err := bw.Flush(); err != nil {
		return res, err
	}
	if err := dy.WriteFilemark(); err != nil {
		return res, err
	}
	res.tapeFile, res.size = tapeFile, aw.Written()
	return res, nil
}

// currentState is the state record a repack writes for a batch whose
// state record it meets on the old cartridge: the batch as the catalog has
// it now (removed, undeleted, hidden entries), or purged when the catalog
// no longer has it. Not the old record itself: replayed after a catalog
// snapshot (catalog restore), an old record of a removal would undo an
// undelete or bring back a purged batch; the record of now is the newest
// word on the batch, as the journal's are.
func (e *Engine) currentState(id uint64, workspace string) (tape.Record, error) {
	var rec tape.Record
	err := e.cat.View(func(tx *catalog.Tx) error {
		b, err := tx.Batch(id)
		if errors.Is(err, catalog.ErrNotFound) {
			rec = stateRecord(catalog.Batch{ID: id, Workspace: workspace}, true, e.now(), nil)
			return nil
		}
		if err != nil {
			return err
		}
		var removed []uint64
		if err := forEachFile(tx, b, func(f catalog.File) {
			if f.Removed {
				removed = append(removed, f.ID)
			}
		}); err != nil {
			return err
		}
		rec = stateRecord(b, false, e.now(), removed)
		return nil
	})
	return rec, err
}

// commitRepack switches the references of one aggregate's members and
// records the repack's progress, in one transaction.
func (e *Engine) commitRepack(j *catalog.Job, target string, res repackResult) error {
	info, err := e.lib.Cartridge(target)
	if err != nil {
		return err
	}
	// With several hosts: the lease of the target the tape file was
	// written under and the claim of the job must still be this host's,
	// or a host paused past them would switch references to a tape file
	// the next holder of the cartridge may have overwritten.
	fence := e.jobFence(target, *j)
	var stale int64
	err = e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		if err := tx.CheckFence(fence); err != nil {
			return err
		}
		stale = 0
		for _, s := range res.switches {
			if err := tx.ReplaceCopy(s.file, s.old, s.new); errors.Is(err, catalog.ErrNotFound) {
				stale += s.new.Length // purged meanwhile: the new copy is dead already
			} else if err != nil {
				return err
			}
		}
		if res.tapeFile != 0 {
			if err := tx.PutCartridge(cartridgeRecord(info)); err != nil {
				return err
			}
			if stale > 0 {
				if err := tx.AddDead(target, stale); err != nil {
					return err
				}
			}
		}
		cur, err := tx.Job(j.ID)
		if err != nil {
			return fmt.Errorf("repack %s: its job is gone: %w", j.VOLSER, err)
		}
		cur.Progress = res.next
		if err := tx.PutJob(cur); err != nil {
			return err
		}
		*j = cur
		return nil
	})
	if err != nil {
		return fmt.Errorf("repack %s: record tape file %d on %s: %w", j.VOLSER, res.tapeFile, target, err)
	}
	if res.tapeFile != 0 {
		e.log.Info().Str("volser", j.VOLSER).Str("target", target).Int("tape_file", res.tapeFile).Int("members", len(res.switches)).
			Int64("bytes", res.size).Int("next", res.next).Msg("repack: aggregate written and its copies switched")
	}
	return nil
}

// repackErase erases a cartridge no file refers to any more.
func (e *Engine) repackErase(j catalog.Job, moved, bytes int64) error {
	// A recall queued with a copy read before the switch would read an
	// erased tape: let it be served first (it reads the old copy, which
	// is still good until the erase).
	q := e.recalls
	q.mu.Lock()
	busy := len(q.pending[j.VOLSER]) > 0 || q.passes[j.VOLSER] != nil
	q.mu.Unlock()
	if busy {
		return &errRepackWait{"recalls still read " + j.VOLSER}
	}
	d, err := e.lib.Acquire(e.ctx, j.VOLSER)
	if err != nil {
		return err
	}
	// Holding the drive: every write to the cartridge has been committed
	// to the catalog (writers commit before they release), so this is the
	// last word on what refers to it.
	left, err := e.liveOn(j.VOLSER)
	if err == nil && len(left) > 0 {
		err = fmt.Errorf("repack %s: %d copies on it appeared while it was repacked; reading it again", j.VOLSER, len(left))
	}
	if err == nil && e.badOn(j.VOLSER) > 0 {
		err = &errRepackWait{"bad copies wait for their repair"}
	}
	if r := e.cartRecords()[j.VOLSER]; err == nil && !r.Writable() {
		err = &errRepackWait{fmt.Sprintf("root set %s %s meanwhile: it is not erased until set back to ok", j.VOLSER, r.Admin)}
	}
	if err != nil {
		e.lib.Release(d)
		return err
	}
	err = d.Erase()
	e.lib.Release(d)
	if err != nil {
		return err
	}
	info, err := e.lib.Cartridge(j.VOLSER)
	if err != nil {
		return err
	}
	return e.repackDone(j, info, moved, bytes)
}

// repackDone records an erased cartridge and ends its repack.
func (e *Engine) repackDone(j catalog.Job, info tape.CartridgeInfo, moved, bytes int64) error {
	// The job's claim (not the cartridge's lease: its drive is given back
	// by now): a host that lost the job records nothing; the host that
	// took it over finds the erase by the label's generation.
	fence := e.jobFence("", j)
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		if err := tx.CheckFence(fence); err != nil {
			return err
		}
		if err := tx.EraseCartridge(cartridgeRecord(info)); err != nil {
			return err
		}
		if err := tx.DeleteJob(j.ID); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), VOLSER: j.VOLSER, Kind: EvRepack,
			Message: fmt.Sprintf("cartridge %s repacked: %d copies (%s) moved to other cartridges, erased; it is scratch (label generation %d)", j.VOLSER, moved, human.Size(bytes), info.Generation)})
	})
	if err != nil {
		return err
	}
	e.setRepacking(j.VOLSER, false)
	return nil
}
