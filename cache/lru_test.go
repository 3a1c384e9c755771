package cache

import (
	"slices"
	"testing"
)

// TestLRUList: the intrusive LRU list keeps use order through pushes,
// moves and removals, and ignores removing or moving an object that is not
// in it (as container/list does).
func TestLRUList(t *testing.T) {
	var l lru
	objs := make([]*object, 4)
	for i := range objs {
		objs[i] = &object{id: uint64(i)}
		l.pushFront(objs[i])
	}
	order := func() []uint64 {
		var ids []uint64
		for o := l.back(); o != nil; o = l.prev(o) {
			ids = append(ids, o.id)
		}
		return ids
	}
	check := func(want ...uint64) {
		t.Helper()
		if got := order(); !slices.Equal(got, want) {
			t.Fatalf("least to most recent: %v, want %v", got, want)
		}
	}
	check(0, 1, 2, 3)
	l.moveToFront(objs[0])
	check(1, 2, 3, 0)
	l.remove(objs[2])
	check(1, 3, 0)
	l.remove(objs[2]) // not in the list any more
	l.moveToFront(objs[2])
	check(1, 3, 0)
	l.remove(objs[1])
	l.remove(objs[0])
	check(3)
	l.remove(objs[3])
	check()
	l.pushFront(objs[2])
	check(2)
}
