package fs

import (
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"time"
)

// The daemon keeps one go-fuse node (some 450 bytes with go-fuse's tables
// and the parent's child map) for every batch tree entry the kernel has
// looked up and not forgotten. After ls -lR or find over a large archive
// the kernel keeps those entries until it runs short of memory, so the
// daemon would grow with every entry ever listed. The kernel's entries of
// a batch tree expire after treeEntryTimeout anyway (the next use asks the
// daemon again), so a tree not used for that long costs almost nothing to
// drop: the mount then invalidates the batch directory's entry, the kernel
// drops every unused entry below it and sends FORGET for their inodes, and
// go-fuse frees the nodes (entryNode.OnForget keeps the count). Entries in
// use (an open file, a shell's working directory) stay.
//
// A budget bounds the nodes held while trees are in use: above it the
// least recently used trees are dropped even when busy; a traversal still
// running then looks its next entries up again.

const (
	// DefaultTreeNodeBudget is Options.TreeNodeBudget's default: some
	// 22 MB of nodes.
	DefaultTreeNodeBudget = 50_000
	// freeAfterForgotten is the number of nodes forgotten since the heap
	// was last handed back from which a sweep hands it back again.
	freeAfterForgotten = 10_000
	// activeFor: a tree used this recently is being listed right now.
	// Over the budget it is dropped only once the nodes held pass
	// activeCap budgets: dropping its entries in the middle of an `ls -lR`
	// or `du` only makes the kernel look every path up again and the
	// daemon make the same nodes anew (one in five cold listings of a
	// 100,100-entry tree ran twice as long).
	activeFor = 2 * time.Second
	activeCap = 4
)

// treeUse is what the mount knows of one batch tree the kernel has entries
// of.
type treeUse struct {
	ws    string
	nodes int       // entry nodes go-fuse holds for the tree
	used  time.Time // last request on the tree
	// dropped: invalidated since its last use; not dropped again until
	// used (FORGETs may lag, and a node count that never reaches zero
	// must not cost a notification per sweep).
	dropped bool
}

// trees tracks the batch trees whose entries the kernel holds, by batch.
type trees struct {
	mu    sync.Mutex
	m     map[uint64]*treeUse
	nodes int // sum of nodes
	// freedAt is nodes when the heap was last handed back (or its
	// highest since).
	freedAt int
}

func newTrees() *trees { return &trees{m: map[uint64]*treeUse{}} }

// use records a request on a batch tree.
func (t *trees) use(ws string, batch uint64) {
	now := time.Now()
	t.mu.Lock()
	u := t.m[batch]
	if u == nil {
		u = &treeUse{ws: ws}
		t.m[batch] = u
	}
	u.used, u.dropped = now, false
	t.mu.Unlock()
}

// adopted counts a new node of the batch's tree.
func (t *trees) adopted(ws string, batch uint64) {
	t.mu.Lock()
	u := t.m[batch]
	if u == nil {
		u = &treeUse{ws: ws, used: time.Now()}
		t.m[batch] = u
	}
	u.nodes++
	t.nodes++
	t.freedAt = max(t.freedAt, t.nodes)
	t.mu.Unlock()
}

// forgotten uncounts a node go-fuse has dropped.
func (t *trees) forgotten(batch uint64) {
	t.mu.Lock()
	if u := t.m[batch]; u != nil && u.nodes > 0 {
		u.nodes--
	}
	if t.nodes > 0 {
		t.nodes--
	}
	t.mu.Unlock()
}

// recount sets the count of a dropped tree to zero when go-fuse holds no
// node of it any more (held says whether it holds the batch directory,
// which every node of the tree hangs below): a node counted but then not
// kept by go-fuse (trim.go's count is an estimate at creation) never sees
// OnForget.
func (t *trees) recount(held func(ws, batch string) bool) {
	t.mu.Lock()
	type tree struct {
		id uint64
		ws string
	}
	var check []tree
	for id, u := range t.m {
		if u.dropped && u.nodes > 0 {
			check = append(check, tree{id, u.ws})
		}
	}
	t.mu.Unlock()
	for _, c := range check {
		if held(c.ws, strconv.FormatUint(c.id, 10)) {
			continue
		}
		t.mu.Lock()
		if u := t.m[c.id]; u != nil && u.dropped {
			t.nodes -= u.nodes
			u.nodes = 0
		}
		t.mu.Unlock()
	}
}

// Nodes is the number of batch tree nodes the mount holds for the kernel.
func (f *FS) Nodes() int {
	f.trees.mu.Lock()
	defer f.trees.mu.Unlock()
	return f.trees.nodes
}

// victims picks the trees to drop now: every tree idle for idle or longer,
// and while more than budget nodes are held, the least recently used
// others (those in use right now only above activeCap budgets). It marks them dropped and forgets trees that hold nothing. It
// also says whether enough nodes were forgotten since the last time to
// hand the heap back.
func (t *trees) victims(now time.Time, idle time.Duration, budget int) (drop []*treeUse, names []string, free bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	type cand struct {
		id uint64
		u  *treeUse
	}
	var cands []cand
	// held: nodes of trees not dropped yet (those of dropped trees go
	// when the kernel's FORGETs arrive).
	held := 0
	for id, u := range t.m {
		switch {
		case u.nodes == 0 && now.Sub(u.used) >= idle:
			delete(t.m, id)
		case u.nodes > 0 && !u.dropped:
			cands = append(cands, cand{id, u})
			held += u.nodes
		}
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].u.used.Before(cands[j].u.used) })
	for _, c := range cands {
		since := now.Sub(c.u.used)
		if since < idle && (budget <= 0 || held <= budget) {
			continue
		}
		if since < activeFor && budget > 0 && held <= activeCap*budget {
			continue
		}
		c.u.dropped = true
		held -= c.u.nodes
		drop = append(drop, c.u)
		names = append(names, strconv.FormatUint(c.id, 10))
	}
	if t.freedAt-t.nodes >= freeAfterForgotten {
		free = true
		t.freedAt = t.nodes
	}
	return drop, names, free
}

// sweepTrees drops the kernel's entries of trees idle for the tree idle
// time, and of the least recently used ones while the node budget is
// exceeded; it hands the heap back once enough nodes were forgotten.
func (f *FS) sweepTrees(now time.Time) {
	drop, names, free := f.trees.victims(now, f.opts.TreeIdle, f.opts.TreeNodeBudget)
	if free {
		// Go returns freed pages to the system only over minutes.
		debug.FreeOSMemory()
	}
	root := f.root
	if root == nil {
		return
	}
	f.trees.recount(func(ws, batch string) bool {
		w := root.GetChild(ws)
		return w != nil && w.GetChild(batch) != nil
	})
	for i, u := range drop {
		ws := root.GetChild(u.ws)
		if ws == nil {
			continue // nothing held under the workspace
		}
		// Not NotifyDelete: the batch is not gone, inotify watchers
		// must not hear of a deletion.
		errno := ws.NotifyEntry(names[i])
		f.log.Debug().Str("workspace", u.ws).Str("batch", names[i]).Int("nodes", u.nodes).Msg("kernel entries of an idle batch tree dropped")
		f.notifyErr(errno, "entry", u.ws, names[i])
	}
}

// sweepLoop sweeps until done is closed.
func (f *FS) sweepLoop(done <-chan struct{}) {
	every := min(max(f.opts.TreeIdle/4, 10*time.Millisecond), 5*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			f.sweepTrees(now)
		}
	}
}

// OnForget: go-fuse dropped the node (the kernel forgot it).
func (n *entryNode) OnForget() { n.fsys.trees.forgotten(n.batch) }
