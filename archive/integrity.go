package archive

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// Integrity of the disk cache. A cached object is the file's bytes as
// sealed (or as recalled, md5 checked on the way in); the disk under it
// can still rot or be written by mistake. The md5 recorded at sealing is
// checked again:
//
//   - by migration, for every member as it goes to tape: a damaged object
//     never becomes a tape copy, and its batch is FAILED instead of synced;
//   - by the background scrub, which re-reads cached objects at a bounded
//     rate (Config.ScrubRate);
//   - on demand (VerifyCache, `tapefs verify --cache`);
//   - for size only, by every open through the daemon (openCheck).
//
// What is done with a damaged object depends on whether it is the only
// copy. A file on tape loses its cached object (dropped, then recalled
// from tape, md5 checked); a file not yet on tape keeps it — it is all
// there is — its batch goes FAILED naming the file, and reads of it
// through the mount get EIO until it is resolved.

// ErrDamaged is what a DamageError is: a cached object whose bytes do not
// hash to the md5 recorded at sealing. The mount answers EIO.
var ErrDamaged = errors.New("cached copy is damaged")

// DamageError names a damaged object: which file, what was expected and
// what its bytes hash to.
type DamageError struct {
	FileID    uint64
	Batch     uint64
	Workspace string
	Path      string
	Want, Got string // md5 sealed, md5 of the bytes read

	ident os.FileInfo // the object file found damaged, when known
}

func (d *DamageError) Error() string {
	return fmt.Sprintf("%s (batch %d, file %d): the cached copy is damaged: its bytes hash to md5 %s, sealed %s",
		d.Path, d.Batch, d.FileID, d.Got, d.Want)
}

// Unwrap gives ErrDamaged.
func (d *DamageError) Unwrap() error { return ErrDamaged }

// DamageReport is one damaged object found by VerifyCache, and what was
// done about it.
type DamageReport struct {
	FileID    uint64 `json:"file_id"`
	Batch     uint64 `json:"batch"`
	Workspace string `json:"workspace"`
	Path      string `json:"path"`
	Want      string `json:"md5_sealed"`
	Got       string `json:"md5_found"`
	Action    string `json:"action"`
}

// VerifyReport is the result of VerifyCache.
type VerifyReport struct {
	Objects int            `json:"objects"` // complete objects hashed
	Bytes   int64          `json:"bytes"`
	Skipped int            `json:"skipped"` // being recalled, or gone while checked
	Damaged []DamageReport `json:"damaged,omitempty"`
}

// VerifyScope says which cached objects VerifyCache checks.
type VerifyScope struct {
	Batch      uint64          // 0: every batch
	Workspaces map[string]bool // nil: every workspace
}

// integrity is the engine's memory of damaged objects that are kept: the
// only copies of files not yet on tape. Opens of them fail, and neither
// the scrub nor migration reports the same file twice. It is rebuilt by
// the next scrub or migration after a restart (the batch's FAILED reason
// survives in the catalog).
type integrity struct {
	mu      sync.Mutex
	damaged map[uint64]keptDamage // file ID -> damaged object kept
}

type keptDamage struct {
	err   *DamageError
	ident os.FileInfo // the object file found damaged
}

func (in *integrity) lookup(id uint64) (*DamageError, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	k, ok := in.damaged[id]
	return k.err, ok
}

// remember records a kept damaged object; it reports whether this object
// (this very file) was already known, so its damage is reported once.
func (in *integrity) remember(d *DamageError, ident os.FileInfo) (known bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.damaged == nil {
		in.damaged = map[uint64]keptDamage{}
	}
	if k, ok := in.damaged[d.FileID]; ok && ident != nil && k.ident != nil && os.SameFile(k.ident, ident) &&
		k.ident.ModTime().Equal(ident.ModTime()) && k.err.Got == d.Got {
		return true
	}
	in.damaged[d.FileID] = keptDamage{err: d, ident: ident}
	return false
}

func (in *integrity) forget(id uint64) {
	in.mu.Lock()
	delete(in.damaged, id)
	in.mu.Unlock()
}

// batches lists the batches with kept damaged objects.
func (in *integrity) batches() map[uint64][]uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := map[uint64][]uint64{}
	for id, k := range in.damaged {
		out[k.err.Batch] = append(out[k.err.Batch], id)
	}
	return out
}

// hashBuf is the read size of every hash of an object.
const hashBuf = 1 << 20

// hashFile returns the md5 of the first size bytes of f, read with pread
// (an *os.File's offset is left alone), calling pace (if not nil) after
// every chunk.
func hashFile(f io.ReaderAt, size int64, pace func(n int) error) (string, error) {
	h := md5.New()
	buf := make([]byte, min(int64(hashBuf), max(size, 1)))
	for off := int64(0); off < size; {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		h.Write(buf[:n])
		off += int64(n)
		if err != nil && !(errors.Is(err, io.EOF) && off == size) {
			if errors.Is(err, io.EOF) {
				return hex.EncodeToString(h.Sum(nil)), fmt.Errorf("object ends after %d of %d bytes", off, size)
			}
			return "", err
		}
		if pace != nil {
			if err := pace(n); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkResult is what checkObject found.
type checkResult int

const (
	checkSkipped checkResult = iota // no object, partial, or nothing to check it against
	checkGood
	checkDamaged
)

// checkObject hashes cached object id against its file's md5 and deals
// with damage (see objectDamaged). via names the checker in events.
func (e *Engine) checkObject(id uint64, via string, pace func(n int) error) (checkResult, *DamageReport, int64, error) {
	if info, ok := e.cache.Lookup(id); !ok || info.Partial {
		return checkSkipped, nil, 0, nil
	}
	var f catalog.File
	var b catalog.Batch
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		if f, err = tx.File(id); err != nil {
			return err
		}
		b, err = tx.Batch(f.Batch)
		return err
	})
	if err != nil || f.Type != catalog.TypeFile || f.Link != 0 || f.MD5 == "" {
		return checkSkipped, nil, 0, nil
	}
	// Quietly: a check is not a use (it must not keep the object from
	// eviction, nor make it recently used).
	h, err := e.cache.OpenQuiet(id)
	if err != nil {
		return checkSkipped, nil, 0, nil // evicted or dropped meanwhile
	}
	defer h.Close()
	fi, err := h.File().Stat()
	if err != nil {
		return checkSkipped, nil, 0, err
	}
	got, herr := hashFile(h.File(), f.Size, pace)
	if errors.Is(herr, context.Canceled) {
		return checkSkipped, nil, 0, herr
	}
	switch {
	case herr == nil && fi.Size() == f.Size && got == f.MD5:
		if _, ok := e.integrity.lookup(id); ok && e.cache.Current(id, h) {
			e.integrity.forget(id) // put right behind tapefs's back
		}
		return checkGood, nil, f.Size, nil
	case herr != nil && got == "":
		return checkSkipped, nil, 0, fmt.Errorf("read cached object of %s (batch %d): %w", f.Path, f.Batch, herr)
	}
	if !e.cache.Current(id, h) {
		return checkSkipped, nil, 0, nil // replaced while it was read: not the one that is cached
	}
	if fi.Size() != f.Size {
		got = fmt.Sprintf("%s (%d of %d bytes)", got, fi.Size(), f.Size)
	}
	d := &DamageError{FileID: f.ID, Batch: b.ID, Workspace: b.Workspace, Path: f.Path, Want: f.MD5, Got: got}
	action := e.objectDamaged(f, b, h, d, via)
	return checkDamaged, &DamageReport{FileID: f.ID, Batch: b.ID, Workspace: b.Workspace, Path: f.Path, Want: f.MD5, Got: got, Action: action}, f.Size, nil
}

// objectDamaged deals with a damaged object read through h and returns
// what was done, for reports. A file on tape loses the object, which is
// recalled again; the only copy of a file not on tape is kept and its
// batch FAILED. Either way an event names the file.
func (e *Engine) objectDamaged(f catalog.File, b catalog.Batch, h *cache.Handle, d *DamageError, via string) string {
	if len(f.Copies) > 0 {
		dropped, err := e.cache.RemoveDamaged(f.ID, h)
		if err != nil {
			e.log.Error().Err(err).Uint64("batch", b.ID).Str("workspace", b.Workspace).Uint64("file", f.ID).Msg("a damaged cached object could not be dropped")
		}
		if !dropped {
			return "not dropped: the object changed while it was checked"
		}
		e.integrity.forget(f.ID)
		action := "dropped; the file is read from tape from now on"
		if b.State != catalog.Deleted {
			if _, err := e.requestRecalls([]catalog.File{f}); err == nil {
				action = fmt.Sprintf("dropped and recalled from %s", f.Copies[0].VOLSER)
			} else {
				action = fmt.Sprintf("dropped; recall not queued: %v", err)
			}
		}
		e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: b.ID, VOLSER: f.Copies[0].VOLSER, Kind: EvDamaged,
				Message: fmt.Sprintf("%s found by %s: %s", d.Error(), via, action)})
		}), "an event of the log (the failure above says what happened)", nil)
		return action
	}
	ident, _ := h.File().Stat()
	action := fmt.Sprintf("kept (the only copy: the file is not on tape yet); batch %d FAILED", b.ID)
	if e.integrity.remember(d, ident) {
		return action + " (reported before)"
	}
	e.failBatch(b, EvDamaged, fmt.Sprintf("%s found by %s; it is not on tape yet, so the damaged copy is kept in %s and the batch cannot be written to tape; put the file again from its source",
		d.Error(), via, e.cache.ObjectPath(f.ID)))
	return action
}

// VerifyCache hashes the complete cached objects in scope against the md5
// recorded at sealing, at full speed, and deals with damage as the scrub
// does.
func (e *Engine) VerifyCache(ctx context.Context, scope VerifyScope) (VerifyReport, error) {
	var ids []uint64
	if scope.Batch != 0 {
		var b catalog.Batch
		if err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			b, err = tx.Batch(scope.Batch)
			return err
		}); err != nil {
			return VerifyReport{}, err
		}
		if scope.Workspaces != nil && !scope.Workspaces[b.Workspace] {
			return VerifyReport{}, fmt.Errorf("batch %d: %w", scope.Batch, catalog.ErrNotFound)
		}
		if err := e.eachDataFile(b, func(f catalog.File) error {
			ids = append(ids, f.ID)
			return nil
		}); err != nil {
			return VerifyReport{}, err
		}
	} else {
		objs := e.cache.Objects()
		_ = e.cat.View(func(tx *catalog.Tx) error {
			ids = ids[:0] // it may collect before it reads: safe to run again
			batchWS := map[uint64]string{}
			for _, o := range objs {
				if scope.Workspaces == nil {
					ids = append(ids, o.ID)
					continue
				}
				f, err := tx.File(o.ID)
				if err != nil {
					continue
				}
				ws, ok := batchWS[f.Batch]
				if !ok {
					b, err := tx.Batch(f.Batch)
					if err != nil {
						continue
					}
					ws, batchWS[f.Batch] = b.Workspace, b.Workspace
				}
				if scope.Workspaces[ws] {
					ids = append(ids, o.ID)
				}
			}
			return nil
		})
	}
	// A batch still SEALING has no md5 to check against yet: wait for it
	// (it is being computed from these very objects) rather than skip.
	for _, id := range ids {
		if _, err := e.Checksum(ctx, id); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return VerifyReport{}, err
		}
	}
	var (
		mu     sync.Mutex
		rep    VerifyReport
		first  error
		next   atomic.Int64
		wg     sync.WaitGroup
		cancel = func(int) error { return ctx.Err() }
	)
	for w := 0; w < e.cfg.HashWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) || ctx.Err() != nil {
					return
				}
				res, dmg, n, err := e.checkObject(ids[i], "tapefs verify", cancel)
				mu.Lock()
				switch {
				case err != nil && first == nil:
					first = err
				case res == checkSkipped:
					if _, ok := e.cache.Lookup(ids[i]); ok {
						rep.Skipped++
					}
				default:
					rep.Objects++
					rep.Bytes += n
					if dmg != nil {
						rep.Damaged = append(rep.Damaged, *dmg)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, first
}

// scrubLoop re-hashes every cached object, one pass after another, reading
// at most ScrubRate bytes per second; a pass starts at most once per
// ScrubInterval. It is the only check of objects read by the kernel
// (passthrough), which never asks the daemon.
func (e *Engine) scrubLoop() {
	// The memory of kept damaged objects is lost with the last run: the
	// only copies in FAILED batches are checked again first, whatever the
	// rate, so they are refused to readers again at once.
	e.recheckFailed()
	if e.cfg.ScrubRate <= 0 {
		return
	}
	// Not at once: a daemon starting has recovery and the recalls of the
	// last run to do first.
	if !e.sleep(min(e.cfg.ScrubInterval, time.Minute)) {
		return
	}
	for {
		start := time.Now()
		e.scrubPass()
		if !e.sleep(max(e.cfg.ScrubInterval-time.Since(start), 100*time.Millisecond)) {
			return
		}
	}
}

// recheckFailed hashes the cached objects of FAILED batches' files that
// are not on tape: where a damaged only copy is kept.
func (e *Engine) recheckFailed() {
	var failed []catalog.Batch
	_ = e.cat.View(func(tx *catalog.Tx) error {
		var err error
		failed, err = tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.Failed}})
		return err
	})
	for _, b := range failed {
		_ = e.eachDataFile(b, func(f catalog.File) error {
			if e.ctx.Err() != nil {
				return e.ctx.Err()
			}
			if len(f.Copies) == 0 {
				_, _, _, _ = e.checkObject(f.ID, "the check of FAILED batches at start", func(int) error { return e.ctx.Err() })
			}
			return nil
		})
	}
}

// scrubMinCharge is what one object costs the scrub's budget at least, so
// a cache of many tiny objects is not re-read thousands of times a second.
const scrubMinCharge = 64 << 10

func (e *Engine) scrubPass() {
	rate := float64(e.cfg.ScrubRate)
	t0 := time.Now()
	var spent int64
	pace := func(n int) error {
		spent += int64(n)
		due := t0.Add(time.Duration(float64(spent) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 && !e.sleep(d) {
			return context.Canceled
		}
		return e.ctx.Err()
	}
	objects, damaged := 0, 0
	var bytes int64
	// A page of the cache's objects at a time: the pass takes hours over
	// a large cache, and a list of every object would be held that long.
	var page []cache.ObjectInfo
	for after := uint64(0); ; after = page[len(page)-1].ID {
		if page = e.cache.ObjectsAfter(after, scrubPageSize); len(page) == 0 {
			break
		}
		if !e.scrubPage(page, pace, &objects, &damaged, &bytes) {
			return
		}
	}
	e.log.Debug().Int("objects", objects).Int64("bytes", bytes).Int("damaged", damaged).Dur("took", time.Since(t0)).Msg("scrub pass done")
}

// scrubPageSize is how many objects the scrub lists at a time.
const scrubPageSize = 10_000

// scrubPage checks the objects of one page; false when the pass must stop.
func (e *Engine) scrubPage(page []cache.ObjectInfo, pace func(int) error, objects, damaged *int, bytes *int64) bool {
	for _, o := range page {
		if e.ctx.Err() != nil {
			return false
		}
		if o.Partial {
			continue
		}
		res, _, n, err := e.checkObject(o.ID, "the background scrub", pace)
		if errors.Is(err, context.Canceled) {
			return false
		}
		if err != nil {
			e.log.Warn().Err(err).Uint64("file", o.ID).Msg("scrub: cached object not checked")
		}
		if res != checkSkipped {
			*objects++
			*bytes += n
			if pace(max(scrubMinCharge-int(n), 0)) != nil {
				return false
			}
		}
		if res == checkDamaged {
			*damaged++
		}
	}
	return true
}

// migrationDamaged deals with a migration stopped by a damaged member: its
// batch goes FAILED at once (retrying cannot mend it) with the reason and
// an event, and keeps its data; the other batches of the flush go back to
// the queue and are written again right away without it. The aggregate
// holding the damaged member was never committed.
func (e *Engine) migrationDamaged(batches []catalog.Batch, d *DamageError) {
	now := e.now()
	retry := min(e.cfg.Backoff<<min(e.cfg.MaxAttempts, 10), time.Hour)
	e.integrity.remember(d, d.ident)
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		jobs, err := tx.Jobs(catalog.JobMigrate)
		if err != nil {
			return err
		}
		for _, b := range batches {
			cur, err := tx.Batch(b.ID)
			if err != nil || cur.State.OnTape() {
				continue
			}
			if b.ID != d.Batch {
				if cur.State == catalog.Syncing {
					cur.State = catalog.Cached
					if err := tx.PutBatch(cur); err != nil {
						return err
					}
				}
				continue
			}
			cur.Attempts++
			reason := fmt.Sprintf("%s: it was not written to tape; the damaged copy is kept in %s; put the file again from its source", d.Error(), e.cache.ObjectPath(d.FileID))
			if err := putRetry(tx, cur, catalog.Failed, reason, jobs, now.Add(retry)); err != nil {
				return err
			}
			if err := pl.record(tx, catalog.Event{Time: now, Workspace: b.Workspace, Batch: b.ID, Kind: EvDamaged, State: catalog.Failed,
				Message: fmt.Sprintf("batch %d FAILED: migration found %s", b.ID, reason)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.log.Error().Err(err).Uint64("batch", d.Batch).Msg("migration found a damaged object and the failure could not be recorded")
	}
	e.wakeMigration()
}

// withoutDamaged drops from a flush the jobs of batches that hold a kept
// damaged object still damaged, so one bad file does not cost the other
// batches of the workspace their aggregate at every retry. Each is hashed
// again first: an object put right lets its batch go.
func (e *Engine) withoutDamaged(jobs []catalog.Job) []catalog.Job {
	bad := e.integrity.batches()
	if len(bad) == 0 {
		return jobs
	}
	out := jobs[:0:0]
	var postponed []catalog.Job
	for _, j := range jobs {
		still := false
		for _, id := range bad[j.Batch] {
			if res, _, _, _ := e.checkObject(id, "migration", nil); res == checkDamaged {
				still = true
			}
		}
		if still {
			postponed = append(postponed, j)
			continue
		}
		out = append(out, j)
	}
	if len(postponed) > 0 {
		// Still damaged (and reported already): the next retry waits as
		// long as the first did.
		next := e.now().Add(min(e.cfg.Backoff<<min(e.cfg.MaxAttempts, 10), time.Hour))
		err := e.cat.Update(func(tx *catalog.Tx) error {
			for _, j := range postponed {
				j.Attempts++
				j.NotBefore = next
				if err := tx.PutJob(j); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			e.log.Error().Err(err).Msg("migration: a batch with a damaged object could not be postponed")
		}
		for _, j := range postponed {
			e.log.Info().Uint64("batch", j.Batch).Time("retry", next).Msg("migration: batch still holds a damaged object; not written")
		}
	}
	return out
}

// copyChecked writes a member's data from its open cache object and
// returns the md5 of the bytes that went to tape. Small members are read
// once into memory, hashed and written from there; large ones go to tape
// inside the kernel (copy_file_range) while another goroutine hashes the
// same file with pread — the second read is served by the page cache the
// first one filled, so migration still reads the disk once.
func copyChecked(aw *tape.AggregateWriter, m tape.Member, f *os.File, buf []byte) (int64, string, error) {
	if m.Size <= int64(len(buf)) {
		n, err := f.ReadAt(buf[:m.Size], 0)
		if err != nil && !(errors.Is(err, io.EOF) && int64(n) == m.Size) {
			// Short: Add reports the member as it always has.
			off, aerr := aw.Add(m, &shortReader{buf[:n], err})
			return off, "", aerr
		}
		sum := md5.Sum(buf[:n])
		off, err := aw.Add(m, bytesReader(buf[:n]))
		return off, hex.EncodeToString(sum[:]), err
	}
	var stop atomic.Bool
	type result struct {
		sum string
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := hashFile(f, m.Size, func(int) error {
			if stop.Load() {
				return context.Canceled
			}
			return nil
		})
		done <- result{sum, err}
	}()
	off, err := aw.Add(m, f)
	if err != nil {
		stop.Store(true)
		<-done
		return 0, "", err
	}
	r := <-done
	if r.err != nil {
		return 0, "", fmt.Errorf("hash %s: %w", m.Path, r.err)
	}
	return off, r.sum, nil
}

// shortReader gives what a short read got, then its error.
type shortReader struct {
	b   []byte
	err error
}

func (s *shortReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, s.err
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &shortReader{b: b, err: io.EOF} }

// openCheck is what an open through the daemon checks of a cached object:
// that it has the file's size (cheap: one fstat). Hashing every read would
// cap cached reads at md5's speed, well below the disk's, and reads the
// kernel serves itself (passthrough) never reach the daemon anyway; the
// content is checked by migration, recall, the scrub and tapefs verify.
// A wrong size is damage: the object of a file on tape is dropped (the
// caller then recalls), the only copy of one that is not is kept and the
// open fails.
func (e *Engine) openCheck(f catalog.File, h *cache.Handle) (ok bool, err error) {
	fi, err := h.File().Stat()
	if err != nil {
		return false, err
	}
	if fi.Size() == f.Size {
		return true, nil
	}
	var b catalog.Batch
	_ = e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(f.Batch)
		return err
	})
	d := &DamageError{FileID: f.ID, Batch: f.Batch, Workspace: b.Workspace, Path: f.Path, Want: f.MD5,
		Got: fmt.Sprintf("? (%d of %d bytes)", fi.Size(), f.Size)}
	e.objectDamaged(f, b, h, d, "an open through the mount")
	if len(f.Copies) == 0 {
		return false, d
	}
	return false, nil
}

// mediumMessage words a recall failure for its event: a cartridge that
// cannot give back a tape file is named with the file.
func mediumMessage(path string, err error) string {
	var me *tape.MediumError
	if errors.As(err, &me) {
		return fmt.Sprintf("recall of %s failed: cartridge %s cannot give back tape file %d (%v); the file cannot be read until the cartridge is restored",
			path, me.VOLSER, me.TapeFile, me.Err)
	}
	return fmt.Sprintf("recall of %s failed: %v", path, err)
}
