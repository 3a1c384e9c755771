package archive

// Verification of the tape copies: reading every copy back from its
// cartridge and comparing it with the md5 recorded at sealing, without
// putting the bytes into the cache. A copy nobody recalls is otherwise
// never read again, so a cartridge that went bad would be found only when
// someone needs it. Two ways in:
//
//   - on demand (VerifyTape, `tapefs verify -b ID | --cartridge | --workspace`);
//   - by the tape scrub, which reads back every cartridge within
//     Config.VerifyPeriod, one cartridge at a time and only while no recall
//     or migration is waiting, so that it never holds a drive somebody
//     needs. A pass that finds work waiting gives the drive back and starts
//     over at the next quiet moment.
//
// Each cartridge is mounted once and its copies are read in tape order
// (tape file, offset), as recall passes do.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/checksum"
	"github.com/tapefs/tapefs/internal/human"
)

// TapeScope says which copies VerifyTape reads: those of one batch, of one
// cartridge, or of one workspace (any may be combined; Workspaces, if not
// nil, limits to the workspaces a caller may see).
type TapeScope struct {
	Batch      uint64
	VOLSER     string
	Workspace  string
	Workspaces map[string]bool
	// MD5 compares the md5 of every copy as well as its CRC32C. Without
	// it a copy that has a CRC32C recorded is checked by that alone (it
	// runs at memory speed; md5 runs at under a gigabyte per second per
	// core), and one sealed before tapefs recorded CRC32Cs by its md5.
	MD5 bool
	// Progress, if set, names the read-back for Engine.Progress.
	Progress string
}

// TapeDamage is one copy on tape that did not read back as sealed.
type TapeDamage struct {
	FileID    uint64
	Batch     uint64
	Workspace string
	Path      string
	VOLSER    string
	TapeFile  int
	Offset    int64
	Want      string // md5 recorded at sealing
	Got       string // md5 of what was read ("" when the read failed or only the CRC32C was compared)
	WantCRC   string // CRC32C recorded at sealing ("" for files sealed before tapefs recorded one)
	GotCRC    string // CRC32C of what was read ("" when the read failed)
	Error     string // why the copy could not be read ("" for a mismatch)
}

// TapeVerifyReport is what a verification of tape copies found.
type TapeVerifyReport struct {
	Files      int      // copies read back and compared
	Bytes      int64    // their bytes
	Cartridges []string // mounted, in the order read
	Damaged    []TapeDamage
	next       *catalog.Copy // a pass that gave its drive back: the first copy not compared
}

// tapeVerify is the tape scrub's state.
type tapeVerify struct {
	started time.Time // the baseline of cartridges never verified
	mu      sync.Mutex
	failed  int64 // damaged copies found since start (metrics)
	// resume is where the scrub of a cartridge that gave its drive back
	// goes on, so that under steady load a cartridge is still read back
	// whole, a piece at a time, instead of starting over each time.
	resume map[string]scrubMark
}

// scrubMark is how far a scrub of one cartridge got: the tape position of
// the first copy not yet compared, and what the earlier pieces found.
type scrubMark struct {
	tapeFile int
	offset   int64
	files    int
	bytes    int64
	bad      int
}

// errVerifyYield ends a scrub pass that gave its drive to waiting work.
var errVerifyYield = errors.New("tape scrub: recalls or migration waiting, drive given back")

// verifyBuffer is the size of the reads of a read-back.
const verifyBuffer = 1 << 20

// tapeCopy is one copy to read back.
type tapeCopy struct {
	file catalog.File
	ws   string
	copy catalog.Copy
}

// VerifyTape reads back the tape copies in scope, one mount per cartridge
// in tape order, and compares each with its sealed md5. Nothing is written
// to the cache. A cartridge read back whole (scope.VOLSER alone) records
// its verification time.
func (e *Engine) VerifyTape(ctx context.Context, scope TapeScope) (TapeVerifyReport, error) {
	return e.verifyTape(ctx, scope, nil, scrubMark{})
}

// verifyTape is VerifyTape; yield, if not nil, is asked now and then
// (between copies, and every yieldEvery while one streams) whether to
// stop (errVerifyYield) and give the drive back. from skips the copies
// before it (a scrub going on where it stopped) and counts what the
// earlier pieces found.
func (e *Engine) verifyTape(ctx context.Context, scope TapeScope, yield func() bool, from scrubMark) (TapeVerifyReport, error) {
	var rep TapeVerifyReport
	byVol, err := e.tapeCopies(scope)
	if err != nil {
		return rep, err
	}
	prog := e.progress.track(scope.Progress, "verify")
	defer prog.finish()
	prog.update(func(wp *WorkProgress) {
		for _, copies := range byVol {
			for _, tc := range copies {
				wp.FilesTotal++
				wp.BytesTotal += copyLength(tc)
			}
		}
	})
	vols := make([]string, 0, len(byVol))
	for v := range byVol {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	if scope.VOLSER != "" && len(vols) == 0 {
		// An empty cartridge (or one the catalog has no copy on) reads
		// back trivially; an unknown one is an error.
		known := false
		for _, c := range e.lib.Cartridges() {
			known = known || c.VOLSER == scope.VOLSER
		}
		if !known {
			return rep, fmt.Errorf("cartridge %s: %w", scope.VOLSER, ErrNotFound)
		}
	}
	for _, vol := range vols {
		copies := byVol[vol]
		sort.Slice(copies, func(i, j int) bool {
			return tapeBefore(copies[i].copy.TapeFile, copies[i].copy.Offset, copies[j].copy.TapeFile, copies[j].copy.Offset)
		})
		first := sort.Search(len(copies), func(i int) bool {
			return !tapeBefore(copies[i].copy.TapeFile, copies[i].copy.Offset, from.tapeFile, from.offset)
		})
		copies = copies[first:]
		prog.update(func(wp *WorkProgress) { wp.Cartridge = vol })
		if err := e.verifyCartridge(ctx, vol, copies, scope.MD5, &rep, yield, prog); err != nil {
			return rep, err
		}
	}
	whole := scope.VOLSER != "" && scope.Batch == 0 && scope.Workspace == "" && scope.Workspaces == nil
	if whole {
		bad := from.bad
		for _, d := range rep.Damaged {
			if d.VOLSER == scope.VOLSER {
				bad++
			}
		}
		rep.Files += from.files
		rep.Bytes += from.bytes
		now := e.now()
		err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			// Recorded even when damage was found: the damage is in the
			// events and metrics, and the scrub must not read the same
			// cartridge again at once.
			if err := tx.SetCartridgeVerified(scope.VOLSER, now, bad); err != nil {
				return err
			}
			return pl.record(tx, catalog.Event{Time: now, VOLSER: scope.VOLSER, Kind: EvTapeVerified,
				Message: fmt.Sprintf("cartridge %s read back: %d files, %s, %d damaged", scope.VOLSER, rep.Files, human.Size(rep.Bytes), bad)})
		})
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// tapeCopies lists the first copy of every data file in scope, by
// cartridge.
func (e *Engine) tapeCopies(scope TapeScope) (map[string][]tapeCopy, error) {
	var batches []catalog.Batch
	err := e.cat.View(func(tx *catalog.Tx) error {
		if scope.Batch != 0 {
			b, err := tx.Batch(scope.Batch)
			if err != nil {
				return err
			}
			batches = []catalog.Batch{b}
			return nil
		}
		var err error
		batches, err = tx.Batches(catalog.ListOptions{Workspace: scope.Workspace})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]tapeCopy{}
	for _, b := range batches {
		if scope.Workspace != "" && b.Workspace != scope.Workspace || scope.Workspaces != nil && !scope.Workspaces[b.Workspace] {
			continue
		}
		err := e.eachDataFile(b, func(f catalog.File) error {
			for _, c := range f.Copies {
				// Copies on a lost or disabled cartridge are read back
				// only when that cartridge is asked for by name.
				if scope.VOLSER == "" && !e.cartBad(c.VOLSER) || c.VOLSER == scope.VOLSER {
					out[c.VOLSER] = append(out[c.VOLSER], tapeCopy{file: f, ws: b.Workspace, copy: c})
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// verifyCartridge mounts one cartridge and reads its copies in tape order.
// A copy that does not read back is reported and the pass goes on with
// the next one: one bad spot does not hide the rest of the cartridge.
func (e *Engine) verifyCartridge(ctx context.Context, vol string, copies []tapeCopy, withMD5 bool, rep *TapeVerifyReport, yield func() bool, prog *progressTracker) error {
	d, err := e.lib.Acquire(ctx, vol)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, tc := range copies {
			e.tapeDamaged(rep, tc, streamSums{}, fmt.Sprintf("mount %s: %v", vol, err))
		}
		return nil
	}
	defer e.lib.Release(d)
	rep.Cartridges = append(rep.Cartridges, vol)
	t0 := time.Now()
	// Reading and hashing overlap: this goroutine streams the copies in
	// tape order while hashers each take a whole copy, so md5 (one core
	// does about the streaming rate of a drive) runs on several cores and
	// the drive keeps streaming.
	workers := min(max(e.cfg.HashWorkers, 1), 4)
	free := make(chan []byte, 2*workers+2)
	for range cap(free) {
		free <- make([]byte, verifyBuffer)
	}
	jobs := make(chan *hashJob)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				h := checksum.New(withMD5 || j.tc.file.CRC32C == "")
				for b := range j.chunks {
					h.Write(b)
					free <- b[:cap(b)]
				}
				j.got = sumsOf(h)
			}
		}()
	}
	var done []*hashJob
	var stop error
	for _, tc := range copies {
		if err := ctx.Err(); err != nil {
			stop = err
			break
		}
		if yield != nil && yield() {
			stop = errVerifyYield
			break
		}
		j := &hashJob{tc: tc, chunks: make(chan []byte, 4)}
		jobs <- j
		j.n, j.err = streamCopy(d, tc, free, j.chunks, throttled(yield))
		if errors.Is(j.err, errVerifyYield) {
			// Stopped inside the copy: no verdict; the next piece
			// starts with it.
			stop = errVerifyYield
			break
		}
		done = append(done, j)
		prog.update(func(wp *WorkProgress) { wp.Files++; wp.Bytes += j.n })
	}
	close(jobs)
	wg.Wait()
	var bytes int64
	for _, j := range done {
		rep.Files++
		rep.Bytes += j.n
		bytes += j.n
		switch {
		case j.err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.tapeDamaged(rep, j.tc, streamSums{}, j.err.Error())
		case !j.got.matches(&j.tc.file):
			e.tapeDamaged(rep, j.tc, j.got, "")
		}
	}
	if stop != nil {
		if len(done) < len(copies) {
			c := copies[len(done)].copy
			rep.next = &c
		}
		return stop
	}
	e.log.Info().Str("volser", vol).Int("drive", d.Index()).Int("files", len(copies)).Int64("bytes", bytes).
		Dur("took", time.Since(t0)).Msg("cartridge read back")
	return nil
}

// yieldEvery is how often a read-back streaming one copy asks whether to
// give its drive back: a copy of hundreds of GB must not hold a drive
// that recalls wait for.
const yieldEvery = time.Second

// throttled asks yield at most every yieldEvery (it reads the catalog).
func throttled(yield func() bool) func() bool {
	if yield == nil {
		return nil
	}
	next := time.Now().Add(yieldEvery)
	return func() bool {
		if now := time.Now(); now.After(next) {
			next = now.Add(yieldEvery)
			return yield()
		}
		return false
	}
}

// hashJob is one copy being read back: its bytes go to a hasher in
// chunks; n and err are the reader's, got the hasher's.
type hashJob struct {
	tc     tapeCopy
	chunks chan []byte
	n      int64
	err    error
	got    streamSums
}

// streamCopy positions the drive at one copy and sends its bytes in
// buffers taken from free to out, which it closes.
func streamCopy(d interface {
	io.Reader
	Position() (int, int64)
	Locate(int, int64) error
}, tc tapeCopy, free chan []byte, out chan<- []byte, stop func() bool) (int64, error) {
	defer close(out)
	length := copyLength(tc)
	if err := seek(d, tc.copy); err != nil {
		return 0, fmt.Errorf("locate tape file %d offset %d: %w", tc.copy.TapeFile, tc.copy.Offset, err)
	}
	var n int64
	for n < length {
		if stop != nil && stop() {
			return n, errVerifyYield
		}
		b := <-free
		want := min(int64(len(b)), length-n)
		m, err := io.ReadFull(d, b[:want])
		n += int64(m)
		if m > 0 {
			out <- b[:m]
		} else {
			free <- b
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("read %d of %d bytes from tape file %d: %w", n, length, tc.copy.TapeFile, err)
		}
	}
	return n, nil
}

// copyLength is the bytes of a copy on tape.
func copyLength(tc tapeCopy) int64 {
	if tc.copy.Length != 0 {
		return tc.copy.Length
	}
	return tc.file.Size
}

// tapeDamaged reports one bad copy and records it as an event of its
// workspace.
func (e *Engine) tapeDamaged(rep *TapeVerifyReport, tc tapeCopy, got streamSums, why string) {
	dmg := TapeDamage{FileID: tc.file.ID, Batch: tc.file.Batch, Workspace: tc.ws, Path: tc.file.Path, VOLSER: tc.copy.VOLSER,
		TapeFile: tc.copy.TapeFile, Offset: tc.copy.Offset, Want: tc.file.MD5, Got: got.md5, WantCRC: tc.file.CRC32C, GotCRC: got.crc, Error: why}
	rep.Damaged = append(rep.Damaged, dmg)
	e.tapeVerify.mu.Lock()
	e.tapeVerify.failed++
	e.tapeVerify.mu.Unlock()
	msg := fmt.Sprintf("copy of %q on %s tape file %d: md5 sealed %s, read %s", tc.file.Path, tc.copy.VOLSER, tc.copy.TapeFile, tc.file.MD5, got.md5)
	if got.md5 == "" || got.md5 == tc.file.MD5 {
		msg = fmt.Sprintf("copy of %q on %s tape file %d: CRC32C sealed %s, read %s", tc.file.Path, tc.copy.VOLSER, tc.copy.TapeFile, tc.file.CRC32C, got.crc)
	}
	if why != "" {
		msg = fmt.Sprintf("copy of %q on %s tape file %d does not read: %s", tc.file.Path, tc.copy.VOLSER, tc.copy.TapeFile, why)
	}
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: tc.ws, Batch: tc.file.Batch, VOLSER: tc.copy.VOLSER, Kind: EvTapeDamaged, Message: msg})
	})
	if err != nil {
		e.log.Error().Err(err).Uint64("batch", tc.file.Batch).Str("volser", tc.copy.VOLSER).Msg("tape damage not recorded as an event")
	}
	// With another copy to rewrite it from, the bad one is repaired
	// (failover.go); a single copy stays as it is, reported.
	for _, c := range tc.file.Copies {
		if c != tc.copy && !e.cartBad(c.VOLSER) {
			if err := e.scheduleRepairs([]*liveCopy{{file: tc.file, batch: &catalog.Batch{ID: tc.file.Batch, Workspace: tc.ws}, copy: tc.copy}}, "found by a read-back: "+msg); err != nil {
				e.log.Error().Err(err).Uint64("batch", tc.file.Batch).Str("volser", tc.copy.VOLSER).Msg("bad copy: its repair could not be queued")
			}
			return
		}
	}
}

// TapeVerifyFailures is how many damaged tape copies verification found
// since start.
func (e *Engine) TapeVerifyFailures() int64 {
	e.tapeVerify.mu.Lock()
	defer e.tapeVerify.mu.Unlock()
	return e.tapeVerify.failed
}

// CartridgesVerified returns when each cartridge was last read back whole
// (absent: never) and how many bad copies were found then.
func (e *Engine) CartridgesVerified() (map[string]time.Time, map[string]int) {
	at, bad := map[string]time.Time{}, map[string]int{}
	_ = e.cat.View(func(tx *catalog.Tx) error {
		cs, err := tx.Cartridges()
		for _, c := range cs {
			if !c.Verified.IsZero() {
				at[c.VOLSER] = c.Verified
				if c.VerifyDamaged > 0 {
					bad[c.VOLSER] = c.VerifyDamaged
				}
			}
		}
		return err
	})
	return at, bad
}

// tapeScrubTick is how often the tape scrub looks for a cartridge due.
const tapeScrubTick = time.Minute

// tapeScrubLoop runs tapeScrubStep now and then until Close.
func (e *Engine) tapeScrubLoop() {
	t := time.NewTicker(tapeScrubTick)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		if !e.leads(roleTapeVerify) {
			continue // another host keeps the schedule (roles.go)
		}
		if _, err := e.tapeScrubStep(); err != nil && !errors.Is(err, errVerifyYield) && e.ctx.Err() == nil {
			e.log.Warn().Err(err).Msg("tape scrub: cartridge not read back")
		}
	}
}

// busy says whether recalls or migration wait (or run): the tape scrub
// keeps out of their way.
func (e *Engine) busy() bool {
	if e.Stats().RecallQueue > 0 {
		return true
	}
	waiting := false
	_ = e.cat.View(func(tx *catalog.Tx) error {
		bs, err := tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.Sealing, catalog.Cached, catalog.Syncing}, Limit: 1})
		waiting = len(bs) > 0
		return err
	})
	return waiting
}

// dueCartridge picks the cartridge whose read-back is most overdue: one
// holding tape files, last verified (or, never verified, first seen by this
// engine) a period or more before now. "" when none is due.
func dueCartridge(cartridges []string, verified map[string]time.Time, started, now time.Time, period time.Duration) string {
	best, bestAt := "", time.Time{}
	for _, v := range cartridges {
		at, ok := verified[v]
		if !ok {
			at = started
		}
		if now.Sub(at) < period {
			continue
		}
		if best == "" || at.Before(bestAt) {
			best, bestAt = v, at
		}
	}
	return best
}

// tapeScrubStep reads back the most overdue cartridge, if one is due and
// nothing waits for a drive; it returns the cartridge read ("" none).
func (e *Engine) tapeScrubStep() (string, error) {
	if e.cfg.VerifyPeriod <= 0 || e.busy() {
		return "", nil
	}
	var written []string
	for _, c := range e.lib.Cartridges() {
		// A lost or disabled cartridge is not read: its copies are
		// re-created elsewhere and no longer count.
		// Nor one being repacked: the repack reads it whole, and it is
		// about to be erased.
		if c.TapeFiles > 0 && !e.cartBad(c.VOLSER) && !e.isRepacking(c.VOLSER) {
			written = append(written, c.VOLSER)
		}
	}
	verified, _ := e.CartridgesVerified()
	vol := dueCartridge(written, verified, e.tapeVerify.started, e.now(), e.cfg.VerifyPeriod)
	if vol == "" {
		return "", nil
	}
	_, err := e.scrubCartridge(vol, e.busy)
	return vol, err
}

// scrubCartridge reads back one piece of vol: from where the last piece
// stopped, until the end or until yield says to give the drive back
// (errVerifyYield; the next piece goes on from there).
func (e *Engine) scrubCartridge(vol string, yield func() bool) (TapeVerifyReport, error) {
	e.tapeVerify.mu.Lock()
	from := e.tapeVerify.resume[vol]
	e.tapeVerify.mu.Unlock()
	e.log.Info().Str("volser", vol).Int("from_tape_file", from.tapeFile).Int("files_done", from.files).Msg("tape scrub: reading the cartridge back")
	rep, err := e.verifyTape(e.ctx, TapeScope{VOLSER: vol}, yield, from)
	e.tapeVerify.mu.Lock()
	if e.tapeVerify.resume == nil {
		e.tapeVerify.resume = map[string]scrubMark{}
	}
	switch {
	case errors.Is(err, errVerifyYield):
		// Go on after the last copy compared in this piece.
		next := from
		next.files += rep.Files
		next.bytes += rep.Bytes
		next.bad += len(rep.Damaged)
		if rep.next != nil {
			next.tapeFile, next.offset = rep.next.TapeFile, rep.next.Offset
		}
		e.tapeVerify.resume[vol] = next
	case err == nil:
		delete(e.tapeVerify.resume, vol)
	}
	e.tapeVerify.mu.Unlock()
	if err != nil {
		return rep, err
	}
	if len(rep.Damaged) > 0 {
		e.log.Error().Str("volser", vol).Int("damaged", len(rep.Damaged)).Msg("tape scrub: damaged copies on the cartridge")
	}
	return rep, nil
}
