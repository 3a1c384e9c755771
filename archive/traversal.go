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
	files   []catalog.File // the batch's data files, in the catalog's (directory) order
	listed  bool
	cursor  int // files before it were queued or found cached
	staged  int // requests queued ahead so far
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
	} else if !t.filling && (!t.listed || t.cursor < len(t.files)) {
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

// stageAhead queues the files of a traversal's batch that are not cached,
// as requests staged ahead, as far as the cache's free space allows.
func (e *Engine) stageAhead(t *traversal) {
	q := e.recalls
	defer func() {
		q.mu.Lock()
		t.filling = false
		q.mu.Unlock()
	}()
	if !t.listed { // only this goroutine (filling) writes files and listed
		var b catalog.Batch
		if err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			b, err = tx.Batch(t.batch)
			return err
		}); err != nil {
			return
		}
		var files []catalog.File
		if err := e.eachDataFile(b, func(f catalog.File) error {
			if len(f.Copies) > 0 {
				files = append(files, f)
			}
			return nil
		}); err != nil {
			e.log.Warn().Err(err).Uint64("batch", t.batch).Msg("staging ahead: batch not listed")
			return
		}
		q.mu.Lock()
		t.ws, t.files, t.listed = b.Workspace, files, true
		q.mu.Unlock()
		e.log.Info().Uint64("batch", t.batch).Str("workspace", b.Workspace).Int("files", len(files)).Msg("traversal detected: staging the batch ahead")
	}
	st := e.cache.Stats()
	keep := st.Limit / keepFreeShare
	q.mu.Lock()
	if t.stopped || q.closed {
		q.mu.Unlock()
		return
	}
	// What staging ahead may take: everything but the space kept for
	// reads, what it staged and nobody read yet, what is queued, and what
	// no eviction can free (not yet on tape). BeginStageAhead has the last
	// word for each file.
	budget := st.Limit - keep - st.Unread - st.Unsynced - q.ahead
	added := 0
	for ; t.cursor < len(t.files); t.cursor++ {
		f := t.files[t.cursor]
		if q.byID[f.ID] != nil {
			continue
		}
		if _, ok := e.cache.Lookup(f.ID); ok {
			continue
		}
		if f.Size > budget {
			break
		}
		budget -= f.Size
		r := &recallReq{file: f, copy: f.Copies[0], ws: t.ws, queued: time.Now(), started: make(chan struct{}), done: make(chan struct{}),
			ahead: true, trav: t}
		q.byID[f.ID] = r
		q.addLocked(r)
		added++
	}
	t.staged += added
	q.mu.Unlock()
	if added > 0 {
		e.log.Debug().Uint64("batch", t.batch).Str("workspace", t.ws).Int("files", added).Msg("staging ahead queued")
		q.signal()
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
		e.log.Info().Uint64("batch", b).Str("workspace", t.ws).Int("queued", t.staged).Int("dropped", dropped).
			Msg("staging ahead stopped: the traversal stopped opening files")
	}
	return next
}
