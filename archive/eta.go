package archive

// The recall estimate: when will the bytes of a queued file arrive? It is
// a replay of the scheduler (recall.go) on paper, from the queue as it
// stands and the library's timing model (tape.Model): the passes under
// way finish their cartridges in tape order; then the cartridges waiting
// for a drive, in the scheduler's order, each take the drive that comes
// free first, paying unload, robot, load, locates and reading at the
// drive's rate. Simulated seconds become wall seconds by the library's
// time scale; the wait for a quiet moment (RecallLinger) is wall time.
//
// What it does not know it leaves out: requests that will arrive later
// (they may join a pass and delay what is behind them), a pass that gives
// its drive to another workspace (guard.go), RecallWorkspaceDrives, and
// the host's own disk and hashing time (at --time-scale 0 the tape costs
// nothing and the estimate is the linger only). A request held back by
// its workspace's byte cap has no estimate: it waits for readers.

import (
	"math"
	"sort"
	"time"

	"github.com/tapefs/tapefs/tape"
)

// FileRecall is a queued recall of one file as a user sees it.
type FileRecall struct {
	Position int // place in the order the queued recalls are expected to finish, from 1
	Of       int // queued recalls (reads and Recall calls; not staging ahead)
	// ETA is the expected time until the file's last byte is in the
	// cache, from At; meaningless when Held.
	ETA time.Duration
	At  time.Time // when the estimate was made
	// Held: its workspace has RecallWorkspaceBytes unread already; it
	// starts when readers catch up.
	Held bool
}

// BatchRecall is the queued recalls of one batch.
type BatchRecall struct {
	Workspace string
	Batch     uint64
	Files     int
	Bytes     int64
	Held      int           // of Files, held back by the workspace's byte cap
	First     time.Duration // until the first of them is expected in the cache
	ETA       time.Duration // until the last of them (not counting held ones)
	At        time.Time     // when the estimate was made
}

// CartridgeRecall is the queued recalls of one cartridge.
type CartridgeRecall struct {
	VOLSER string
	Files  int
	Bytes  int64
	Drive  int           // holding it for a pass; -1 when it waits for one
	Start  time.Duration // until its pass is expected to start reading (0: under way)
	ETA    time.Duration // until its last queued file is expected in the cache
}

// RecallQueue is the recall queue with estimates, for the page and
// `tapefs status`.
type RecallQueue struct {
	At         time.Time
	Files      int
	Bytes      int64
	Held       int
	ETA        time.Duration     // until the last estimated file arrives
	Batches    []BatchRecall     // soonest done first
	Cartridges []CartridgeRecall // soonest done first
	// UnreadBytes is, per workspace with a byte cap, what its recalls
	// staged that nobody read yet; Limit is the cap (0: none).
	UnreadBytes map[string]int64
	Limit       int64
}

// recallPlan is one estimate of the whole queue.
type recallPlan struct {
	at      time.Time
	gen     uint64 // recallQueue.gen it was made at
	files   map[uint64]FileRecall
	batches map[uint64]BatchRecall
	queue   RecallQueue
}

// The estimate is made by its own goroutine (planLoop) under
// recallQueue.mu and published through an atomic pointer: the views that
// show it (fileView, batchView) run inside catalog transactions, and a
// catalog transaction must never wait for recallQueue.mu, which is held
// while the catalog is read (readCopy).
const (
	// planMaxAge: a queue that does not change is estimated again this
	// often, so the estimate follows what the drives actually do.
	planMaxAge = 500 * time.Millisecond
	// planMinGap: a storm of requests is estimated at most this often.
	planMinGap = 100 * time.Millisecond
	// planWait is how long a file's view waits for an estimate that
	// includes it, right after it was asked for.
	planWait = time.Second
	// planSettle: after a change, the estimate waits this long for more.
	planSettle = 20 * time.Millisecond
)

// askedFor records that reads or Recall calls asked for rs (not staging
// ahead): their files are staging, and the estimate must include them.
func (e *Engine) askedFor(rs []*recallReq) {
	if len(rs) == 0 {
		return
	}
	q := e.recalls
	q.mu.Lock()
	gen := q.gen.Add(1)
	for _, r := range rs {
		if !r.ended && !r.ahead {
			q.asked.Store(r.file.ID, gen)
		}
	}
	q.mu.Unlock()
	poke(q.planWake)
}

// planChanged: the queue changed; the estimate is made again soon.
func (e *Engine) planChanged() {
	e.recalls.gen.Add(1)
	poke(e.recalls.planWake)
}

// planLoop keeps the published estimate fresh while recalls are queued.
func (e *Engine) planLoop() {
	q := e.recalls
	var next time.Duration
	for {
		if !e.waitWake(q.planWake, next) {
			return
		}
		// Requests come in bursts (xargs, setfattr of many files, a
		// Recall call per file): estimate once the burst is in.
		if !e.sleep(planSettle) {
			return
		}
		next = e.refreshPlan()
	}
}

// refreshPlan estimates the queue if the published estimate is stale, and
// says when to look again (0: when woken).
func (e *Engine) refreshPlan() time.Duration {
	if e.cfg.FCFS {
		return 0
	}
	q := e.recalls
	q.mu.Lock()
	defer q.mu.Unlock()
	now, gen := time.Now(), q.gen.Load()
	if p := q.plan.Load(); p != nil {
		age := now.Sub(p.at)
		if p.gen == gen && (len(q.byID) == 0 || age < planMaxAge) {
			if len(q.byID) == 0 {
				return 0
			}
			return planMaxAge - age
		}
		if age < planMinGap {
			return planMinGap - age
		}
	}
	p := e.simulateLocked(now)
	p.gen = gen
	q.plan.Store(p)
	if len(q.byID) == 0 {
		return 0
	}
	return planMaxAge
}

// fileRecall is the queued recall of data ID id, if one was asked for. A
// file asked for a moment ago waits (up to planWait) for an estimate that
// includes it.
func (e *Engine) fileRecall(id uint64) (FileRecall, bool) {
	q := e.recalls
	v, ok := q.asked.Load(id)
	if !ok || e.cfg.FCFS {
		return FileRecall{}, false
	}
	askedGen, _ := v.(uint64)
	deadline := time.Now().Add(planWait)
	for {
		// An estimate made after the file was asked for includes it and
		// everything asked before it.
		if p := q.plan.Load(); p != nil && p.gen >= askedGen {
			fr, ok := p.files[id]
			return fr, ok // not there: ended meanwhile
		}
		if time.Now().After(deadline) {
			return FileRecall{}, false
		}
		poke(q.planWake)
		time.Sleep(5 * time.Millisecond)
	}
}

// queuedForRead says whether somebody asked for data ID id and it is
// still on its way.
func (e *Engine) queuedForRead(id uint64) bool {
	_, ok := e.recalls.asked.Load(id)
	return ok
}

// batchRecall is the queued recalls of one batch, from the last estimate.
func (e *Engine) batchRecall(batch uint64) (BatchRecall, bool) {
	p := e.recalls.plan.Load()
	if p == nil {
		return BatchRecall{}, false
	}
	b, ok := p.batches[batch]
	return b, ok
}

// RecallQueue is the recall queue with its estimates, from the last
// estimate.
func (e *Engine) RecallQueue() RecallQueue {
	q := e.recalls
	var rq RecallQueue
	if p := q.plan.Load(); p != nil {
		rq = p.queue
	}
	rq.Batches = append([]BatchRecall(nil), rq.Batches...)
	rq.Cartridges = append([]CartridgeRecall(nil), rq.Cartridges...)
	rq.Limit = e.cfg.RecallWorkspaceBytes
	if rq.Limit > 0 {
		rq.UnreadBytes = map[string]int64{}
		q.mu.Lock()
		for ws, u := range q.unread {
			rq.UnreadBytes[ws] = u.bytes
		}
		q.mu.Unlock()
	}
	return rq
}

// simDrive is a drive in the replay: when it is free (seconds from now)
// and where its head is.
type simDrive struct {
	free   float64
	volser string
	file   int
	off    int64
	pass   bool // taken by a pass under way
}

// timeModel prices library steps in wall seconds.
type timeModel struct {
	t     tape.Timing
	scale float64
	lib   tape.Library
	where map[[2]any]int64 // (volser, tape file) → absolute start
	caps  map[string]int64
}

func (m *timeModel) secs(d time.Duration) float64 { return d.Seconds() * m.scale }

func (m *timeModel) read(n int64) float64 {
	if m.t.StreamRate <= 0 {
		return 0
	}
	return float64(n) / float64(m.t.StreamRate) * m.scale
}

// mount is the cost of getting volser into d.
func (m *timeModel) mount(d *simDrive, volser string) float64 {
	switch d.volser {
	case volser:
		return 0
	case "":
		return m.secs(m.t.RobotMove + m.t.Load)
	}
	return m.secs(m.t.Unload + 2*m.t.RobotMove + m.t.Load)
}

func (m *timeModel) abs(volser string, file int, off int64) (int64, int64) {
	k := [2]any{volser, file}
	start, ok := m.where[k]
	if !ok {
		s, c, err := m.lib.Where(volser, file, 0)
		if err != nil {
			s, c = 0, 0
		}
		start = s
		m.where[k] = s
		m.caps[volser] = c
	}
	return start + off, m.caps[volser]
}

// move is the cost of positioning d at a copy: read through a short gap
// ahead in the same tape file, else locate (as seek does).
func (m *timeModel) move(d *simDrive, volser string, file int, off int64) float64 {
	if d.file == file && d.off == off {
		return 0
	}
	if d.file == file && d.off <= off && off-d.off <= skipMax {
		return m.read(off - d.off)
	}
	from, _ := m.abs(volser, d.file, d.off)
	to, capacity := m.abs(volser, file, off)
	dist := math.Abs(float64(to - from))
	s := m.t.LocateBase.Seconds()
	if capacity > 0 {
		s += m.t.LocateFull.Seconds() * dist / float64(capacity)
	}
	return s * m.scale
}

// simulateLocked replays the scheduler over the queue (see the top of the
// file).
func (e *Engine) simulateLocked(now time.Time) *recallPlan {
	q := e.recalls
	plan := &recallPlan{at: now, files: map[uint64]FileRecall{}, batches: map[uint64]BatchRecall{}}
	if len(q.byID) == 0 {
		plan.queue.At = now
		return plan
	}
	model := e.lib.Model()
	m := &timeModel{t: model.Timing, scale: model.TimeScale, lib: e.lib, where: map[[2]any]int64{}, caps: map[string]int64{}}
	drives := e.lib.Drives()
	sd := make([]*simDrive, len(drives))
	for i, d := range drives {
		sd[i] = &simDrive{volser: d.VOLSER, file: d.HeadFile, off: d.HeadOffset}
		if d.VOLSER != "" && d.HeadFile == 0 {
			sd[i].file = 1 // unknown (held): as after a load
		}
	}
	done := map[*recallReq]float64{} // request → seconds from now
	var held []*recallReq
	cartStart := map[string]float64{}
	cartDrive := map[string]int{}

	// serve runs the admissible requests of a cartridge through drive d
	// in tape order from its head, as a pass does.
	serve := func(d *simDrive, v string, rs []*recallReq, t float64) float64 {
		var todo []*recallReq
		for _, r := range rs {
			if e.admitLocked(r) {
				todo = append(todo, r)
			} else if !r.ahead {
				held = append(held, r)
			}
		}
		// Elevator: what lies at or after the head, then the rest.
		i := sort.Search(len(todo), func(i int) bool {
			return !tapeBefore(todo[i].copy.TapeFile, todo[i].copy.Offset, d.file, d.off)
		})
		for _, r := range append(append([]*recallReq(nil), todo[i:]...), todo[:i]...) {
			c := r.copy
			t += m.move(d, v, c.TapeFile, c.Offset) + m.read(c.Length)
			d.file, d.off = c.TapeFile, c.Offset+c.Length
			done[r] = t
		}
		return t
	}

	// Passes under way: the one being staged, then the rest of their
	// cartridge.
	claimed := map[int]bool{}
	for v, p := range q.passes {
		if p.drive >= 0 && p.drive < len(sd) {
			claimed[p.drive] = true
		}
		_ = v
	}
	var vols []string
	for v := range q.passes {
		vols = append(vols, v)
	}
	sort.Strings(vols)
	for _, v := range vols {
		p := q.passes[v]
		var d *simDrive
		t := 0.0
		if p.drive >= 0 && p.drive < len(sd) {
			d = sd[p.drive]
			d.volser = v
			d.file, d.off = int(p.curFrom[0]), p.curFrom[1]
			if r := p.cur; r != nil && r.ended {
				d.file, d.off = r.copy.TapeFile, r.copy.Offset+r.copy.Length // staged: the pass takes the next
			} else if r != nil {
				c := r.copy
				cost := m.move(d, v, c.TapeFile, c.Offset) + m.read(c.Length)
				t = max(0, cost-now.Sub(p.curAt).Seconds())
				d.file, d.off = c.TapeFile, c.Offset+c.Length
				if !r.ahead {
					done[r] = t
				}
			}
			cartDrive[v] = p.drive
		} else {
			// Still acquiring: the drive holding the cartridge, else an
			// empty one, else the one free longest.
			pick := -1
			for i, x := range sd {
				if claimed[i] {
					continue
				}
				if x.volser == v {
					pick = i
					break
				}
				if pick < 0 || x.volser == "" && sd[pick].volser != "" {
					pick = i
				}
			}
			if pick < 0 { // every drive claimed: it waits for the first free
				cartStart[v] = -1
				continue
			}
			claimed[pick] = true
			d = sd[pick]
			if d.volser != v {
				t = max(0, m.mount(d, v)-now.Sub(p.started).Seconds())
				d.volser, d.file, d.off = v, 1, 0
			}
			cartDrive[v] = pick
		}
		cartStart[v] = t
		d.free = serve(d, v, q.pending[v], t)
		d.pass = true
	}

	// Cartridges waiting for a pass, in the scheduler's order.
	type cand struct {
		passRank
		volser string
		ready  float64
	}
	linger := e.cfg.RecallLinger
	quiet := q.arrival.Add(linger)
	var cands []cand
	for v, rs := range q.pending {
		if q.passes[v] != nil && cartStart[v] >= 0 {
			continue
		}
		reads, all := e.schedulableLocked(rs)
		loaded := false
		for _, d := range sd {
			loaded = loaded || d.volser == v
		}
		if all == 0 || reads == 0 && !loaded {
			for _, r := range rs {
				if !r.ahead {
					held = append(held, r)
				}
			}
			continue
		}
		c := cand{volser: v, passRank: passRank{demand: reads, all: all}}
		for _, r := range rs {
			if !r.ahead && (c.oldest.IsZero() || r.queued.Before(c.oldest)) {
				c.oldest = r.queued
			}
		}
		if c.oldest.IsZero() {
			c.oldest = rs[0].queued
		}
		first := true
		for _, r := range rs {
			if last := q.wsLast[r.ws]; !r.ahead && (first || last.Before(c.wsLast)) {
				c.wsLast, first = last, false
			}
		}
		if now.Before(quiet) {
			c.ready = min(quiet.Sub(now), c.oldest.Add(lingerCap*linger).Sub(now)).Seconds()
			c.ready = max(0, c.ready)
		}
		cands = append(cands, c)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].before(cands[j].passRank) })
	for _, c := range cands {
		// The drive that can start reading it first; a drive holding it
		// saves the mount.
		best, bestT := -1, 0.0
		for i, d := range sd {
			t := max(d.free, c.ready) + m.mount(d, c.volser)
			if best < 0 || t < bestT {
				best, bestT = i, t
			}
		}
		if best < 0 {
			break // no drives
		}
		d := sd[best]
		if d.volser != c.volser {
			d.volser, d.file, d.off = c.volser, 1, 0
		}
		cartStart[c.volser], cartDrive[c.volser] = bestT, -1
		d.free = serve(d, c.volser, q.pending[c.volser], bestT)
	}

	// Rank what was estimated by arrival, then the held ones.
	type est struct {
		r *recallReq
		t float64
	}
	var ests []est
	for r, t := range done {
		if !r.ahead {
			ests = append(ests, est{r, t})
		}
	}
	sort.Slice(ests, func(i, j int) bool {
		if ests[i].t != ests[j].t {
			return ests[i].t < ests[j].t
		}
		return ests[i].r.before(ests[j].r)
	})
	of := len(ests) + len(held)
	dur := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	rq := &plan.queue
	rq.At = now
	batches := map[uint64]*BatchRecall{}
	carts := map[string]*CartridgeRecall{}
	add := func(r *recallReq, t float64, isHeld bool) {
		rq.Files++
		rq.Bytes += r.file.Size
		b := batches[r.file.Batch]
		if b == nil {
			b = &BatchRecall{Workspace: r.ws, Batch: r.file.Batch, First: -1, At: now}
			batches[r.file.Batch] = b
		}
		b.Files++
		b.Bytes += r.file.Size
		v := r.copy.VOLSER
		c := carts[v]
		if c == nil {
			c = &CartridgeRecall{VOLSER: v, Drive: -1}
			if dr, ok := cartDrive[v]; ok {
				c.Drive = dr
			}
			if s := cartStart[v]; s > 0 {
				c.Start = dur(s)
			}
			carts[v] = c
		}
		c.Files++
		c.Bytes += r.file.Size
		if isHeld {
			rq.Held++
			b.Held++
			return
		}
		rq.ETA = max(rq.ETA, dur(t))
		b.ETA = max(b.ETA, dur(t))
		if b.First < 0 || dur(t) < b.First {
			b.First = dur(t)
		}
		c.ETA = max(c.ETA, dur(t))
	}
	for i, x := range ests {
		plan.files[x.r.file.ID] = FileRecall{Position: i + 1, Of: of, ETA: dur(x.t), At: now}
		add(x.r, x.t, false)
	}
	for i, r := range held {
		if _, dup := plan.files[r.file.ID]; dup {
			continue
		}
		plan.files[r.file.ID] = FileRecall{Position: len(ests) + i + 1, Of: of, At: now, Held: true}
		add(r, 0, true)
	}
	for id, b := range batches {
		b.First = max(b.First, 0)
		rq.Batches = append(rq.Batches, *b)
		plan.batches[id] = *b
	}
	sort.Slice(rq.Batches, func(i, j int) bool {
		a, b := rq.Batches[i], rq.Batches[j]
		if a.ETA != b.ETA {
			return a.ETA < b.ETA
		}
		return a.Batch < b.Batch
	})
	for _, c := range carts {
		rq.Cartridges = append(rq.Cartridges, *c)
	}
	sort.Slice(rq.Cartridges, func(i, j int) bool {
		a, b := rq.Cartridges[i], rq.Cartridges[j]
		if a.ETA != b.ETA {
			return a.ETA < b.ETA
		}
		return a.VOLSER < b.VOLSER
	})
	return plan
}
