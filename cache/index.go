package cache

import (
	"fmt"
	"math/bits"
)

// The index is the cache's record of every object it holds, kept for as
// long as the object is cached: a cache of a million small files holds a
// million records, so their size is what the daemon's memory grows by with
// the cache. A map of pointers to structs with pointer LRU links cost 86
// bytes an object (measured: TestIndexBytesPerObject on the code before
// this one); this layout costs about 33:
//
//   - the records live in chunks of chunkSize objects (24 bytes each), in
//     fixed arrays that never move or double: growing the index adds one
//     chunk (96 KiB) and copies nothing, and a pointer to a record stays
//     valid while the record is alive;
//   - records are named by their slot number (32 bits), and the LRU list
//     links slots, not pointers (so the collector has nothing to scan in
//     the chunks either);
//   - a freed slot goes on a free list threaded through the records and is
//     reused by the next insert;
//   - the look-up by ID is an open-addressed table of slot numbers (4
//     bytes an entry, linear probing, at most 3/4 full, deletion by
//     backward shift: no tombstones); the ID itself is read from the
//     record, so the table does not repeat it;
//   - what few objects need beyond that — the recall filling a partial
//     object, the count of open handles — is in a side map by slot, with
//     a flag in the record saying an entry exists.
//
// Worst case: the chunks hold as many slots as the most objects indexed at
// once since Open (a freed slot is reused, not returned), so 24 bytes times
// that high-water mark plus one chunk; the table is 4 bytes times a power
// of two between 4/3 and 8/3 of the objects (5 to 11 bytes an object) as
// the cache fills, up to 8 times the objects after removals (it shrinks
// once less than 1/8 full), and twice that for the moment of a resize,
// which copies 4 bytes per entry, never the records. At 1,000,000 objects:
// 24.1 MB of chunks and an 8 MiB table.

// slot numbers a record in the index.
type slot = uint32

// noSlot is the end of a list and the answer for an absent ID.
const noSlot slot = ^slot(0)

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits // records per chunk: 96 KiB
	chunkMask = chunkSize - 1

	minTable = 64 // table entries, a power of two
)

// maxObjectSize is the largest object the index can record: the size
// shares its word with the flags.
const maxObjectSize = 1<<sizeBits - 1

const (
	sizeBits = 56
	sizeMask = 1<<sizeBits - 1
)

// Flags of a record, in the top byte of object.meta.
const (
	flagLive   uint64 = 1 << (sizeBits + iota) // the slot holds an object (else it is free)
	flagSynced                                 // safely on tape: evictable
	flagPinned                                 // kept from eviction (Pin)
	flagUnread                                 // staged ahead and not opened since: staging ahead does not evict it
	flagExtra                                  // has an entry in objectIndex.extras
)

// object is one record of the index: 24 bytes, the memory the cache costs
// per cached object with the look-up table's 5 to 11 (see the top of this
// file). A partial object has its full expected size counted in
// Cache.used from the start, so concurrent recalls cannot over-commit the
// space they reserved.
type object struct {
	id   uint64
	meta uint64 // size in the low sizeBits bits, flags above
	// The LRU list (most recently used at the front) for a live record;
	// next is the free list's link for a free one.
	prev, next slot
}

func (o *object) size() int64          { return int64(o.meta & sizeMask) }
func (o *object) has(flag uint64) bool { return o.meta&flag != 0 }
func (o *object) setSize(size int64)   { o.meta = o.meta&^sizeMask | uint64(size)&sizeMask }
func (o *object) set(flag uint64, on bool) {
	if on {
		o.meta |= flag
	} else {
		o.meta &^= flag
	}
}

// extra is what an object needs beyond its record while it is being
// recalled or open: few objects at a time.
type extra struct {
	partial *Partial // non-nil while a recall fills it
	open    int32    // open handles (not OpenQuiet's)
}

// objectIndex holds the records, the look-up table and the LRU list.
type objectIndex struct {
	chunks     []*[chunkSize]object
	slots      slot // slots handed out so far: the chunks' high-water mark
	free       slot // first free slot, noSlot if none below slots
	n          int  // live objects
	table      []slot
	shift      uint // 64 - log2(len(table))
	head, tail slot // the LRU list's front and back
	extras     map[slot]*extra
}

func newObjectIndex() objectIndex {
	return objectIndex{
		free:   noSlot,
		table:  make([]slot, minTable),
		shift:  64 - uint(bits.TrailingZeros(minTable)),
		head:   noSlot,
		tail:   noSlot,
		extras: map[slot]*extra{},
	}
}

// at is the record of slot s; the pointer stays valid for as long as the
// slot holds the same object.
func (x *objectIndex) at(s slot) *object { return &x.chunks[s>>chunkBits][s&chunkMask] }

func (x *objectIndex) len() int { return x.n }

// home is where the look-up of id starts: Fibonacci hashing, so that IDs
// handed out in sequence spread over the whole table.
func (x *objectIndex) home(id uint64) uint64 { return (id * 0x9e3779b97f4a7c15) >> x.shift }

// find is the slot of object id, noSlot if it is not indexed.
func (x *objectIndex) find(id uint64) slot {
	mask := uint64(len(x.table) - 1)
	for i := x.home(id); ; i = (i + 1) & mask {
		e := x.table[i]
		if e == 0 {
			return noSlot
		}
		if x.at(e-1).id == id {
			return e - 1
		}
	}
}

// add records object id, which must not be indexed, at the front of the
// LRU list and returns its slot.
func (x *objectIndex) add(id uint64, size int64, flags uint64) slot {
	if size < 0 || size > maxObjectSize {
		panic(fmt.Sprintf("cache index: object %d of size %d", id, size))
	}
	if (x.n+1)*4 > len(x.table)*3 {
		x.resize(len(x.table) * 2)
	}
	s := x.alloc()
	o := x.at(s)
	*o = object{id: id, meta: uint64(size) | flags | flagLive}
	x.place(s)
	x.n++
	x.pushFront(s)
	return s
}

// alloc takes a free slot, or a new one (adding a chunk when the last is
// full).
func (x *objectIndex) alloc() slot {
	if s := x.free; s != noSlot {
		x.free = x.at(s).next
		return s
	}
	if x.slots == noSlot {
		panic("cache index: more than 2³²-1 objects")
	}
	s := x.slots
	if int(s>>chunkBits) == len(x.chunks) {
		x.chunks = append(x.chunks, new([chunkSize]object))
	}
	x.slots++
	return s
}

// place enters slot s in the look-up table under its record's ID.
func (x *objectIndex) place(s slot) {
	mask := uint64(len(x.table) - 1)
	i := x.home(x.at(s).id)
	for x.table[i] != 0 {
		i = (i + 1) & mask
	}
	x.table[i] = s + 1
}

// remove drops the object in slot s from the table, the LRU list and the
// side map, and frees the slot.
func (x *objectIndex) remove(s slot) {
	o := x.at(s)
	mask := uint64(len(x.table) - 1)
	i := x.home(o.id)
	for x.table[i] != s+1 {
		i = (i + 1) & mask
	}
	// Backward shift: move up every later entry of the run that may not
	// sit behind the hole, so that no look-up stops at it too early.
	for j := i; ; {
		j = (j + 1) & mask
		e := x.table[j]
		if e == 0 {
			break
		}
		if (j-x.home(x.at(e-1).id))&mask >= (j-i)&mask {
			x.table[i] = e
			i = j
		}
	}
	x.table[i] = 0
	x.unlink(s)
	if o.has(flagExtra) {
		delete(x.extras, s)
	}
	*o = object{next: x.free}
	x.free = s
	x.n--
	if len(x.table) > minTable && x.n*8 < len(x.table) {
		x.resize(tableSize(x.n * 2))
	}
}

// tableSize is the smallest table that holds n objects at most 3/4 full.
func tableSize(n int) int {
	size := minTable
	for n*4 > size*3 {
		size *= 2
	}
	return size
}

// resize rebuilds the look-up table with size entries.
func (x *objectIndex) resize(size int) {
	x.table = make([]slot, size)
	x.shift = 64 - uint(bits.TrailingZeros(uint(size)))
	for ci, ch := range x.chunks {
		for k := range ch {
			s := slot(ci<<chunkBits + k)
			if s >= x.slots {
				return
			}
			if ch[k].has(flagLive) {
				x.place(s)
			}
		}
	}
}

// each calls fn with the slot of every live object, in slot order, until
// fn returns false. fn must not add or remove objects.
func (x *objectIndex) each(fn func(s slot, o *object) bool) {
	for ci, ch := range x.chunks {
		for k := range ch {
			s := slot(ci<<chunkBits + k)
			if s >= x.slots {
				return
			}
			if ch[k].has(flagLive) && !fn(s, &ch[k]) {
				return
			}
		}
	}
}

// extraOf is the side entry of slot s, nil if it has none.
func (x *objectIndex) extraOf(s slot) *extra {
	if !x.at(s).has(flagExtra) {
		return nil
	}
	return x.extras[s]
}

// makeExtra is the side entry of slot s, created if missing.
func (x *objectIndex) makeExtra(s slot) *extra {
	if e := x.extraOf(s); e != nil {
		return e
	}
	e := &extra{}
	x.extras[s] = e
	x.at(s).set(flagExtra, true)
	return e
}

// tidyExtra drops the side entry of slot s if it is e and holds nothing
// any more.
func (x *objectIndex) tidyExtra(s slot, e *extra) {
	if e.partial == nil && e.open == 0 && x.extraOf(s) == e {
		delete(x.extras, s)
		x.at(s).set(flagExtra, false)
	}
}

// pushFront puts slot s, not in the LRU list, at its front.
func (x *objectIndex) pushFront(s slot) {
	o := x.at(s)
	o.prev, o.next = noSlot, x.head
	if x.head != noSlot {
		x.at(x.head).prev = s
	} else {
		x.tail = s
	}
	x.head = s
}

// unlink takes slot s out of the LRU list.
func (x *objectIndex) unlink(s slot) {
	o := x.at(s)
	if o.prev != noSlot {
		x.at(o.prev).next = o.next
	} else {
		x.head = o.next
	}
	if o.next != noSlot {
		x.at(o.next).prev = o.prev
	} else {
		x.tail = o.prev
	}
	o.prev, o.next = noSlot, noSlot
}

// touch makes slot s the most recently used.
func (x *objectIndex) touch(s slot) {
	if x.head == s {
		return
	}
	x.unlink(s)
	x.pushFront(s)
}

// back is the least recently used slot, noSlot if there is none.
func (x *objectIndex) back() slot { return x.tail }

// newer is the slot used just after s (towards the front), noSlot at the
// front.
func (x *objectIndex) newer(s slot) slot { return x.at(s).prev }
