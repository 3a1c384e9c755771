package archive

import (
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// traversal is a reader (or several) walking a batch: cp -r, rsync, tar,
// xargs -P cat. Guarded by recallQueue.mu.
type traversal struct {
	batch   uint64
	opened  map[uint64]time.Time // recently opened files, until it is a traversal
	last    time.Time            // a file of the batch was last opened
	active  bool                 // staging ahead
	stopped bool                 // stopped opening files: what is staged ahead is dropped
	filling bool                 // stageAhead is running
	ws      string
	files   []catalog.File // a chunk of the batch's data files, in the catalog's (directory) order
	after   uint64         // the last file ID read from the catalog: the next chunk starts after it
	listed  bool           // the last chunk is in files
	started bool           // the first chunk was read
	cursor  int            // files[:cursor] were queued or found cached
	staged  int            // requests queued ahead so far
}

// traversalBase is the time unit of traversal detection: RecallLinger,
// and never so short that a reader's next open looks like a stop.
func (e *Engine) traversalBase() time.Duration {
	return max(e.cfg.RecallLinger, 200*time.Millisecond)
}

// noteOpen records that a file of a batch was opened. The third distinct
// file of a batch within traversalWindow makes it a traversal, and from then
// on every open keeps it alive and tops up what is staged ahead.
func (e *Engine) noteOpen(f catalog.File) {
	if e.cfg.FCFS || len(f.Copies) == 0 {
		return // nothing on tape to stage ahead
	}
	now := time.Now()
	base := e.traversalBase()
	q := e.recalls
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	t := q.travs[f.Batch]
	if t == nil {
		t = &traversal{batch: f.Batch, opened: map[uint64]time.Time{}}
		q.travs[f.Batch] = t
	}
	t.last = now
	fill := false
	if !t.active {
		t.opened[f.ID] = now
		for id, at := range t.opened {
			if now.Sub(at) > traversalWindow*base {
				delete(t.opened, id)
			}
		}
		if len(t.opened) >= traversalFiles {
			t.active, t.opened, fill = true, nil, true
		}
	} else if !t.filling && t.started && (!t.listed || t.cursor < len(t.files)) {
		// More of the batch may fit now.
		fill = true
	}
	if fill {
		t.filling = true
	}
	q.mu.Unlock()
	if fill {
		e.spawn(func() { e.stageAhead(t) })
	}
}

// stageAheadStarts runs as a stageAhead goroutine starts (a hook for
// tests of a goroutine that runs late).
var stageAheadStarts = func() {}

// listChunk is how many files of a batch staging ahead holds in memory (a
// variable for tests).
var listChunk = 10_000

// stageAhead queues the files of a traversal's batch that are not cached,
// as requests staged ahead, as far as the cache's free space allows. It
// reads the batch from the catalog a chunk at a time, so a batch of
// millions of files costs no more memory than a chunk.
func (e *Engine) stageAhead(t *traversal) {
	stageAheadStarts()
	q := e.recalls
	defer func() {
		q.mu.Lock()
		t.filling = false
		q.mu.Unlock()
	}()
	// Only this goroutine (filling) writes files, after, listed, started
	// and cursor; noteOpen reads listed, cursor and files under q.mu.
	if !t.started {
		var b catalog.Batch
		if err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			b, err = tx.Batch(t.batch)
			return err
		}); err != nil {
			return
		}
		q.mu.Lock()
		t.ws, t.started = b.Workspace, true
		q.mu.Unlock()
		e.log.Info().Uint64("batch", t.batch).Str("workspace", b.Workspace).Int64("files", b.Files).Msg("traversal detected: staging the batch ahead")
	}
	keep := e.keepFree()
	bad := e.badCopies() // read before q.mu: no catalog transaction under it
	added := 0
	for {
		q.mu.Lock()
		if t.stopped || q.closed {
			q.mu.Unlock()
			break
		}
		if t.cursor == len(t.files) && !t.listed {
			q.mu.Unlock()
			var chunk []catalog.File
			if err := e.cat.View(func(tx *catalog.Tx) error {
				var err error
				chunk, err = tx.Files(t.batch, t.after, listChunk)
				return err
			}); err != nil {
				e.log.Warn().Err(err).Uint64("batch", t.batch).Msg("staging ahead: batch not listed")
				break
			}
			var files []catalog.File
			for _, f := range chunk {
				if f.Type == catalog.TypeFile && f.Link == 0 && len(f.Copies) > 0 {
					files = append(files, f)
				}
			}
			q.mu.Lock()
			if len(chunk) > 0 {
				t.after = chunk[len(chunk)-1].ID
			}
			t.files, t.cursor, t.listed = files, 0, len(chunk) < listChunk
			q.mu.Unlock()
			continue
		}
		// What staging ahead may take: everything but the space kept for
		// reads, what it staged and nobody read yet, what is queued, and
		// what no eviction can free (not yet on tape). BeginStageAhead has
		// the last word for each file.
		st := e.cache.Stats()
		budget := st.Limit - keep - st.Unread - st.Unsynced - q.ahead
		n := 0
		for ; t.cursor < len(t.files); t.cursor++ {
			f := t.files[t.cursor]
			if q.byID[f.ID] != nil {
				continue
			}
			if _, ok := e.cache.Lookup(f.ID); ok {
				continue
			}
			c, ok := e.recallCopy(&f, bad)
			if !ok {
				continue
			}
			if f.Size > budget {
				break
			}
			budget -= f.Size
			r := &recallReq{file: f, copy: c, ws: t.ws, queued: time.Now(), started: make(chan struct{}), done: make(chan struct{}),
				ahead: true, trav: t}
			q.byID[f.ID] = r
			q.addLocked(r)
			n++
		}
		t.staged += n
		full := t.cursor < len(t.files)
		q.mu.Unlock()
		added += n
		if n > 0 {
			q.signal()
		}
		if full || t.listed && t.cursor == len(t.files) {
			break
		}
	}
	if added > 0 {
		e.log.Debug().Uint64("batch", t.batch).Str("workspace", t.ws).Int("files", added).Msg("staging ahead queued")
	}
}

// expireTraversalsLocked forgets traversals that stopped opening files and
// drops what they staged ahead that is still queued. It returns when the
// next one may expire (0: none active).
func (e *Engine) expireTraversalsLocked(now time.Time) time.Duration {
	q := e.recalls
	idle := traversalIdle * e.traversalBase()
	var next time.Duration
	for b, t := range q.travs {
		if left := idle - now.Sub(t.last); left > 0 {
			if t.active && (next == 0 || left < next) {
				next = left
			}
			continue
		}
		delete(q.travs, b)
		if !t.active {
			continue
		}
		dropped := e.stopTraversalLocked(t)
		e.log.Info().Uint64("batch", b).Str("workspace", t.ws).Int("queued", t.staged).Int("dropped", dropped).
			Msg("staging ahead stopped: the traversal stopped opening files")
	}
	return next
}

// stopTraversalLocked stops a traversal's staging ahead: a stageAhead
// still running queues nothing more, and what it queued and no pass has
// taken yet is dropped. It returns how many requests were dropped.
func (e *Engine) stopTraversalLocked(t *traversal) int {
	q := e.recalls
	t.stopped = true
	dropped := 0
	for v, rs := range q.pending {
		for i := 0; i < len(rs); {
			if r := rs[i]; r.ahead && r.trav == t {
				q.removeLocked(v, i)
				rs = q.pending[v]
				if q.byID[r.file.ID] == r {
					delete(q.byID, r.file.ID)
				}
				r.finish(errAheadStopped)
				dropped++
				continue
			}
			i++
		}
	}
	return dropped
}

// endTraversal forgets the traversal of a batch and stops its staging
// ahead: `tapefs cache evict` of the batch means its data is not wanted
// in the cache now, and staging ahead started by reads before the evict
// (its goroutine may run late on a loaded machine) must not bring it back.
// The next reads of the batch detect a new traversal.
func (e *Engine) endTraversal(batch uint64) {
	q := e.recalls
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.travs[batch]
	if t == nil {
		return
	}
	delete(q.travs, batch)
	if !t.active {
		return
	}
	if dropped := e.stopTraversalLocked(t); dropped > 0 || t.filling {
		e.log.Info().Uint64("batch", batch).Str("workspace", t.ws).Int("dropped", dropped).
			Msg("staging ahead stopped: the batch was evicted from the cache")
	}
}
