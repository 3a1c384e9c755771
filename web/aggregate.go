package web

import (
	"errors"
	"github.com/tapefs/tapefs/archive"
	"maps"
	"slices"
	"sync"
	"time"
)

// states is every batch state, in life-cycle order: the order of columns
// and of metric series.
var states = []archive.BatchState{archive.StateCaching, archive.StateSealing, archive.StateCached, archive.StateSyncing, archive.StateCachedSynced, archive.StateSynced, archive.StateFailed, archive.StateDeleted}

// moving reports whether a batch in state st will change without anyone
// asking: the pages refresh while one does.
func moving(st archive.BatchState) bool {
	return st == archive.StateCaching || st == archive.StateSealing || st == archive.StateCached || st == archive.StateSyncing
}

// tally is a count of batches and their bytes.
type tally struct {
	Batches int64
	Bytes   int64
}

// aggregate is batches and bytes by workspace and state: the one figure
// that needs every batch record. A snapshot: the aggregator never changes
// one it has handed out.
type aggregate struct {
	seq     uint64    // the last event it includes
	at      time.Time // when it was brought up to date
	byWS    map[string]map[archive.BatchState]tally
	byState map[archive.BatchState]tally
}

func (a *aggregate) workspaces() []string {
	return slices.Sorted(maps.Keys(a.byWS))
}

// cell is what one batch adds to the aggregate.
type cell struct {
	ws    string
	state archive.BatchState
	bytes int64
}

// aggregator keeps the aggregate up to date incrementally. Counting
// 100,000 batch records takes most of a second, so that is done once (and
// again after maxAge, or when the log has moved too far to follow); in
// between, every batch change records an event, and the batches named by
// the events since the last look are read again, one by one.
//
// It remembers what each batch added (cell: its workspace, state and
// bytes; tens of bytes a batch), so a batch that changes is taken out of
// its old tally before it is added to its new one.
type aggregator struct {
	surf     archive.Surface
	now      func() time.Time
	maxAge   time.Duration // a full count at least this often (a safety net: nothing is known to change a batch without an event)
	maxDelta int           // more new events than this: count again rather than follow

	mu      sync.Mutex // one update at a time; guards everything below
	counted time.Time  // the last full count
	cells   map[uint64]cell
	cur     *aggregate
}

func newAggregator(surf archive.Surface, now func() time.Time) *aggregator {
	return &aggregator{surf: surf, now: now, maxAge: 10 * time.Minute, maxDelta: 20_000}
}

// get returns the aggregate as of the newest event.
func (g *aggregator) get() (*aggregate, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur == nil || g.now().Sub(g.counted) >= g.maxAge {
		err := g.count()
		return g.cur, err
	}
	var (
		last    uint64
		evs     []archive.Event
		changed = map[uint64]cell{} // batches read again: what they add now
		gone    = map[uint64]bool{} // batches purged
	)
	err := g.surf.Read(archive.Anonymous(), func(tx archive.Snapshot) error {
		var err error
		if last, err = tx.LastEvent(); err != nil || last == g.cur.seq {
			return err
		}
		if evs, err = tx.Events(g.cur.seq, g.maxDelta+1, ""); err != nil || len(evs) > g.maxDelta {
			return err
		}
		for _, ev := range evs {
			if _, seen := changed[ev.Batch]; ev.Batch == 0 || seen || gone[ev.Batch] {
				continue
			}
			b, err := tx.Batch(ev.Batch)
			switch {
			case err == nil:
				changed[b.ID] = cell{ws: b.Workspace, state: b.State, bytes: b.Bytes}
			case errors.Is(err, archive.ErrNotFound):
				gone[ev.Batch] = true
			default:
				return err
			}
		}
		return nil
	})
	switch {
	case err != nil:
		return g.cur, err
	case last == g.cur.seq:
		return g.cur, nil
	case len(evs) > g.maxDelta:
		err := g.count()
		return g.cur, err
	}
	next := &aggregate{seq: last, at: g.now(), byWS: map[string]map[archive.BatchState]tally{}, byState: maps.Clone(g.cur.byState)}
	for ws, m := range g.cur.byWS {
		next.byWS[ws] = maps.Clone(m)
	}
	for _, ev := range evs {
		if ev.Workspace != "" && next.byWS[ev.Workspace] == nil {
			next.byWS[ev.Workspace] = map[archive.BatchState]tally{} // a new workspace
		}
	}
	for id := range gone {
		if old, ok := g.cells[id]; ok {
			next.add(old, -1)
			delete(g.cells, id)
		}
	}
	for id, c := range changed {
		if old, ok := g.cells[id]; ok {
			next.add(old, -1)
		}
		next.add(c, 1)
		g.cells[id] = c
	}
	g.cur = next
	return g.cur, nil
}

// add adds (sign 1) or removes (sign -1) a batch's cell.
func (a *aggregate) add(c cell, sign int64) {
	m := a.byWS[c.ws]
	if m == nil {
		m = map[archive.BatchState]tally{}
		a.byWS[c.ws] = m
	}
	t := m[c.state]
	t.Batches += sign
	t.Bytes += sign * c.bytes
	m[c.state] = t
	t = a.byState[c.state]
	t.Batches += sign
	t.Bytes += sign * c.bytes
	a.byState[c.state] = t
}

// count reads every batch record, in pages, in one transaction (so the
// counts and the event sequence agree). Callers hold g.mu; on success
// g.cur returns the new aggregate.
func (g *aggregator) count() error {
	a := &aggregate{byWS: map[string]map[archive.BatchState]tally{}, byState: map[archive.BatchState]tally{}}
	cells := make(map[uint64]cell, len(g.cells))
	err := g.surf.Read(archive.Anonymous(), func(tx archive.Snapshot) error {
		var err error
		if a.seq, err = tx.LastEvent(); err != nil {
			return err
		}
		wss, err := tx.Workspaces()
		if err != nil {
			return err
		}
		for _, w := range wss {
			a.byWS[w.Name] = map[archive.BatchState]tally{}
		}
		const page = 1000
		var after uint64
		for {
			bs, err := tx.Batches(archive.BatchQuery{After: after, Limit: page})
			if err != nil {
				return err
			}
			for _, b := range bs {
				c := cell{ws: b.Workspace, state: b.State, bytes: b.Bytes}
				cells[b.ID] = c
				a.add(c, 1)
			}
			if len(bs) < page {
				return nil
			}
			after = bs[len(bs)-1].ID
		}
	})
	if err != nil {
		return err
	}
	a.at = g.now()
	g.counted, g.cells, g.cur = a.at, cells, a
	return nil
}
