package catalog

import (
	"errors"
	"slices"
	"strings"
	"sync"
)

// memChunkMax bounds a chunk of the memory engine: an insert moves at most
// this many entries, and a lookup is two binary searches.
const memChunkMax = 256

var (
	errReadOnly    = errors.New("write in a read-only transaction")
	errWriteInScan = errors.New("write during a scan of the same transaction")
	errClosed      = errors.New("catalog is closed")
)

// memEngine is the in-memory Engine for unit tests: keys sorted in chunks
// (a two-level sorted list: binary search for the chunk, then inside it),
// one writer or many readers at a time.
type memEngine struct {
	mu     sync.RWMutex // writers hold it for the whole Update
	chunks []*memChunk  // non-empty, in key order
	closed bool
}

type memChunk struct {
	keys []string
	vals [][]byte
}

// NewMemoryEngine returns an empty in-memory Engine. Update is atomic: on
// an error (or a panic) every write of the transaction is undone.
func NewMemoryEngine() Engine { return &memEngine{} }

func (e *memEngine) Update(fn func(KVTxn) error) (err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errClosed
	}
	t := &memTxn{e: e, writable: true}
	committed := false
	defer func() {
		// Also reached when fn panics: undo, then let the panic go on.
		if !committed {
			t.rollback()
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	committed = true
	return nil
}

func (e *memEngine) View(fn func(KVTxn) error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return errClosed
	}
	return fn(&memTxn{e: e})
}

func (e *memEngine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	e.chunks = nil
	return nil
}

// memPos is a position in the chunked list: entry i of chunk c.
type memPos struct{ c, i int }

// search finds the first entry ≥ key; found tells whether it is key. The
// position may be one past the end of the last chunk (an append).
func (e *memEngine) search(key string) (p memPos, found bool) {
	c, _ := slices.BinarySearchFunc(e.chunks, key, func(ch *memChunk, k string) int {
		return strings.Compare(ch.keys[len(ch.keys)-1], k)
	})
	if c == len(e.chunks) {
		if c == 0 {
			return memPos{}, false
		}
		return memPos{c - 1, len(e.chunks[c-1].keys)}, false
	}
	i, found := slices.BinarySearch(e.chunks[c].keys, key)
	return memPos{c, i}, found
}

func (e *memEngine) valid(p memPos) bool {
	return p.c >= 0 && p.c < len(e.chunks) && p.i >= 0 && p.i < len(e.chunks[p.c].keys)
}

func (e *memEngine) next(p memPos) memPos {
	if p.i+1 < len(e.chunks[p.c].keys) {
		return memPos{p.c, p.i + 1}
	}
	return memPos{p.c + 1, 0}
}

func (e *memEngine) prev(p memPos) memPos {
	if p.i > 0 {
		return memPos{p.c, p.i - 1}
	}
	if p.c == 0 {
		return memPos{-1, 0}
	}
	return memPos{p.c - 1, len(e.chunks[p.c-1].keys) - 1}
}

// get returns the value at key; ok is false when absent.
func (e *memEngine) get(key string) (val []byte, ok bool) {
	p, found := e.search(key)
	if !found {
		return nil, false
	}
	return e.chunks[p.c].vals[p.i], true
}

// set stores val (owned by the engine from now on) at key.
func (e *memEngine) set(key string, val []byte) {
	p, found := e.search(key)
	if found {
		e.chunks[p.c].vals[p.i] = val
		return
	}
	if len(e.chunks) == 0 {
		e.chunks = []*memChunk{{}}
	}
	ch := e.chunks[p.c]
	ch.keys = slices.Insert(ch.keys, p.i, key)
	ch.vals = slices.Insert(ch.vals, p.i, val)
	if len(ch.keys) > memChunkMax {
		half := len(ch.keys) / 2
		tail := &memChunk{
			keys: slices.Clone(ch.keys[half:]),
			vals: slices.Clone(ch.vals[half:]),
		}
		clear(ch.vals[half:]) // let the moved values go with the tail only
		ch.keys, ch.vals = ch.keys[:half:half], ch.vals[:half:half]
		e.chunks = slices.Insert(e.chunks, p.c+1, tail)
	}
}

func (e *memEngine) del(key string) {
	p, found := e.search(key)
	if !found {
		return
	}
	ch := e.chunks[p.c]
	ch.keys = slices.Delete(ch.keys, p.i, p.i+1)
	ch.vals = slices.Delete(ch.vals, p.i, p.i+1)
	if len(ch.keys) == 0 {
		e.chunks = slices.Delete(e.chunks, p.c, p.c+1)
	}
}

// memTxn is one transaction of a memEngine. The engine's lock is held by
// Update or View around it.
type memTxn struct {
	e        *memEngine
	writable bool
	scanning int       // scans in progress: writes now would move them
	undo     []memUndo // how to put back what this transaction changed
}

type memUndo struct {
	key     string
	val     []byte
	existed bool
}

func (t *memTxn) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		if u.existed {
			t.e.set(u.key, u.val)
		} else {
			t.e.del(u.key)
		}
	}
	t.undo = nil
}

func (t *memTxn) Get(key []byte) ([]byte, error) {
	v, _ := t.e.get(string(key))
	return v, nil
}

func (t *memTxn) checkWrite() error {
	switch {
	case !t.writable:
		return errReadOnly
	case t.scanning > 0:
		return errWriteInScan
	}
	return nil
}

func (t *memTxn) Put(key, value []byte) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	if len(key) == 0 {
		return errors.New("empty key")
	}
	k := string(key)
	old, existed := t.e.get(k)
	t.undo = append(t.undo, memUndo{k, old, existed})
	// The copy is never nil, so Get tells an empty value from an absent key.
	t.e.set(k, append([]byte{}, value...))
	return nil
}

func (t *memTxn) Delete(key []byte) error {
	if err := t.checkWrite(); err != nil {
		return err
	}
	k := string(key)
	old, existed := t.e.get(k)
	if !existed {
		return nil
	}
	t.undo = append(t.undo, memUndo{k, old, true})
	t.e.del(k)
	return nil
}

func (t *memTxn) Scan(prefix, from []byte, reverse bool, fn func(key, value []byte) (bool, error)) error {
	t.scanning++
	defer func() { t.scanning-- }()
	e := t.e
	var p memPos
	if !reverse {
		start := string(prefix)
		if from != nil && string(from) > start {
			start = string(from)
		}
		p, _ = e.search(start) // past the end when every key is < start
	} else {
		p = e.reverseStart(prefix, from)
	}
	for e.valid(p) {
		k := e.chunks[p.c].keys[p.i]
		if !strings.HasPrefix(k, string(prefix)) {
			return nil
		}
		more, err := fn([]byte(k), e.chunks[p.c].vals[p.i])
		if err != nil || !more {
			return err
		}
		if reverse {
			p = e.prev(p)
		} else {
			p = e.next(p)
		}
	}
	return nil
}

// reverseStart is where a reverse scan starts: the last key ≤ from, or when
// from is nil or past the prefix, the last key before the prefix's end.
func (e *memEngine) reverseStart(prefix, from []byte) memPos {
	end := prefixEnd(prefix)
	last := memPos{len(e.chunks) - 1, 0}
	if last.c >= 0 {
		last.i = len(e.chunks[last.c].keys) - 1
	}
	if from != nil && (end == nil || string(from) < string(end)) {
		p, found := e.search(string(from))
		if found {
			return p
		}
		if !e.valid(p) {
			return last
		}
		return e.prev(p)
	}
	if end == nil {
		return last
	}
	p, _ := e.search(string(end))
	if !e.valid(p) {
		return last
	}
	return e.prev(p)
}
