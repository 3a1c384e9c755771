package archive

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// recallReq is one shared recall of a file's data: every reader and every
// Recall call for the same data ID waits on the same request.
type recallReq struct {
	file    catalog.File // the data owner
	copy    catalog.Copy
	queued  time.Time
	jobID   uint64        // the catalog job that makes the recall survive a restart
	started chan struct{} // closed once the partial object exists (or the request ended)
	done    chan struct{} // closed when the request ended; err says how
	err     error
	once    sync.Once
}

func (r *recallReq) start() {
	select {
	case <-r.started:
	default:
		close(r.started)
	}
}

func (r *recallReq) finish(err error) {
	r.once.Do(func() {
		r.err = err
		r.start()
		close(r.done)
	})
}

// recallQueue holds pending and in-flight recalls.
type recallQueue struct {
	mu      sync.Mutex
	byID    map[uint64]*recallReq // pending and in flight
	pending []*recallReq          // not yet taken by a cartridge pass
	serving map[string]bool       // cartridges with a pass in progress
	wake    chan struct{}
	closed  bool
}

func newRecallQueue() *recallQueue {
	return &recallQueue{byID: map[uint64]*recallReq{}, serving: map[string]bool{}, wake: make(chan struct{}, 1)}
}

func (q *recallQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for _, r := range q.byID {
		r.finish(errors.New("tapefs is shutting down; the recall resumes at the next start"))
	}
}

func (q *recallQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// errNoCopy: the file has no tape copy (it is not on tape yet, and not in the cache).
var errNoCopy = errors.New("no tape copy")

// requestRecalls queues recalls of data-owning files and returns their
// shared requests. Files already cached return no request. New requests
// are recorded as jobs so a restart resumes them.
func (e *Engine) requestRecalls(files []catalog.File) ([]*recallReq, error) {
	q := e.recalls
	var fresh []*recallReq
	out := make([]*recallReq, 0, len(files))
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, errors.New("tapefs is shutting down")
	}
	for _, f := range files {
		if r := q.byID[f.ID]; r != nil {
			out = append(out, r)
			continue
		}
		if info, ok := e.cache.Lookup(f.ID); ok && !info.Partial {
			continue
		}
		if len(f.Copies) == 0 {
			q.mu.Unlock()
			return nil, fmt.Errorf("file %s of batch %d: %w and no cached object", f.Path, f.Batch, errNoCopy)
		}
		r := &recallReq{file: f, copy: f.Copies[0], queued: time.Now(), started: make(chan struct{}), done: make(chan struct{})}
		q.byID[f.ID] = r
		fresh = append(fresh, r)
		out = append(out, r)
	}
	q.mu.Unlock()
	if len(fresh) > 0 {
		err := e.cat.Update(func(tx *catalog.Tx) error {
			for _, r := range fresh {
				if r.jobID != 0 {
					continue
				}
				j, err := tx.AddJob(catalog.Job{Kind: catalog.JobRecall, Batch: r.file.Batch, File: r.file.ID, Created: e.now()})
				if err != nil {
					return err
				}
				r.jobID = j.ID
			}
			return nil
		})
		if err != nil {
			// Not persisted: the recall still runs now, only a restart would forget it.
			e.log.Error().Err(err).Msg("recall jobs not recorded")
		}
		q.mu.Lock()
		q.pending = append(q.pending, fresh...)
		q.mu.Unlock()
		e.stats.addQueued(len(fresh))
		q.signal()
	}
	return out, nil
}

// recallLoop takes pending requests, groups them by cartridge and starts
// one pass per cartridge (one mount, tape order). A cartridge with a pass
// in progress gets later requests in that same pass.
func (e *Engine) recallLoop() {
	q := e.recalls
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-q.wake:
		}
		// Collect for a moment so requests arriving together share a mount.
		if e.cfg.RecallLinger > 0 && !e.sleep(e.cfg.RecallLinger) {
			return
		}
		if e.cfg.FCFS {
			e.recallFCFS()
			continue
		}
		q.mu.Lock()
		groups := map[string]bool{}
		for _, r := range q.pending {
			if !q.serving[r.copy.VOLSER] {
				groups[r.copy.VOLSER] = true
			}
		}
		vols := make([]string, 0, len(groups))
		for v := range groups {
			q.serving[v] = true
			vols = append(vols, v)
		}
		q.mu.Unlock()
		sort.Strings(vols)
		for _, v := range vols {
			e.spawn(func() { e.cartridgePass(v) })
		}
	}
}

// takePending removes and returns the pending requests for a cartridge, in
// tape order; with none left it marks the cartridge as not served.
func (e *Engine) takePending(volser string) []*recallReq {
	q := e.recalls
	q.mu.Lock()
	defer q.mu.Unlock()
	var mine, rest []*recallReq
	for _, r := range q.pending {
		if r.copy.VOLSER == volser {
			mine = append(mine, r)
		} else {
			rest = append(rest, r)
		}
	}
	q.pending = rest
	if len(mine) == 0 {
		delete(q.serving, volser)
	}
	sortTapeOrder(mine)
	return mine
}

func sortTapeOrder(rs []*recallReq) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i].copy, rs[j].copy
		if a.TapeFile != b.TapeFile {
			return a.TapeFile < b.TapeFile
		}
		return a.Offset < b.Offset
	})
}

// cartridgePass mounts a cartridge once and serves its requests in tape
// order, including those that arrive while it runs.
func (e *Engine) cartridgePass(volser string) {
	reqs := e.takePending(volser)
	if len(reqs) == 0 {
		return
	}
	d, err := e.lib.Acquire(e.ctx, volser)
	if err != nil {
		for _, r := range reqs {
			e.recallDone(r, fmt.Errorf("mount %s: %w", volser, err))
		}
		for _, r := range e.takePending(volser) {
			e.recallDone(r, fmt.Errorf("mount %s: %w", volser, err))
		}
		return
	}
	defer e.lib.Release(d)
	staged := 0
	for len(reqs) > 0 {
		if e.cfg.Prefetch {
			reqs = e.withPrefetch(reqs)
		}
		for _, r := range reqs {
			if e.ctx.Err() != nil {
				r.finish(e.ctx.Err())
				continue
			}
			e.recallDone(r, e.stage(d, r))
			staged++
		}
		reqs = e.takePending(volser)
	}
	e.log.Info().Str("volser", volser).Int("drive", d.Index()).Int("files", staged).Msg("recall pass done")
}

// recallFCFS serves pending requests one at a time in arrival order, each
// with its own acquire of the cartridge: the baseline the scheduler is
// measured against.
func (e *Engine) recallFCFS() {
	for {
		q := e.recalls
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.mu.Unlock()
			return
		}
		r := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()
		d, err := e.lib.Acquire(e.ctx, r.copy.VOLSER)
		if err != nil {
			e.recallDone(r, err)
			continue
		}
		e.recallDone(r, e.stage(d, r))
		e.lib.Release(d)
	}
}

// withPrefetch adds the other members of the same batches in the same tape
// files that are not cached, so one pass stages them too.
func (e *Engine) withPrefetch(reqs []*recallReq) []*recallReq {
	type key struct {
		batch    uint64
		tapeFile int
	}
	seen := map[key]bool{}
	var extra []catalog.File
	for _, r := range reqs {
		k := key{r.file.Batch, r.copy.TapeFile}
		if seen[k] {
			continue
		}
		seen[k] = true
		b := catalog.Batch{ID: r.file.Batch}
		_ = e.cat.View(func(tx *catalog.Tx) error {
			var err error
			b, err = tx.Batch(b.ID)
			return err
		})
		_ = e.eachDataFile(b, func(f catalog.File) error {
			if len(f.Copies) > 0 && f.Copies[0].VOLSER == r.copy.VOLSER && f.Copies[0].TapeFile == r.copy.TapeFile {
				if _, ok := e.cache.Lookup(f.ID); !ok {
					extra = append(extra, f)
				}
			}
			return nil
		})
	}
	if len(extra) == 0 {
		return reqs
	}
	if _, err := e.requestRecalls(extra); err != nil {
		return reqs
	}
	return append(reqs, e.takePending(reqs[0].copy.VOLSER)...)
}

// stage reads one member from tape into a partial cache object, checking
// its md5 as the bytes arrive.
func (e *Engine) stage(d tape.Drive, r *recallReq) error {
	f, c := r.file, r.copy
	p, started, err := e.cache.BeginRecall(f.ID, f.Size)
	if err != nil {
		return fmt.Errorf("recall %s: %w", f.Path, err)
	}
	r.start()
	if !started {
		return nil // already cached (or another pass fills it)
	}
	if err := seek(d, c); err != nil {
		p.Abort(err)
		return fmt.Errorf("recall %s: locate %s file %d offset %d: %w", f.Path, c.VOLSER, c.TapeFile, c.Offset, err)
	}
	h := md5.New()
	_, err = io.CopyBuffer(io.MultiWriter(p, h), io.LimitReader(d, c.Length), make([]byte, 1<<20))
	if err == nil && p.Filled() != f.Size {
		err = fmt.Errorf("tape file %d on %s ends after %d of %d bytes", c.TapeFile, c.VOLSER, p.Filled(), f.Size)
	}
	if err != nil {
		p.Abort(err)
		return fmt.Errorf("recall %s: %w", f.Path, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); f.MD5 != "" && sum != f.MD5 {
		err := fmt.Errorf("md5 mismatch for %s (batch %d) from %s file %d: tape gave %s, sealed %s; the copy is discarded", f.Path, f.Batch, c.VOLSER, c.TapeFile, sum, f.MD5)
		p.Abort(err)
		_ = e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			b, _ := tx.Batch(f.Batch)
			return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: f.Batch, VOLSER: c.VOLSER, Kind: EvMD5Mismatch, Message: err.Error()})
		})
		return err
	}
	if err := p.Commit(); err != nil {
		return fmt.Errorf("recall %s: %w", f.Path, err)
	}
	e.stats.addRecalled(f.Size, time.Since(r.queued))
	return nil
}

// recallDone ends a request: its job is dropped (a failed recall is not
// retried by itself; the next read asks again) and waiters are woken.
func (e *Engine) recallDone(r *recallReq, err error) {
	if err != nil && e.ctx.Err() == nil {
		_ = e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			b, _ := tx.Batch(r.file.Batch)
			return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: r.file.Batch, VOLSER: r.copy.VOLSER, Kind: EvRecallError,
				Message: mediumMessage(r.file.Path, err)})
		})
	}
	if (e.ctx.Err() == nil || err == nil) && r.jobID != 0 {
		_ = e.cat.Update(func(tx *catalog.Tx) error { return tx.DeleteJob(r.jobID) })
	}
	q := e.recalls
	q.mu.Lock()
	if q.byID[r.file.ID] == r {
		delete(q.byID, r.file.ID)
	}
	q.mu.Unlock()
	e.stats.addDone()
	r.finish(err)
}

// skipMax is the largest gap that is read through rather than located
// over: a locate costs about 10 s, reading 64 MiB at drive speed well under
// one, and the drive keeps streaming.
const skipMax = 64 << 20

// seek positions the drive at the start of a copy, reading through a short
// gap ahead in the same tape file instead of locating (members of one
// aggregate served in tape order are usually a header apart).
func seek(d tape.Drive, c catalog.Copy) error {
	if n, off := d.Position(); n == c.TapeFile && off <= c.Offset && c.Offset-off <= skipMax {
		if gap := c.Offset - off; gap > 0 {
			if _, err := io.CopyN(io.Discard, d, gap); err != nil {
				return err
			}
		}
		return nil
	}
	return d.Locate(c.TapeFile, c.Offset)
}
