package archive

// The recall scheduler. Reads through the mount arrive one file at a time
// per reader and in no order, yet tape wants one mount per cartridge and
// forward-only positioning. The scheduler gets there with four rules:
//
//  1. Collect before mounting: a cartridge that is not in a drive is
//     mounted only once requests have stopped arriving for RecallLinger
//     (a quiet moment), or after lingerCap × RecallLinger at most, so that
//     readers started together share one mount per cartridge.
//  2. A pass stays open: a cartridge pass serves its requests in tape order
//     from where the head is (an elevator), and when none is left it keeps
//     its drive for RecallLinger in case more come (the next file of a
//     reader) — unless a cartridge with requests waits for a drive.
//  3. Never unload busy: passes are started only into free drive slots and
//     keep their drive while they have requests, so a cartridge with queued
//     requests is never unloaded for another. The next cartridge is the one
//     with reads waiting, of the workspace served least recently (fairness),
//     with the most requests.
//  4. Stage ahead: several files of one batch opened within a short time
//     are a traversal (cp -r, rsync, xargs -P cat); the rest of the batch is
//     queued in tape order as requests staged ahead, within the cache's free
//     space. They ride along with the passes that reads cause (they never
//     cause a mount by themselves), they never evict (cache.BeginStageAhead)
//     and give their space back to a read that needs it, and they are
//     dropped when the traversal stops opening files.

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

const (
	// lingerCap bounds the wait for a quiet moment: a steady stream of
	// requests (an indexer) still gets its mounts after lingerCap × linger.
	lingerCap = 10
	// Reads that waited starveAfter × linger for a drive take it from a
	// pass that only stages ahead.
	starveAfter = 60
	// traversalFiles distinct files of one batch opened within
	// traversalWindow × linger make a traversal.
	traversalFiles  = 3
	traversalWindow = 15
	// A traversal that opens no file for traversalIdle × linger has stopped:
	// what it staged ahead and nobody read yet is dropped from the queue.
	traversalIdle = 15
	// keepFreeShare of the cache is never taken by staging ahead: reads
	// that start while a traversal is staged find room without eviction.
	keepFreeShare = 10
)

// errAheadStopped ends requests staged ahead of a traversal that stopped.
var errAheadStopped = errors.New("staging ahead stopped: the traversal stopped reading")

// recallReq is one shared recall of a file's data: every reader and every
// Recall call for the same data ID waits on the same request.
type recallReq struct {
	file    catalog.File // the data owner
	copy    catalog.Copy
	ws      string // workspace of the file's batch, for fairness
	queued  time.Time
	jobID   uint64        // the catalog job that makes the recall survive a restart (guarded by recallQueue.mu)
	started chan struct{} // closed once the partial object exists (or the request ended)
	done    chan struct{} // closed when the request ended; err says how
	err     error
	once    sync.Once

	// Guarded by recallQueue.mu.
	ahead   bool                  // staged ahead of a traversal; nobody asked for it yet
	trav    *traversal            // the traversal that staged it ahead
	partial *cache.Partial        // while it is staged, so a reader joining promotes it
	counted bool                  // counted in the stats' queue (not ahead)
	tried   map[catalog.Copy]bool // copies that failed (failover.go)
	ended   bool                  // recallDone took it: its job (if any) is being deleted
	waited  bool                  // a reader waits for it: never held back by RecallWorkspaceBytes (guard.go)
	asked   time.Time             // when a request staged ahead was asked for (promoted); zero: queued says
	charged bool                  // its bytes count in its workspace's unread bytes (guard.go)
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

// before orders requests in tape order.
func (r *recallReq) before(o *recallReq) bool {
	return tapeBefore(r.copy.TapeFile, r.copy.Offset, o.copy.TapeFile, o.copy.Offset)
}

func tapeBefore(fa int, oa int64, fb int, ob int64) bool {
	if fa != fb {
		return fa < fb
	}
	return oa < ob
}

// recallQueue holds pending and in-flight recalls.
type recallQueue struct {
	mu       sync.Mutex
	byID     map[uint64]*recallReq      // pending and in flight
	pending  map[string][]*recallReq    // by VOLSER, in tape order, not yet taken by a pass
	demand   map[string]int             // pending requests per VOLSER that are not staged ahead
	fifo     []*recallReq               // FCFS mode only: arrival order
	passes   map[string]*passState      // cartridges with a pass (acquiring, serving or holding)
	wsLast   map[string]time.Time       // when a workspace last got a pass started for it
	travs    map[uint64]*traversal      // by batch
	batchWS  map[uint64]string          // workspace of each batch recalled from
	arrival  time.Time                  // of the newest request: mounts wait for a quiet moment
	wantMore bool                       // a cartridge with reads waiting has no drive: holding passes end
	starving bool                       // ... and they waited starveAfter: passes staging ahead only end too
	ahead    int64                      // bytes of pending requests staged ahead (not yet reserved in the cache)
	unread   map[string]*wsUnread       // per workspace: recalled bytes nobody read yet (guard.go)
	plan     atomic.Pointer[recallPlan] // the published ETA estimate (eta.go)
	gen      atomic.Uint64              // bumped when what was asked for changes (eta.go)
	asked    sync.Map                   // data IDs reads or Recall asked for and not yet done (eta.go)
	planWake chan struct{}
	wake     chan struct{}
	closed   bool
}

// passState is a cartridge pass as the scheduler sees it.
type passState struct {
	wake chan struct{} // new requests for the cartridge, or a drive is wanted
	ws   string        // the workspace it was started for (RecallWorkspaceDrives)

	// For the ETA (eta.go) and fairness (guard.go); guarded by recallQueue.mu.
	started time.Time  // when the scheduler started it (it then acquires: mounts)
	drive   int        // the drive it holds; -1 while it acquires
	cur     *recallReq // being staged
	curAt   time.Time  // when cur was taken
	curFrom [2]int64   // head position (tape file, offset) when cur was taken
	// cutoff, once set, closes the pass to requests queued after it:
	// another workspace waits for a drive (guard.go).
	cutoff time.Time
}

func newRecallQueue() *recallQueue {
	return &recallQueue{
		byID: map[uint64]*recallReq{}, pending: map[string][]*recallReq{}, demand: map[string]int{},
		passes: map[string]*passState{}, wsLast: map[string]time.Time{}, travs: map[uint64]*traversal{},
		batchWS: map[uint64]string{}, unread: map[string]*wsUnread{}, wake: make(chan struct{}, 1),
		planWake: make(chan struct{}, 1),
	}
}

func (q *recallQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for _, r := range q.byID {
		r.finish(errors.New("tapefs is shutting down; the recall resumes at the next start"))
	}
	for _, p := range q.passes {
		p.poke()
	}
}

func (q *recallQueue) signal() { poke(q.wake) }

func (p *passState) poke() { poke(p.wake) }

// passRank orders the cartridges waiting for a pass. The scheduler and
// the estimate (eta.go) share it, so the estimate replays the real order.
type passRank struct {
	demand int       // reads waiting (not staging ahead)
	all    int       // every schedulable request for the cartridge
	oldest time.Time // the oldest read's queue time
	wsLast time.Time // last pass of the workspace waiting longest for one
}

// before: cartridges with reads waiting first, then the workspace served
// least recently (fairness), more reads, more requests, older requests.
func (a passRank) before(b passRank) bool {
	if (a.demand > 0) != (b.demand > 0) {
		return a.demand > 0
	}
	if !a.wsLast.Equal(b.wsLast) {
		return a.wsLast.Before(b.wsLast)
	}
	if a.demand != b.demand {
		return a.demand > b.demand
	}
	if a.all != b.all {
		return a.all > b.all
	}
	return a.oldest.Before(b.oldest)
}

// waitWake waits until wake is poked or, when next > 0, next has passed;
// false when the engine stops.
func (e *Engine) waitWake(wake <-chan struct{}, next time.Duration) bool {
	var expired <-chan time.Time
	if next > 0 {
		timer := time.NewTimer(next)
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case <-e.ctx.Done():
	case <-wake:
	case <-expired:
	}
	return e.ctx.Err() == nil
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// addLocked queues r for its cartridge, keeping tape order.
func (q *recallQueue) addLocked(r *recallReq) {
	v := r.copy.VOLSER
	rs := q.pending[v]
	i := sort.Search(len(rs), func(i int) bool { return r.before(rs[i]) })
	rs = append(rs, nil)
	copy(rs[i+1:], rs[i:])
	rs[i] = r
	q.pending[v] = rs
	if r.ahead {
		q.ahead += r.file.Size
	} else {
		q.demand[v]++
		q.arrival = time.Now() // staging ahead queues in bulk: only reads say requests are still coming
	}
	if p := q.passes[v]; p != nil {
		p.poke()
	}
}

// removeLocked takes pending request i of cartridge v out of the queue.
func (q *recallQueue) removeLocked(v string, i int) *recallReq {
	rs := q.pending[v]
	r := rs[i]
	rs = append(rs[:i], rs[i+1:]...)
	if len(rs) == 0 {
		delete(q.pending, v)
	} else {
		q.pending[v] = rs
	}
	if r.ahead {
		q.ahead -= r.file.Size
	} else {
		q.demand[v]--
		if q.demand[v] == 0 {
			delete(q.demand, v)
		}
	}
	return r
}

// errNoCopy: the file has no tape copy (it is not on tape yet, and not in the cache).
var errNoCopy = errors.New("no tape copy")

// requestRecalls queues recalls of data-owning files and returns their
// shared requests. Files already cached return no request. New requests
// are recorded as jobs so a restart resumes them.
//
// A request is queued before its job is written: a pass already at work on
// the cartridge must see it at once, in its place in tape order, not after
// a catalog commit during which the head moves past it.
func (e *Engine) requestRecalls(files []catalog.File) ([]*recallReq, error) {
	q := e.recalls
	ws := e.workspacesOf(files)
	bad := e.badCopies()
	var fresh, promoted []*recallReq
	out := make([]*recallReq, 0, len(files))
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, errors.New("tapefs is shutting down")
	}
	for _, f := range files {
		if r := q.byID[f.ID]; r != nil {
			if r.ahead {
				// Staged ahead, and now asked for: a read waits on it.
				e.promoteLocked(r)
				promoted = append(promoted, r)
			}
			out = append(out, r)
			continue
		}
		if info, ok := e.cache.Lookup(f.ID); ok && info.Whole() {
			continue // cached, or recalled and only its commit left
		}
		c, ok := e.recallCopy(&f, bad)
		if !ok {
			q.mu.Unlock()
			return nil, fmt.Errorf("file %s of batch %d: %w and no cached object", f.Path, f.Batch, errNoCopy)
		}
		r := &recallReq{file: f, copy: c, ws: ws[f.Batch], queued: time.Now(), started: make(chan struct{}), done: make(chan struct{}), counted: true}
		q.byID[f.ID] = r
		if e.cfg.FCFS {
			q.fifo = append(q.fifo, r)
		} else {
			q.addLocked(r)
		}
		fresh = append(fresh, r)
		out = append(out, r)
	}
	q.mu.Unlock()
	if len(fresh) > 0 {
		e.stats.addQueued(len(fresh))
	}
	if len(fresh)+len(promoted) == 0 {
		return out, nil
	}
	e.askedFor(append(fresh, promoted...))
	q.signal()
	jobs := map[*recallReq]uint64{}
	err := e.cat.Update(func(tx *catalog.Tx) error {
		for _, r := range append(fresh, promoted...) {
			j, err := tx.AddJob(catalog.Job{Kind: catalog.JobRecall, Batch: r.file.Batch, File: r.file.ID, Created: e.now(), Owner: e.jobOwner()})
			if err != nil {
				return err
			}
			jobs[r] = j.ID
		}
		return nil
	})
	if err != nil {
		// Not persisted: the recall still runs now, only a restart would forget it.
		e.log.Error().Err(err).Msg("recall jobs not recorded")
		return out, nil
	}
	var finished []uint64
	q.mu.Lock()
	for r, id := range jobs {
		if r.ended || r.jobID != 0 { // served meanwhile, or recorded by another call
			finished = append(finished, id)
		} else {
			r.jobID = id
		}
	}
	q.mu.Unlock()
	if len(finished) > 0 {
		e.unrecorded(e.cat.Update(func(tx *catalog.Tx) error {
			for _, id := range finished {
				if err := tx.DeleteJob(id); err != nil {
					return err
				}
			}
			return nil
		}), "the end of finished recall jobs (a restart queues them again: a second recall, no loss)", nil)
	}
	return out, nil
}

// workspacesOf returns the workspace of each batch of files (for fairness),
// from a small map kept by the queue.
func (e *Engine) workspacesOf(files []catalog.File) map[uint64]string {
	q := e.recalls
	out := map[uint64]string{}
	var missing []uint64
	q.mu.Lock()
	for _, f := range files {
		if w, ok := q.batchWS[f.Batch]; ok {
			out[f.Batch] = w
		} else if _, seen := out[f.Batch]; !seen {
			out[f.Batch] = ""
			missing = append(missing, f.Batch)
		}
	}
	q.mu.Unlock()
	if len(missing) == 0 {
		return out
	}
	_ = e.cat.View(func(tx *catalog.Tx) error {
		for _, id := range missing {
			if b, err := tx.Batch(id); err == nil {
				out[id] = b.Workspace
			}
		}
		return nil
	})
	q.mu.Lock()
	for _, id := range missing {
		q.batchWS[id] = out[id]
	}
	q.mu.Unlock()
	return out
}

// promoteLocked turns a request staged ahead into a read's request.
func (e *Engine) promoteLocked(r *recallReq) {
	q := e.recalls
	r.ahead = false
	r.asked = time.Now()
	if r.partial != nil {
		r.partial.Promote()
	}
	v := r.copy.VOLSER
	for _, p := range q.pending[v] {
		if p == r {
			q.demand[v]++
			q.ahead -= r.file.Size
			break
		}
	}
	if !r.counted {
		r.counted = true
		e.stats.addQueued(1)
	}
}

// recallLoop starts cartridge passes when drives are free and requests are
// ready (see the rules at the top of this file).
func (e *Engine) recallLoop() {
	q := e.recalls
	var next time.Duration
	for {
		if !e.waitWake(q.wake, next) {
			return
		}
		if e.cfg.FCFS {
			if e.cfg.RecallLinger > 0 && !e.sleep(e.cfg.RecallLinger) {
				return
			}
			e.recallFCFS()
			next = 0
			continue
		}
		next = e.schedule()
	}
}

// schedule starts passes for the cartridges that are ready, best first,
// into the free drive slots, and returns when it should look again (0:
// when woken).
func (e *Engine) schedule() time.Duration {
	drives := e.lib.Drives()
	loaded := map[string]bool{}
	for _, d := range drives {
		if d.VOLSER != "" {
			loaded[d.VOLSER] = true
		}
	}
	now := time.Now()
	linger := e.cfg.RecallLinger
	q := e.recalls
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0
	}
	next := e.expireTraversalsLocked(now)
	type candidate struct {
		passRank
		volser string
		ws     string
	}
	var ready []candidate
	quiet := q.arrival.Add(linger)
	perWS := map[string]int{} // passes per workspace
	for _, p := range q.passes {
		perWS[p.ws]++
	}
	limited := func(ws string) bool {
		lim := e.cfg.RecallWorkspaceDrives
		return lim > 0 && ws != "" && perWS[ws] >= lim
	}
	for v, rs := range q.pending {
		if q.passes[v] != nil {
			continue
		}
		// Requests held back by their workspace's byte cap (guard.go)
		// do not make a pass.
		reads, all := e.schedulableLocked(rs)
		c := candidate{volser: v, passRank: passRank{demand: reads, all: all}}
		if all == 0 || c.demand == 0 && !loaded[v] {
			continue // staged ahead only: rides along with a read's mount
		}
		// The pass is started for the workspace that has waited longest
		// for one and is not at its drive limit.
		first := true
		for _, r := range rs {
			if r.ahead {
				continue
			}
			if c.oldest.IsZero() || r.queued.Before(c.oldest) {
				c.oldest = r.queued
			}
			if limited(r.ws) {
				continue
			}
			if last := q.wsLast[r.ws]; first || last.Before(c.wsLast) {
				c.wsLast, c.ws, first = last, r.ws, false
			}
		}
		if first { // only staged ahead, or every workspace at its limit
			c.ws = rs[0].ws
		}
		if c.oldest.IsZero() {
			c.oldest = rs[0].queued
		}
		// Even a loaded cartridge waits: requests that come together are
		// served in one forward sweep.
		if now.Before(quiet) {
			if capped := c.oldest.Add(lingerCap * linger); now.Before(capped) {
				wait := min(quiet.Sub(now), capped.Sub(now))
				if next == 0 || wait < next {
					next = wait
				}
				continue
			}
		}
		ready = append(ready, c)
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].before(ready[j].passRank) })
	free := len(drives) - len(q.passes)
	q.wantMore, q.starving = false, false
	for _, c := range ready {
		if limited(c.ws) {
			continue // the workspace holds its share of drives: it waits for one of its own passes
		}
		if free <= 0 {
			if c.demand > 0 {
				q.wantMore = true
				e.giveWayLocked(c.ws, c.oldest, perWS)
				// Reads waiting this long take the drive of a pass that
				// only stages ahead, however much it has left.
				if starve := c.oldest.Add(starveAfter * e.traversalBase()); now.Before(starve) {
					if wait := starve.Sub(now); next == 0 || wait < next {
						next = wait
					}
				} else {
					q.starving = true
				}
			}
			continue
		}
		free--
		perWS[c.ws]++
		p := &passState{wake: make(chan struct{}, 1), ws: c.ws, started: now, drive: -1}
		q.passes[c.volser] = p
		if c.ws != "" {
			q.wsLast[c.ws] = now
		}
		e.spawn(func() { e.cartridgePass(c.volser, p) })
	}
	if q.wantMore {
		for _, p := range q.passes {
			p.poke()
		}
	}
	return next
}

// cartridgePass mounts a cartridge once and serves its requests in tape
// order, including those that arrive while it runs or holds the drive.
func (e *Engine) cartridgePass(volser string, p *passState) {
	q := e.recalls
	defer q.signal() // a drive slot is free: schedule again
	d, err := e.lib.Acquire(e.ctx, volser)
	if err != nil {
		q.mu.Lock()
		var failed []*recallReq
		for len(q.pending[volser]) > 0 {
			failed = append(failed, q.removeLocked(volser, 0))
		}
		delete(q.passes, volser)
		q.mu.Unlock()
		for _, r := range failed {
			err := fmt.Errorf("mount %s: %w", volser, err)
			if !e.failover(r, &copyError{copy: r.copy, err: err}) {
				e.recallDone(r, err)
			}
		}
		return
	}
	defer e.lib.Release(d)
	var staged, ahead, dropped, backward int
	var prefetched map[[2]uint64]bool
	for {
		r := e.nextForPass(volser, p, d)
		if r == nil {
			break
		}
		if e.ctx.Err() != nil {
			r.finish(e.ctx.Err())
			continue
		}
		q.mu.Lock()
		isAhead, stopped := r.ahead, r.ahead && r.trav != nil && r.trav.stopped
		q.mu.Unlock()
		if stopped {
			e.recallDone(r, errAheadStopped)
			dropped++
			continue
		}
		if e.cfg.Prefetch && !isAhead {
			if prefetched == nil {
				prefetched = map[[2]uint64]bool{}
			}
			if k := [2]uint64{r.file.Batch, uint64(r.copy.TapeFile)}; !prefetched[k] {
				prefetched[k] = true
				e.prefetch(r)
			}
		}
		// The first request of a pass goes wherever it must (a cartridge
		// left loaded by a migration has its head at the end of data); any
		// later one behind the head is a locate backwards in this pass.
		if n, off := d.Position(); staged+dropped > 0 && tapeBefore(r.copy.TapeFile, r.copy.Offset, n, off) {
			backward++
			e.log.Info().Str("volser", volser).Int("head_file", n).Int64("head_offset", off).Int("file", r.copy.TapeFile).
				Int64("offset", r.copy.Offset).Bool("ahead", isAhead).Uint64("batch", r.file.Batch).Str("path", r.file.Path).
				Msg("recall behind the head: locating backwards")
		}
		err := e.stage(d, r)
		if err != nil && e.failover(r, err) {
			continue // queued again on another copy: its readers wait on
		}
		e.recallDone(r, err)
		if err == nil {
			staged++
			if isAhead {
				ahead++
			}
		}
	}
	e.stats.addPass(backward)
	e.log.Info().Str("volser", volser).Int("drive", d.Index()).Int("files", staged).Int("ahead", ahead).
		Int("dropped", dropped).Int("backward", backward).Msg("recall pass done")
}

// nextForPass returns the next request of a pass, holding the drive for
// RecallLinger when none is left; nil ends the pass (atomically with its
// removal from the scheduler's view, so no request is stranded).
func (e *Engine) nextForPass(volser string, p *passState, d tape.Drive) *recallReq {
	q := e.recalls
	var timer *time.Timer
	var deadline time.Time
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		q.mu.Lock()
		// A pass with only requests staged ahead gives its drive to reads
		// that have waited long for another cartridge. Before that it
		// finishes, even for a cartridge with more reads waiting: giving
		// way would unload this cartridge with its requests still queued,
		// and a read of one of them would mount it again.
		yield := q.demand[volser] == 0 && q.starving
		if !q.closed && !yield {
			n, off := d.Position()
			if r := e.nextAdmissibleLocked(p, volser, n, off); r != nil {
				p.drive, p.cur, p.curAt, p.curFrom = d.Index(), r, time.Now(), [2]int64{int64(n), off}
				q.mu.Unlock()
				return r
			}
		}
		hn, hoff := d.Position()
		p.drive, p.cur, p.curFrom = d.Index(), nil, [2]int64{int64(hn), hoff}
		// A pass giving way to another workspace (guard.go) ends as soon
		// as it has nothing older to serve.
		if q.closed || yield || q.wantMore || !p.cutoff.IsZero() || e.ctx.Err() != nil || !deadline.IsZero() && !time.Now().Before(deadline) {
			delete(q.passes, volser)
			q.mu.Unlock()
			return nil
		}
		q.mu.Unlock()
		if timer == nil {
			deadline = time.Now().Add(e.cfg.RecallLinger)
			timer = time.NewTimer(e.cfg.RecallLinger)
		}
		select {
		case <-p.wake:
		case <-timer.C:
		case <-e.ctx.Done():
		}
	}
}

// recallFCFS serves pending requests one at a time in arrival order, each
// with its own acquire of the cartridge: the baseline the scheduler is
// measured against.
func (e *Engine) recallFCFS() {
	for {
		q := e.recalls
		q.mu.Lock()
		if len(q.fifo) == 0 {
			q.mu.Unlock()
			return
		}
		r := q.fifo[0]
		q.fifo = q.fifo[1:]
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

// prefetch (Config.Prefetch) queues the other members of r's batch in the
// same tape file that are not cached, so the pass stages them too.
func (e *Engine) prefetch(r *recallReq) {
	var b catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(r.file.Batch)
		return err
	}); err != nil {
		return
	}
	var extra []catalog.File
	_ = e.eachDataFile(b, func(f catalog.File) error {
		if c, ok := e.readCopy(&f); ok && c.VOLSER == r.copy.VOLSER && c.TapeFile == r.copy.TapeFile {
			if _, ok := e.cache.Lookup(f.ID); !ok {
				extra = append(extra, f)
			}
		}
		return nil
	})
	if len(extra) > 0 {
		_, _ = e.requestRecalls(extra)
	}
}

// stage reads one member from tape into a partial cache object, checking
// its md5 as the bytes arrive.
func (e *Engine) stage(d tape.Drive, r *recallReq) error {
	f, c := r.file, r.copy
	q := e.recalls
	q.mu.Lock()
	ahead := r.ahead
	q.mu.Unlock()
	var p *cache.Partial
	var started bool
	var err error
	if ahead {
		p, started, err = e.cache.BeginStageAhead(f.ID, f.Size, e.keepFree())
	} else {
		p, started, err = e.cache.BeginRecall(f.ID, f.Size)
	}
	if err != nil {
		return fmt.Errorf("recall %s: %w", f.Path, err)
	}
	r.start()
	if !started {
		return nil // already cached (or another pass fills it)
	}
	if ahead {
		q.mu.Lock()
		r.partial = p
		if !r.ahead { // a reader joined between the two locks
			p.Promote()
		}
		q.mu.Unlock()
		defer func() {
			q.mu.Lock()
			r.partial = nil
			q.mu.Unlock()
		}()
	}
	if len(f.Copies) > 1 {
		// Another copy may have to serve the readers: none of these bytes
		// goes out before they are verified (failover.go).
		p.Hold()
	}
	if err := seek(d, c); err != nil {
		p.Abort(err)
		return &copyError{copy: c, bad: errors.Is(err, tape.ErrMedium), err: fmt.Errorf("recall %s: locate %s file %d offset %d: %w", f.Path, c.VOLSER, c.TapeFile, c.Offset, err)}
	}
	// The check before readers get the last bytes: the CRC32C recorded
	// with the md5 when the file has one, else the md5 itself. A file
	// checked by its CRC32C has its md5 checked too, after the readers
	// are served and before the object is committed (checkMD5Later).
	byCRC := f.CRC32C != "" && !e.cfg.RecallMD5
	tr := &tapeSide{r: io.LimitReader(d, c.Length)}
	sum, err := copyHashed(p, tr, !byCRC)
	if err == nil && p.Filled() != f.Size {
		err = fmt.Errorf("tape file %d on %s ends after %d of %d bytes", c.TapeFile, c.VOLSER, p.Filled(), f.Size)
		tr.err = err
	}
	if err != nil {
		p.Abort(err)
		err = fmt.Errorf("recall %s: %w", f.Path, err)
		if tr.err != nil {
			// The tape gave out, not the cache: another copy may serve.
			return &copyError{copy: c, bad: true, err: err}
		}
		return err
	}
	var mismatch string
	switch {
	case byCRC && sum.crc != f.CRC32C:
		mismatch = fmt.Sprintf("CRC32C mismatch for %s (batch %d) from %s file %d: tape gave %s, sealed %s", f.Path, f.Batch, c.VOLSER, c.TapeFile, sum.crc, f.CRC32C)
	case !byCRC && f.MD5 != "" && sum.md5 != f.MD5:
		mismatch = fmt.Sprintf("md5 mismatch for %s (batch %d) from %s file %d: tape gave %s, sealed %s", f.Path, f.Batch, c.VOLSER, c.TapeFile, sum.md5, f.MD5)
	}
	if mismatch != "" {
		err := e.recordMismatch(f, c, mismatch)
		p.Abort(err)
		return &copyError{copy: c, mismatch: true, bad: true, err: err}
	}
	// Readers get the last bytes now. The commit (fsync, rename,
	// directory fsync) is the cache's business, not theirs, and not the
	// drive's: the committer does it in the background while this pass
	// reads its next member (a crash before it only costs a second
	// recall: cache/commit.go).
	p.Verified()
	e.stats.addRecalled(f.Size, time.Since(r.queued), ahead)
	if byCRC && f.MD5 != "" {
		e.checkMD5Later(p, f, c)
		return nil
	}
	e.commitLater(p, f, c)
	return nil
}

// recordMismatch logs the event of a copy that does not read back as
// sealed (what says how) and returns the error that says so.
func (e *Engine) recordMismatch(f catalog.File, c catalog.Copy, what string) error {
	err := fmt.Errorf("%s; the copy is discarded", what)
	e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		b, _ := tx.Batch(f.Batch)
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: f.Batch, VOLSER: c.VOLSER, Kind: EvMD5Mismatch, Message: err.Error()})
	}), "an event of the log (the failure above says what happened)", nil)
	return err
}

// commitLater hands a verified recall to the cache's committer. A commit
// that fails drops the object (it is recalled again when read); only the
// log says so.
func (e *Engine) commitLater(p *cache.Partial, f catalog.File, c catalog.Copy) {
	done := func(err error) {
		if err != nil && !errors.Is(err, cache.ErrAborted) {
			e.log.Error().Err(err).Uint64("batch", f.Batch).Str("volser", c.VOLSER).Str("path", f.Path).
				Msg("recalled object not committed to the cache: it is recalled again when read")
		}
	}
	if gate := e.commitGate; gate != nil {
		go func() {
			<-gate
			p.CommitLater(done)
		}()
		return
	}
	p.CommitLater(done)
}

// keepFree is the cache space staging ahead leaves for reads.
func (e *Engine) keepFree() int64 { return e.cache.Stats().Limit / keepFreeShare }

// recallDone ends a request: its job is dropped (a failed recall is not
// retried by itself; the next read asks again) and waiters are woken.
// Requests staged ahead that fail or are dropped are nobody's concern:
// they leave no event.
func (e *Engine) recallDone(r *recallReq, err error) {
	q := e.recalls
	q.mu.Lock()
	ahead, counted, jobID := r.ahead, r.counted, r.jobID
	r.ended = true
	if err != nil {
		e.unchargeLocked(r)
	}
	if !ahead {
		q.asked.Delete(r.file.ID)
	}
	if q.byID[r.file.ID] == r {
		delete(q.byID, r.file.ID)
	}
	q.mu.Unlock()
	if err != nil && e.ctx.Err() == nil && !ahead {
		e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
			b, _ := tx.Batch(r.file.Batch)
			return pl.record(tx, catalog.Event{Time: e.now(), Workspace: b.Workspace, Batch: r.file.Batch, VOLSER: r.copy.VOLSER, Kind: EvRecallError,
				Message: mediumMessage(r.file.Path, err)})
		}), "an event of the log (the failure above says what happened)", nil)
	}
	if err != nil && ahead && !errors.Is(err, errAheadStopped) {
		e.log.Debug().Err(err).Uint64("batch", r.file.Batch).Str("volser", r.copy.VOLSER).Msg("staging ahead skipped a file")
	}
	if (e.ctx.Err() == nil || err == nil) && jobID != 0 {
		e.unrecorded(e.cat.Update(func(tx *catalog.Tx) error { return tx.DeleteJob(jobID) }),
			"the end of a recall job (a restart queues it again: a second recall, no loss)", func(l *zerolog.Event) *zerolog.Event {
				return l.Uint64("batch", r.file.Batch).Uint64("file", r.file.ID)
			})
	}
	if counted {
		e.stats.addDone()
	}
	if !ahead {
		e.planChanged()
	}
	r.finish(err)
}

// skipMax is the largest gap that is read through rather than located
// over: a locate costs about 10 s, reading 64 MiB at drive speed well under
// one, and the drive keeps streaming.
const skipMax = 64 << 20

// seek positions the drive at the start of a copy, reading through a short
// gap ahead in the same tape file instead of locating (members of one
// aggregate served in tape order are usually a header apart).
func seek(d interface {
	io.Reader
	Position() (int, int64)
	Locate(int, int64) error
}, c catalog.Copy) error {
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

// tapeSide remembers a failure of the tape read under a recall, to tell
// it from a failure of the cache write (copyHashed reports either).
type tapeSide struct {
	r   io.Reader
	err error
}

func (t *tapeSide) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}
