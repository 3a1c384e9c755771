package archive

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
	"github.com/tapefs/tapefs/tape"
)

// Live progress of migration. The catalog learns what is on tape once per
// tape file (at its filemark, commitAggregate), which may be gigabytes
// apart: a batch written into one tape file would sit at 0 % on tape
// until it is suddenly done. What a waiting person needs — how far the
// drives are, how fast they go now, when it will be done, and before the
// flush what it waits for — is kept here, in memory, by the flush that
// writes, and read by Status, the page and `--wait`. A flush writes one
// stream per copy (copies.go), each on its own drive: the batch's
// progress is that of all of them, as the catalog's OnTape counts every
// copy.

// Migration phases.
const (
	PhaseQueued  = "queued"  // sealed, waiting for its workspace's flush (age, size or file count)
	PhaseRetry   = "retry"   // a write failed; waiting for the backoff
	PhaseDrive   = "drive"   // in the flush; waiting for a drive or for its cartridge to be mounted
	PhaseBehind  = "behind"  // in the flush; the drives write other batches first
	PhaseWriting = "writing" // its bytes are going to tape now
)

// Migration is how far a batch that is not on tape yet is on its way.
type Migration struct {
	Phase    string
	Note     string    // the phase in words, for status, the page and --wait
	StartsAt time.Time // queued or retry: when its flush is due
	Ahead    int64     // bytes the flush writes before this batch's
	Drive    int       // the (first) drive writing it; -1: none yet
	VOLSER   string    // its cartridge
	Written  int64     // bytes of the batch on tape, or streamed to a drive by this flush, every copy counted
	Files    int64     // regular files (and hard links) of the batch written by this flush, every copy counted
	FilesAll int64     // regular files (and hard links) this flush writes of the batch, every copy counted
	Rate     float64   // bytes/s of the flush's drives over the last few seconds (0: not streaming)
	ETA      time.Time // writing: when its last byte should be written, at Rate
}

// liveChunk is how much of a large member is handed to the drive at once:
// the count (and the simulated drive's pacing) moves between chunks, and
// copy_file_range keeps its speed at this size.
const liveChunk = 4 << 20

// rateWindow is the time over which "current rate" is measured: long
// enough to span a drive's bursts, short enough that a slowdown shows.
const rateWindow = 5 * time.Second

// flushLive is the flush in progress. One mutex guards it and its
// streams: they are touched once per chunk, and read by status requests.
type flushLive struct {
	mu        sync.Mutex
	workspace string
	order     []uint64 // batches in the order they are written
	batches   map[uint64]*batchLive
	streams   map[string]*streamLive
	keys      []string // stream keys, in order
}

// streamLive is one copy stream of the flush: the drive writing it and
// the tape file being written.
type streamLive struct {
	f        *flushLive
	drive    int // -1: waiting for one
	volser   string
	streamed int64 // bytes handed to drives by this stream
	aggBase  int64 // streamed when the current tape file began
	spans    []span
	samples  []rateSample
}

type batchLive struct {
	bytes     int64 // bytes × copies: what the batch needs on tape
	copies    int
	onTape    int64 // on tape when the flush began (every copy)
	files     int64 // file members the flush writes of it
	committed int64 // bytes committed by this flush
	filesOK   int64 // file members committed by this flush
}

// span is one member of the tape file being written, in the byte
// coordinates of that tape file.
type span struct {
	batch uint64
	start int64 // aggregate offset of its header
	size  int64 // data bytes (0 for a directory, symlink or link)
	file  bool  // a regular file or a hard link: counted as a file
}

// isFileMember: a member people count as a file (a hard link is one of
// the names a user copied in).
func isFileMember(m tape.Member) bool { return m.Type == tape.MemberFile || m.Type == tape.MemberLink }

type rateSample struct {
	t time.Time
	n int64 // streamed
}

// beginFlush records the flush of workspace's batches and its streams.
func (e *Engine) beginFlush(workspace string, batches []catalog.Batch, streams []*copyStream) *flushLive {
	f := &flushLive{workspace: workspace, batches: map[uint64]*batchLive{}, streams: map[string]*streamLive{}}
	for _, b := range batches {
		f.order = append(f.order, b.ID)
		f.batches[b.ID] = &batchLive{bytes: b.Bytes * int64(b.Want()), copies: b.Want(), onTape: b.OnTape}
	}
	for _, s := range streams {
		f.keys = append(f.keys, s.key)
		f.streams[s.key] = &streamLive{f: f, drive: -1, samples: []rateSample{{t: time.Now()}}}
		for _, m := range s.members {
			if b := f.batches[m.member.Batch]; b != nil && isFileMember(m.member) {
				b.files++
			}
		}
	}
	e.liveMu.Lock()
	e.live = f
	e.liveMu.Unlock()
	return f
}

func (e *Engine) endFlush(f *flushLive) {
	e.liveMu.Lock()
	if e.live == f {
		e.live = nil
	}
	e.liveMu.Unlock()
}

func (e *Engine) liveFlush() *flushLive {
	e.liveMu.Lock()
	defer e.liveMu.Unlock()
	return e.live
}

// stream is the live record of the stream key; nil for a write that is
// not a migration (copy jobs), whose methods then do nothing.
func (f *flushLive) stream(key string) *streamLive {
	if f == nil {
		return nil
	}
	return f.streams[key]
}

// onDrive records the drive (or -1: waiting for one) and starts the rate
// afresh: the wait for a drive and its mount are not streaming.
func (s *streamLive) onDrive(drive int, volser string) {
	if s == nil {
		return
	}
	s.f.mu.Lock()
	s.drive, s.volser = drive, volser
	s.samples = append(s.samples[:0], rateSample{t: time.Now(), n: s.streamed})
	s.f.mu.Unlock()
}

// newTapeFile starts the byte count of a tape file: what an unfinished
// one had streamed is lost with it (end of tape, a failed write).
func (s *streamLive) newTapeFile() {
	if s == nil {
		return
	}
	s.f.mu.Lock()
	s.aggBase, s.spans = s.streamed, s.spans[:0]
	s.f.mu.Unlock()
}

// member records that the member m starts at offset start of the tape
// file being written.
func (s *streamLive) member(m tape.Member, start int64) {
	if s == nil {
		return
	}
	size := int64(0)
	if m.Type == tape.MemberFile {
		size = m.Size
	}
	s.f.mu.Lock()
	s.spans = append(s.spans, span{batch: m.Batch, start: start, size: size, file: isFileMember(m)})
	s.f.mu.Unlock()
}

// committed moves what a tape file held from streamed to committed.
func (s *streamLive) committed(in []migrant) {
	if s == nil {
		return
	}
	s.f.mu.Lock()
	for _, m := range in {
		if b := s.f.batches[m.member.Batch]; b != nil {
			if isFileMember(m.member) {
				b.filesOK++
			}
			if m.member.Type == tape.MemberFile {
				b.committed += m.member.Size
			}
		}
	}
	s.spans = s.spans[:0]
	s.aggBase = s.streamed
	s.f.mu.Unlock()
}

func (s *streamLive) add(n int64) {
	if n <= 0 {
		return
	}
	now := time.Now()
	s.f.mu.Lock()
	s.streamed += n
	s.samples = append(s.samples, rateSample{t: now, n: s.streamed})
	// Keep one sample older than the window, so the rate spans all of it.
	cut := 0
	for cut+1 < len(s.samples) && now.Sub(s.samples[cut+1].t) > rateWindow {
		cut++
	}
	s.samples = s.samples[cut:]
	s.f.mu.Unlock()
}

// rateLocked is the bytes per second of the last rateWindow, not the
// average since the flush began (a mount or a locate at the start would
// drag that down for the whole flush). Samples are taken as chunks
// finish, so the chunk straddling the window's start counts for its part
// inside the window. 0 when nothing reached the drive for a window (it
// locates, mounts or waits).
func (s *streamLive) rateLocked(now time.Time) float64 {
	if len(s.samples) < 2 {
		return 0
	}
	last := s.samples[len(s.samples)-1]
	if now.Sub(last.t) > rateWindow {
		return 0
	}
	from := now.Add(-rateWindow)
	i := 0
	for i < len(s.samples) && s.samples[i].t.Before(from) {
		i++
	}
	var startN float64
	startT := from
	switch {
	case i == 0:
		// Every sample is inside the window: measure from the first.
		startN, startT = float64(s.samples[0].n), s.samples[0].t
	default:
		prev, next := s.samples[i-1], s.samples[i]
		frac := float64(from.Sub(prev.t)) / float64(next.t.Sub(prev.t))
		startN = float64(prev.n) + frac*float64(next.n-prev.n)
	}
	secs := now.Sub(startT).Seconds()
	if secs < 0.2 {
		return 0
	}
	return (float64(last.n) - startN) / secs
}

// progressLocked is what batch id has on tape or streamed, in bytes and
// file members (every copy); false when the flush does not write it.
func (f *flushLive) progressLocked(id uint64) (bytes, files int64, ok bool) {
	b := f.batches[id]
	if b == nil {
		return 0, 0, false
	}
	var streamed, members int64
	for _, s := range f.streams {
		inAgg := s.streamed - s.aggBase
		for _, sp := range s.spans {
			if sp.batch != id {
				continue
			}
			got := min(max(inAgg-sp.start, 0), sp.size)
			streamed += got
			if sp.file && inAgg > sp.start && got == sp.size {
				members++
			}
		}
	}
	bytes = b.onTape + b.committed + streamed
	files = min(b.filesOK+members, b.files)
	// Only the filemark makes it tape: until the catalog says so, a batch
	// is never shown as all there.
	if bytes >= b.bytes && b.bytes > 0 {
		bytes = b.bytes - 1
	}
	return bytes, files, true
}

// writer is what the stream's tape file is written through: the drive,
// counted (liveWriter), or the drive itself for a write that is not a
// migration.
func (s *streamLive) writer(d tape.Drive) io.Writer {
	if s == nil {
		return d
	}
	return &liveWriter{d: d, s: s}
}

// liveWriter sits between the tape file's buffer and the drive: it counts
// what reaches the drive, and hands large members over in chunks so the
// count moves while one big file streams (kernel copy kept: each chunk is
// a LimitedReader over the same file).
type liveWriter struct {
	d tape.Drive
	s *streamLive
}

func (w *liveWriter) Write(p []byte) (int, error) {
	n, err := w.d.Write(p)
	w.s.add(int64(n))
	return n, err
}

func (w *liveWriter) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := w.d.(io.ReaderFrom)
	lr, limited := r.(*io.LimitedReader)
	if !ok || !limited {
		return io.Copy(writerOnly{w}, r)
	}
	var total int64
	for lr.N > 0 {
		chunk := &io.LimitedReader{R: lr.R, N: min(lr.N, liveChunk)}
		n, err := rf.ReadFrom(chunk)
		lr.N -= n
		total += n
		w.s.add(n)
		if err != nil {
			return total, err
		}
		if n == 0 {
			break // the source ended early; the aggregate writer reports it
		}
	}
	return total, nil
}

// writerOnly hides ReadFrom so io.Copy uses Write.
type writerOnly struct{ w io.Writer }

func (w writerOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// migrationOf says where a batch that is not on tape yet is on its way;
// nil for a batch on tape, deleted, sealing or without a migrate job. tx is
// the caller's open transaction, if any (see batchViewIn).
func (e *Engine) migrationOf(tx *catalog.Tx, b catalog.Batch) *Migration {
	switch b.State {
	case catalog.Cached, catalog.Syncing, catalog.Failed:
	default:
		return nil
	}
	now := time.Now()
	if f := e.liveFlush(); f != nil {
		f.mu.Lock()
		bytes, files, ok := f.progressLocked(b.ID)
		var m *Migration
		if ok {
			m = f.migrationLocked(b, bytes, files, now)
		}
		// Unlocked before queuedOf, which reads the flush too.
		f.mu.Unlock()
		if ok {
			return m
		}
	}
	return e.queuedOf(tx, b, now)
}

// leftLocked is what the flush still has to write of batch id.
func (f *flushLive) leftLocked(id uint64) int64 {
	w, _, _ := f.progressLocked(id)
	return max(f.batches[id].bytes-w, 0)
}

func (f *flushLive) migrationLocked(b catalog.Batch, written, files int64, now time.Time) *Migration {
	bl := f.batches[b.ID]
	m := &Migration{Drive: -1, Written: written, Files: files, FilesAll: bl.files}
	var drives []string
	for _, k := range f.keys {
		s := f.streams[k]
		m.Rate += s.rateLocked(now)
		if s.drive >= 0 {
			if m.Drive < 0 {
				m.Drive, m.VOLSER = s.drive, s.volser
			}
			drives = append(drives, fmt.Sprintf("%d (%s)", s.drive, s.volser))
		}
	}
	sort.Strings(drives)
	// Bytes before this batch's last byte: the batches written before it
	// and its own.
	var ahead, upTo int64
	for _, id := range f.order {
		left := f.leftLocked(id)
		upTo += left
		if id == b.ID {
			break
		}
		ahead += left
	}
	m.Ahead = ahead
	what := "files"
	if bl.copies > 1 {
		what = fmt.Sprintf("file copies (%d copies)", bl.copies)
	}
	count := fmt.Sprintf("%s of %s, %d of %d %s", human.Size(written), human.Size(bl.bytes), files, bl.files, what)
	on := "drive " + strings.Join(drives, "")
	if len(drives) > 1 {
		on = "drives " + strings.Join(drives, " and ")
	}
	switch {
	case len(drives) == 0:
		m.Phase = PhaseDrive
		m.Note = "in the flush to tape, waiting for a drive"
	case ahead > 0 && written <= bl.onTape:
		m.Phase = PhaseBehind
		m.Note = fmt.Sprintf("on %s after %s of other batches", on, human.Size(ahead))
	default:
		m.Phase = PhaseWriting
		m.Note = "writing on " + on
	}
	if m.Rate > 0 {
		eta := time.Duration(float64(upTo) / m.Rate * float64(time.Second))
		m.ETA = now.Add(eta)
		// Most telling first: a narrow terminal cuts the end.
		m.Note += fmt.Sprintf(" at %s, about %s left, %s", human.Rate(m.Rate), human.Duration(eta), count)
	} else if len(drives) > 0 {
		m.Note += fmt.Sprintf(", %s (drive positioning)", count)
	}
	return m
}

// queuedOf: the batch waits for its workspace's flush. A flush starts when
// the workspace's pending batches reach FlushBytes or FlushFiles, or the
// oldest of them is FlushAge old (migrateOnce); a failed one when its
// backoff ends.
func (e *Engine) queuedOf(in *catalog.Tx, b catalog.Batch, now time.Time) *Migration {
	m := &Migration{Drive: -1, Written: b.OnTape}
	var jobs []catalog.Job
	var pendingBytes, pendingFiles int64
	oldest := b.Sealed
	read := e.cat.View
	if in != nil {
		read = func(fn func(*catalog.Tx) error) error { return fn(in) }
	}
	_ = read(func(tx *catalog.Tx) error {
		var err error
		if jobs, err = tx.Jobs(catalog.JobMigrate); err != nil {
			return err
		}
		clock := e.now()
		for _, j := range jobs {
			if j.NotBefore.After(clock) {
				continue
			}
			ob, err := tx.Batch(j.Batch)
			if err != nil || ob.Workspace != b.Workspace {
				continue
			}
			pendingBytes += ob.Bytes - ob.OnTape
			pendingFiles += ob.Files
			if ob.Sealed.Before(oldest) {
				oldest = ob.Sealed
			}
		}
		return nil
	})
	var mine *catalog.Job
	for i := range jobs {
		if jobs[i].Batch == b.ID {
			mine = &jobs[i]
		}
	}
	if mine == nil {
		return nil
	}
	clock := e.now()
	if mine.NotBefore.After(clock) {
		m.Phase = PhaseRetry
		m.StartsAt = now.Add(mine.NotBefore.Sub(clock))
		m.Note = fmt.Sprintf("writing to tape failed (attempt %d); next try in ~%s", mine.Attempts, human.Duration(mine.NotBefore.Sub(clock)))
		return m
	}
	m.Phase = PhaseQueued
	due := pendingBytes >= e.cfg.FlushBytes || pendingFiles >= int64(e.cfg.FlushFiles)
	wait := e.cfg.FlushAge - clock.Sub(oldest)
	if due || wait <= 0 {
		m.StartsAt = now
		if f := e.liveFlush(); f != nil {
			f.mu.Lock()
			var left int64
			for _, id := range f.order {
				left += f.leftLocked(id)
			}
			f.mu.Unlock()
			m.Ahead = left
			m.Note = fmt.Sprintf("queued for tape, after the flush of workspace %s now writing (%s left)", f.workspace, human.Size(left))
			return m
		}
		m.Note = "queued for tape, writing starts now"
		return m
	}
	m.StartsAt = now.Add(wait)
	m.Note = fmt.Sprintf("queued for tape, writing starts in ~%s (batches gather for %s, or until %s or %d files wait)",
		human.Duration(wait), human.Duration(e.cfg.FlushAge), human.Size(e.cfg.FlushBytes), e.cfg.FlushFiles)
	return m
}
