package cache

import (
	"container/list"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

// maxBytesPerObject bounds the index's memory per cached object (the
// layout at the top of index.go measures about 33 at a million objects;
// the map of pointers before it measured 86).
const maxBytesPerObject = 40

// TestIndexBytesPerObject: a million objects indexed cost at most
// maxBytesPerObject bytes of Go heap each, measured, the index kept alive;
// and so do 786,433, the worst count, just after the table doubled (to
// 2²¹ entries, 8 MiB).
func TestIndexBytesPerObject(t *testing.T) {
	for _, order := range []struct {
		name string
		n    int
		id   func(i uint64) uint64
	}{
		{"sequential IDs", 1_000_000, func(i uint64) uint64 { return i + 1 }},
		{"scattered IDs", 1_000_000, func(i uint64) uint64 { return i*0x9e3779b1 + 7 }},
		{"sequential IDs, table just grown", 3<<18 + 1, func(i uint64) uint64 { return i + 1 }},
	} {
		n := order.n
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		c := &Cache{index: newObjectIndex()}
		for i := range uint64(n) {
			c.insertLocked(order.id(i), int64(i), flagSynced, nil)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
		t.Logf("%s: %d objects: %.1f bytes of heap per object", order.name, n, per)
		if per > maxBytesPerObject {
			t.Errorf("%s: %.1f bytes per object, want ≤ %d", order.name, per, maxBytesPerObject)
		}
		if c.index.len() != n || c.used != int64(n)*int64(n-1)/2 {
			t.Fatalf("%s: %d objects, %d bytes used", order.name, c.index.len(), c.used)
		}
		runtime.KeepAlive(c)
	}
}

// lruOrder is the index's LRU list, least recently used first.
func lruOrder(x *objectIndex) []uint64 {
	var ids []uint64
	for s := x.back(); s != noSlot; s = x.newer(s) {
		ids = append(ids, x.at(s).id)
	}
	return ids
}

// TestIndexLRUOrder: pushes, touches and removals keep use order, and a
// slot freed and taken again by another object carries nothing of the
// old one into the list.
func TestIndexLRUOrder(t *testing.T) {
	x := newObjectIndex()
	s := map[uint64]slot{}
	for id := range uint64(4) {
		s[id] = x.add(id, 1, 0)
	}
	check := func(want ...uint64) {
		t.Helper()
		if got := lruOrder(&x); !slices.Equal(got, want) {
			t.Fatalf("least to most recent: %v, want %v", got, want)
		}
	}
	check(0, 1, 2, 3)
	x.touch(s[0])
	check(1, 2, 3, 0)
	x.remove(s[2])
	check(1, 3, 0)
	s[7] = x.add(7, 1, 0) // takes 2's slot
	if s[7] != s[2] {
		t.Fatalf("object 7 in slot %d, want the freed slot %d", s[7], s[2])
	}
	check(1, 3, 0, 7)
	x.touch(s[1])
	check(3, 0, 7, 1)
	x.remove(s[1])
	x.remove(s[0])
	check(3, 7)
	s[8] = x.add(8, 1, 0)
	s[9] = x.add(9, 1, 0)
	check(3, 7, 8, 9)
	x.touch(s[3])
	check(7, 8, 9, 3)
	for _, id := range []uint64{7, 8, 9, 3} {
		x.remove(s[id])
	}
	check()
	if got := x.find(3); got != noSlot {
		t.Fatalf("removed object 3 found in slot %d", got)
	}
	s[2] = x.add(2, 1, 0)
	check(2)
}

// TestIndexAgainstModel drives the index with random adds, touches and
// removals over IDs that collide in the table and reuse slots, through
// several growths and shrinks of the table, and compares it with a map
// and a container/list at every step: what find answers, what each
// record holds, and the LRU order.
func TestIndexAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := newObjectIndex()
	type entry struct {
		size int64
		el   *list.Element // in order, front = most recent
	}
	model := map[uint64]*entry{}
	order := list.New()
	// IDs multiple of a power of two land on few home positions of a
	// table indexed by the top bits of id×constant only if the hash is
	// poor; random IDs from a small range make many removals of present
	// IDs and many re-adds.
	idOf := func() uint64 {
		if rng.IntN(2) == 0 {
			return uint64(rng.IntN(3000)) << 20
		}
		return uint64(rng.IntN(3000))
	}
	verify := func(step int) {
		t.Helper()
		if x.len() != len(model) {
			t.Fatalf("step %d: %d objects, model %d", step, x.len(), len(model))
		}
		for id, e := range model {
			s := x.find(id)
			if s == noSlot {
				t.Fatalf("step %d: object %d not found", step, id)
			}
			if o := x.at(s); o.id != id || o.size() != e.size || !o.has(flagLive) {
				t.Fatalf("step %d: object %d: record %+v", step, id, *o)
			}
		}
		var want []uint64
		for el := order.Back(); el != nil; el = el.Prev() {
			want = append(want, el.Value.(uint64))
		}
		if got := lruOrder(&x); !slices.Equal(got, want) {
			t.Fatalf("step %d: LRU order differs from the model's", step)
		}
	}
	maxLen, maxTable, shrunk := 0, 0, false
	for step := range 200_000 {
		id := idOf()
		// Phases: mostly adds, then mostly removals, so the table grows
		// and shrinks again.
		grow := step/50_000%2 == 0
		e := model[id]
		switch r := rng.IntN(10); {
		case e == nil && (grow || r < 1):
			size := rng.Int64N(1 << 40)
			x.add(id, size, 0)
			model[id] = &entry{size: size, el: order.PushFront(id)}
		case e == nil:
			if s := x.find(id); s != noSlot {
				t.Fatalf("step %d: absent object %d found", step, id)
			}
		case r < 3:
			x.touch(x.find(id))
			order.MoveToFront(e.el)
		case !grow || r < 5:
			x.remove(x.find(id))
			order.Remove(e.el)
			delete(model, id)
		}
		maxLen = max(maxLen, len(model))
		shrunk = shrunk || len(x.table) < maxTable
		maxTable = max(maxTable, len(x.table))
		if len(model)*4 > len(x.table)*3 {
			t.Fatalf("step %d: %d objects in a table of %d", step, len(model), len(x.table))
		}
		if step%997 == 0 {
			verify(step)
		}
	}
	verify(-1)
	t.Logf("at most %d objects, %d at the end; table of %d at most, %d at the end", maxLen, len(model), maxTable, len(x.table))
	if !shrunk {
		t.Fatal("the table never shrank")
	}
	if maxLen < 3000 || int(x.slots) > maxLen {
		t.Fatalf("at most %d objects at once used %d slots", maxLen, x.slots)
	}
}

// TestHandleCloseAfterSlotReuse: a handle whose object left the index
// while it was open must not, when it closes, change the open count of
// the object that took the freed slot.
func TestHandleCloseAfterSlotReuse(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	put := func(id uint64) {
		t.Helper()
		sd, err := c.NewSealingDir()
		if err != nil {
			t.Fatal(err)
		}
		src := sd + "/f"
		if err := writeFile(src, "x"); err != nil {
			t.Fatal(err)
		}
		if err := c.Adopt(id, src, true); err != nil {
			t.Fatal(err)
		}
	}
	put(1)
	h1, err := c.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(1); err != nil {
		t.Fatal(err)
	}
	put(2) // takes object 1's slot
	h2, err := c.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Lookup(2); info.Open != 1 {
		t.Fatalf("object 2 open %d times after the old handle closed, want 1", info.Open)
	}
	if err := c.Evict(2); err == nil {
		t.Fatal("object 2 evicted while open")
	}
	h2.Close()
	if err := c.Evict(2); err != nil {
		t.Fatalf("evict object 2 once closed: %v", err)
	}
	if n := len(c.index.extras); n != 0 {
		t.Fatalf("%d side entries left with nothing open or recalled", n)
	}
}

// BenchmarkIndexAdd indexes and drops objects: the cost per object of an
// insert, a look-up and a removal with a million objects indexed.
func BenchmarkIndexAdd(b *testing.B) {
	x := newObjectIndex()
	const n = 1_000_000
	for i := range uint64(n) {
		x.add(i+1, 1, 0)
	}
	b.ResetTimer()
	for i := range uint64(b.N) {
		id := n + 1 + i
		x.add(id, 1, 0)
		if x.find(id-n) == noSlot {
			b.Fatal("lost")
		}
		x.remove(x.find(id - n))
	}
}
