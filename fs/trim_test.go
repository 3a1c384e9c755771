package fs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// bigBatch seals a batch of dirs × per empty files (plus the directories)
// made directly in the staging directory, waits until it is on tape, and
// returns its directory in the mount and its entry count.
func bigBatch(t *testing.T, m *testMount, name string, dirs, per int) (string, int) {
	t.Helper()
	entry := filepath.Join(m.eng.StagingDir("default"), name)
	for d := range dirs {
		dir := filepath.Join(entry, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range per {
			if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := m.eng.Seal(t.Context(), "default", name, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.eng.WaitBatch(t.Context(), b.ID); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(m.mnt, "default", strconv.FormatUint(b.ID, 10)), 1 + dirs*(per+1)
}

// listTree lists dir as ls -lR does (readdir, then lstat of every entry) and
// returns the number of entries below it.
func listTree(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n - 1 // dir itself
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// waitNodes waits until the mount holds at most want batch tree nodes.
func waitNodes(t *testing.T, f *FS, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for f.Nodes() > want {
		if time.Now().After(deadline) {
			t.Fatalf("the mount still holds %d batch tree nodes after %v (want ≤ %d): the kernel's entries were not dropped", f.Nodes(), within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleTreeNodesFreed: after a listing of a batch tree, the daemon
// holds a node per entry the kernel cached (bounded per entry); once the
// tree has been idle for the tree idle time the kernel is asked to drop
// its entries, forgets them, and the daemon's heap is back where it was
// before the listing (issue 10: memory must not grow with the files
// listed). The tree lists the same afterwards.
func TestIdleTreeNodesFreed(t *testing.T) {
	const idle = 2 * time.Second
	m := mountWith(t, time.Hour, Options{TreeIdle: idle, TreeNodeBudget: -1})
	dir, entries := bigBatch(t, m, "big", 20, 1000)
	fsys := m.fsys

	before := heapInUse()
	if n := listTree(t, dir); n != entries {
		t.Fatalf("listed %d entries, want %d", n, entries)
	}
	held := fsys.Nodes()
	listed := heapInUse()
	grown := int64(listed) - int64(before)
	t.Logf("after listing %d entries: %d nodes held, heap %d → %d kB (%d B a node)", entries, held, before>>10, listed>>10, grown/int64(max(held, 1)))
	// go-fuse's node and tables plus ours are some 450 bytes. (The kernel
	// may have dropped entries already if the machine's caches were
	// dropped meanwhile: the bound is per node held.)
	if grown > int64(held)*1000+1<<20 {
		t.Errorf("the heap grew by %d B for %d batch tree nodes held, want ≤ 1000 B a node", grown, held)
	}

	waitNodes(t, fsys, 0, idle+30*time.Second)
	after := heapInUse()
	left := (int64(after) - int64(before)) / int64(entries)
	t.Logf("after the idle sweep: heap %d kB (%d B an entry left)", after>>10, left)
	// What stays is noise (the engine's own work meanwhile), not the
	// nodes: at most a fifth of what the listing took (or 1 MB).
	if kept := int64(after) - int64(before); kept > max(grown/5, 1<<20) {
		t.Errorf("%d B of heap (%d B per listed entry) stay after the kernel forgot the entries, of %d B the listing took (heap %d → %d → %d B), want ≤ a fifth (1 MB at least)", kept, left, grown, before, listed, after)
	}
	if n := listTree(t, dir); n != entries {
		t.Fatalf("after the sweep the tree lists %d entries, want %d", n, entries)
	}
}

// TestTreeVictims: the sweep drops idle trees, then the least recently
// used while over the budget, each once until it is used again, and
// forgets trees that hold nothing.
func TestTreeVictims(t *testing.T) {
	tr := newTrees()
	t0 := time.Now()
	for id, nodes := range map[uint64]int{1: 10, 2: 20, 3: 30} {
		tr.use("ws", id)
		tr.m[id].used = t0.Add(time.Duration(id) * time.Second)
		for range nodes {
			tr.adopted("ws", id)
		}
	}
	tr.use("ws", 4) // used, holds nothing
	tr.m[4].used = t0
	names := func(now time.Time, budget int) []string {
		_, n, _ := tr.victims(now, time.Minute, budget)
		return n
	}
	if got := names(t0.Add(10*time.Second), 100); len(got) != 0 {
		t.Errorf("nothing idle, under budget: dropped %v", got)
	}
	// 60 held, budget 35: 1 (10) and 2 (20) go, least recently used first.
	if got := fmt.Sprint(names(t0.Add(10*time.Second), 35)); got != "[1 2]" {
		t.Errorf("over budget: dropped %s, want [1 2]", got)
	}
	if got := names(t0.Add(10*time.Second), 35); len(got) != 0 {
		t.Errorf("dropped again before any use: %v", got)
	}
	// 3 idle for a minute; 4 (nothing held, idle) is forgotten.
	if got := fmt.Sprint(names(t0.Add(64*time.Second), 1000)); got != "[3]" {
		t.Errorf("idle: dropped %s, want [3]", got)
	}
	if tr.m[4] != nil {
		t.Error("an idle tree holding nothing is still tracked")
	}
	for range 30 {
		tr.forgotten(3)
	}
	// The kernel forgot 1 and 2 only in part; go-fuse holds nothing of 1.
	tr.recount(func(ws, batch string) bool { return batch != "1" })
	if tr.nodes != 20 || tr.m[1].nodes != 0 || tr.m[2].nodes != 20 {
		t.Errorf("after recount: %d held (1: %d, 2: %d), want 20 (0, 20)", tr.nodes, tr.m[1].nodes, tr.m[2].nodes)
	}
	tr.use("ws", 2)
	if got := fmt.Sprint(names(t0.Add(70*time.Second), 10)); got != "[2]" {
		t.Errorf("used again, over budget: dropped %s, want [2]", got)
	}
}

// TestTreeNodeBudget: while trees are in use, the nodes held stay within
// the budget: the least recently used trees are dropped even though the
// idle time has not passed, and a traversal running meanwhile still sees
// every entry.
func TestTreeNodeBudget(t *testing.T) {
	const budget = 1000
	m := mountWith(t, time.Hour, Options{TreeIdle: time.Hour, TreeNodeBudget: budget})
	a, na := bigBatch(t, m, "a", 4, 1000)
	b, nb := bigBatch(t, m, "b", 4, 1000)
	for range 2 {
		if n := listTree(t, a); n != na {
			t.Fatalf("listed %d entries of a, want %d", n, na)
		}
		if n := listTree(t, b); n != nb {
			t.Fatalf("listed %d entries of b, want %d", n, nb)
		}
	}
	waitNodes(t, m.fsys, budget, 30*time.Second)
}

// TestActiveTreeKeptUnderCap: a tree in use right now (a listing running)
// is not dropped for being over the node budget until the nodes held pass
// activeCap budgets; once it is no longer in use, the budget applies.
func TestActiveTreeKeptUnderCap(t *testing.T) {
	tr := newTrees()
	now := time.Now()
	tr.use("ws", 1)
	tr.m[1].used = now
	for range 30 {
		tr.adopted("ws", 1)
	}
	names := func(at time.Time, budget int) string {
		_, n, _ := tr.victims(at, time.Minute, budget)
		return fmt.Sprint(n)
	}
	if got := names(now.Add(time.Second), 10); got != "[]" {
		t.Errorf("30 nodes of a tree in use, budget 10 (cap %d): dropped %s", 10*activeCap, got)
	}
	if got := names(now.Add(time.Second), 5); got != "[1]" {
		t.Errorf("30 nodes of a tree in use, budget 5 (cap %d): dropped %s, want [1]", 5*activeCap, got)
	}
	tr.use("ws", 1)
	tr.m[1].used = now
	if got := names(now.Add(activeFor+time.Second), 10); got != "[1]" {
		t.Errorf("30 nodes of a tree no longer in use, budget 10: dropped %s, want [1]", got)
	}
}
