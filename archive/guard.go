package archive

// The recall storm guard: what keeps thousands of opens at once (an
// indexer, a grep -r, a user.tapefs.recall of a huge batch) from taking
// the library and the cache away from everyone else.
//
//   - Coalescing: every read and every Recall of the same file share one
//     request (recallQueue.byID), and requests wait per cartridge in tape
//     order for one pass (recall.go).
//   - Drives: RecallWorkspaceDrives caps the passes one workspace holds.
//   - Bytes: RecallWorkspaceBytes caps what one workspace's recalls have
//     staged into the cache that nobody has read yet. A pass skips the
//     requests of a workspace at its cap (they keep their place in tape
//     order) until reads catch up. A request a reader waits for is never
//     held back: its bytes are read as they land, and holding it behind
//     recalls nobody reads could wait forever.
//   - Fairness: a workspace whose reads wait for a drive while passes of
//     other workspaces hold them all gets one: the pass of the workspace
//     holding the most drives stops taking requests that arrived after the
//     wait began (or after the pass started, if later) or were staged
//     ahead, and gives its drive up once it has served the older ones, or
//     after starveAfter × linger at the latest.
//     A storm of one workspace therefore costs another at most the requests
//     queued before it, not the whole storm.

import (
	"sort"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// wsUnread is what one workspace's recalls staged and nobody read yet.
// Guarded by recallQueue.mu.
type wsUnread struct {
	bytes  int64
	objs   map[uint64]int64 // data ID → size
	pruned time.Time        // when objs was last checked against the cache
}

// pruneEvery bounds how often a workspace at its cap has its unread
// objects looked up in the cache: admission is asked once per queued
// request, and a queue may hold thousands.
const pruneEvery = 250 * time.Millisecond

// waitedLocked marks a request as one a reader waits for.
func (q *recallQueue) waitedLocked(r *recallReq) {
	if !r.waited {
		r.waited = true
		if p := q.passes[r.copy.VOLSER]; p != nil {
			p.poke()
		}
	}
}

// requestReads is requestRecalls for readers: the requests it returns are
// never held back by RecallWorkspaceBytes.
func (e *Engine) requestReads(files []catalog.File) ([]*recallReq, error) {
	reqs, err := e.requestRecalls(files)
	// Without a cap nothing is held back: the scheduler need not hear.
	if len(reqs) > 0 && e.cfg.RecallWorkspaceBytes > 0 {
		q := e.recalls
		q.mu.Lock()
		for _, r := range reqs {
			q.waitedLocked(r)
		}
		q.mu.Unlock()
		q.signal()
	}
	return reqs, err
}

// unreadLocked returns the unread bytes of a workspace, first dropping
// objects that left the cache unread (evicted): they no longer take space.
func (e *Engine) unreadLocked(ws string) int64 {
	u := e.recalls.unread[ws]
	if u == nil {
		return 0
	}
	if lim := e.cfg.RecallWorkspaceBytes; lim > 0 && u.bytes >= lim && time.Since(u.pruned) >= pruneEvery {
		u.pruned = time.Now()
		for id, n := range u.objs {
			if _, ok := e.cache.Lookup(id); !ok {
				delete(u.objs, id)
				u.bytes -= n
			}
		}
	}
	return u.bytes
}

// admitLocked says whether a pass may start r now (RecallWorkspaceBytes).
func (e *Engine) admitLocked(r *recallReq) bool {
	lim := e.cfg.RecallWorkspaceBytes
	if lim <= 0 || r.waited || r.ws == "" {
		return true
	}
	u := e.unreadLocked(r.ws)
	return u == 0 || u+r.file.Size <= lim
}

// chargeLocked counts r's bytes as its workspace's unread bytes from the
// moment a pass starts it.
func (e *Engine) chargeLocked(r *recallReq) {
	if r.charged || r.ws == "" || e.cfg.RecallWorkspaceBytes <= 0 {
		return
	}
	q := e.recalls
	u := q.unread[r.ws]
	if u == nil {
		u = &wsUnread{objs: map[uint64]int64{}}
		q.unread[r.ws] = u
	}
	if _, ok := u.objs[r.file.ID]; !ok {
		u.objs[r.file.ID] = r.file.Size
		u.bytes += r.file.Size
	}
	r.charged = true
}

// unchargeLocked takes a failed recall's bytes off its workspace.
func (e *Engine) unchargeLocked(r *recallReq) {
	if !r.charged {
		return
	}
	r.charged = false
	e.readLocked(r.ws, r.file.ID)
}

func (e *Engine) readLocked(ws string, id uint64) bool {
	u := e.recalls.unread[ws]
	if u == nil {
		return false
	}
	n, ok := u.objs[id]
	if !ok {
		return false
	}
	delete(u.objs, id)
	u.bytes -= n
	if len(u.objs) == 0 {
		delete(e.recalls.unread, ws)
	}
	return true
}

// noteRead: a reader has the object of data ID id (it opened it complete
// or read from it), so its bytes are no longer unread. Requests held back
// by the workspace's cap may go.
func (e *Engine) noteRead(id uint64) {
	if e.cfg.RecallWorkspaceBytes <= 0 {
		return
	}
	q := e.recalls
	q.mu.Lock()
	freed := false
	for ws := range q.unread {
		if e.readLocked(ws, id) {
			freed = true
			break
		}
	}
	if freed {
		for _, p := range q.passes {
			p.poke()
		}
	}
	q.mu.Unlock()
	if freed {
		q.signal()
	}
}

// nextAdmissibleLocked is nextLocked for a pass: the first request at or
// after the head that the pass may serve now (tape order, wrapping only
// when nothing is ahead), skipping those held back by their workspace's
// byte cap and, once the pass gives way to another workspace (cutoff),
// those that came after the wait began.
func (e *Engine) nextAdmissibleLocked(p *passState, v string, file int, off int64) *recallReq {
	q := e.recalls
	rs := q.pending[v]
	if len(rs) == 0 {
		return nil
	}
	now := time.Now()
	if !p.cutoff.IsZero() && !now.Before(p.cutoff.Add(starveAfter*e.traversalBase())) {
		return nil // given way long enough: the waiting workspace gets the drive now
	}
	ok := func(r *recallReq) bool {
		if !p.cutoff.IsZero() && (r.ahead || askedAt(r).After(p.cutoff)) {
			return false
		}
		return e.admitLocked(r)
	}
	start := sort.Search(len(rs), func(i int) bool { return !tapeBefore(rs[i].copy.TapeFile, rs[i].copy.Offset, file, off) })
	for k := 0; k < len(rs); k++ {
		i := (start + k) % len(rs)
		if ok(rs[i]) {
			r := q.removeLocked(v, i)
			e.chargeLocked(r)
			return r
		}
	}
	return nil
}

// schedulable counts the requests of a cartridge a pass could serve now:
// reads (not staged ahead) and all.
func (e *Engine) schedulableLocked(rs []*recallReq) (reads, all int) {
	for _, r := range rs {
		if e.admitLocked(r) {
			all++
			if !r.ahead {
				reads++
			}
		}
	}
	return reads, all
}

// giveWayLocked: reads of workspace ws, waiting since oldest, find every
// drive taken and no pass of their own. The pass of the workspace holding
// the most drives (the longest running among them) stops taking newer
// requests and gives its drive up (see the top of this file).
func (e *Engine) giveWayLocked(ws string, oldest time.Time, perWS map[string]int) {
	q := e.recalls
	var victim *passState
	var victimVol string
	for v, p := range q.passes {
		if p.ws == ws {
			return // it has a pass: not starved of drives
		}
		if !p.cutoff.IsZero() {
			return // one pass already gives way
		}
		if victim == nil || perWS[p.ws] > perWS[victim.ws] || perWS[p.ws] == perWS[victim.ws] && p.started.Before(victim.started) {
			victim, victimVol = p, v
		}
	}
	if victim == nil {
		return
	}
	// What the pass was started for it serves in any case: a pass started
	// for a workspace that waited must not give way at once in turn.
	victim.cutoff = oldest
	if victim.started.After(oldest) {
		victim.cutoff = victim.started
	}
	victim.poke()
	e.log.Info().Str("workspace", ws).Str("volser", victimVol).Str("holder", victim.ws).
		Msg("recall fairness: a pass of another workspace gives its drive up to reads waiting for one")
}

// delivered tells the engine, once per reader, that a reader has the
// file's bytes: they no longer count as unread (RecallWorkspaceBytes).
func (r *Reader) delivered() {
	if r.e.cfg.RecallWorkspaceBytes > 0 && !r.read.Swap(true) {
		r.e.noteRead(r.file.ID)
	}
}

// askedAt is when somebody asked for r: a request staged ahead was queued
// long before a reader came for it.
func askedAt(r *recallReq) time.Time {
	if !r.asked.IsZero() {
		return r.asked
	}
	return r.queued
}
