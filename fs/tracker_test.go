package fs

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// countingEngine counts the engine's view of open handles per entry, and
// fails on a close it never heard an open for.
type countingEngine struct {
	Engine
	mu      sync.Mutex
	open    map[string]int
	changes map[string]int
	sealing map[string]bool
	errs    []string
}

func newCountingEngine() *countingEngine {
	return &countingEngine{open: map[string]int{}, changes: map[string]int{}, sealing: map[string]bool{}}
}

func (e *countingEngine) EntryOpened(ws, entry string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sealing[ws+"/"+entry] {
		return archive.ErrSealing
	}
	e.open[ws+"/"+entry]++
	return nil
}

func (e *countingEngine) EntryClosed(ws, entry string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := ws + "/" + entry
	if e.open[k] == 0 {
		e.errs = append(e.errs, "close without open: "+k)
		return
	}
	e.open[k]--
}

func (e *countingEngine) EntryChanged(ws, entry string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.changes[ws+"/"+entry]++
}

func (e *countingEngine) check(t *testing.T, want map[string]int) {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, msg := range e.errs {
		t.Error(msg)
	}
	for k, n := range e.open {
		if n != want[k] {
			t.Errorf("engine counts %d open in %s, want %d", n, k, want[k])
		}
	}
	for k, n := range want {
		if e.open[k] != n {
			t.Errorf("engine counts %d open in %s, want %d", e.open[k], k, n)
		}
	}
}

func TestOpenFilesOpenClose(t *testing.T) {
	eng := newCountingEngine()
	o := newOpenFiles(eng)
	a1, a2, b := &openHandle{}, &openHandle{}, &openHandle{}
	for h, e := range map[*openHandle]string{a1: "a", a2: "a", b: "b"} {
		if err := o.open(h, entryKey{"w", e}); err != nil {
			t.Fatal(err)
		}
	}
	eng.check(t, map[string]int{"w/a": 2, "w/b": 1})
	o.close(a1, true)
	o.close(a1, true) // a second RELEASE for one handle never counts twice
	eng.check(t, map[string]int{"w/a": 1, "w/b": 1})
	if eng.changes["w/a"] != 1 {
		t.Errorf("changes of a: %d, want 1", eng.changes["w/a"])
	}
	o.flush(a2, true) // FLUSH
	o.close(a2, false)
	o.close(b, false)
	eng.check(t, nil)
	if o.count("w", "a") != 0 || len(o.byEntry) != 0 {
		t.Errorf("handles left: %v", o.byEntry)
	}
}

func TestOpenFilesSealing(t *testing.T) {
	eng := newCountingEngine()
	eng.sealing["w/a"] = true
	o := newOpenFiles(eng)
	h := &openHandle{}
	if err := o.open(h, entryKey{"w", "a"}); err != archive.ErrSealing {
		t.Fatalf("open of a sealing entry: %v", err)
	}
	o.close(h, false) // the caller closes what it could not open
	eng.check(t, nil)
}

func TestOpenFilesRename(t *testing.T) {
	eng := newCountingEngine()
	o := newOpenFiles(eng)
	a, b, c := &openHandle{}, &openHandle{}, &openHandle{}
	o.open(a, entryKey{"w", "a"})
	o.open(b, entryKey{"w", "b"})
	o.open(c, entryKey{"w", "c"})

	// mv put/a put/b: b is replaced, a's handle now counts in b.
	o.detach("w", "b")
	o.move("w", "a", "b")
	eng.check(t, map[string]int{"w/b": 1, "w/c": 1})
	o.close(b, false) // the replaced file's handle: already uncounted
	eng.check(t, map[string]int{"w/b": 1, "w/c": 1})

	// renameat2(RENAME_EXCHANGE) of b and c.
	o.exchange("w", "b", "c")
	eng.check(t, map[string]int{"w/b": 1, "w/c": 1})
	if a.key.entry != "c" || c.key.entry != "b" {
		t.Errorf("after exchange a in %q, c in %q", a.key.entry, c.key.entry)
	}

	// mv put/b put/c/sub: b's handles now count in c.
	o.move("w", "b", "c")
	eng.check(t, map[string]int{"w/c": 2})
	o.close(a, false)
	o.close(c, false)
	eng.check(t, nil)
}

func TestOpenFilesUntracked(t *testing.T) {
	eng := newCountingEngine()
	o := newOpenFiles(eng)
	h := &openHandle{}
	o.flush(h, true)
	o.close(h, true) // a handle on put/ itself is never counted
	eng.check(t, nil)
	if len(eng.changes) != 0 {
		t.Errorf("changes reported for no entry: %v", eng.changes)
	}
}

func TestOpenFilesConcurrent(t *testing.T) {
	eng := newCountingEngine()
	o := newOpenFiles(eng)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				h := &openHandle{}
				if err := o.open(h, entryKey{"w", fmt.Sprint((i + j) % 3)}); err != nil {
					t.Error(err)
					return
				}
				if j%7 == 0 {
					o.move("w", "2", "1")
				}
				o.flush(h, true)
				o.close(h, j%2 == 0)
			}
		}()
	}
	wg.Wait()
	eng.check(t, nil)
}

func TestOpenFilesWaitReleased(t *testing.T) {
	eng := newCountingEngine()
	o := newOpenFiles(eng)
	key := entryKey{"w", "a"}
	h := &openHandle{}
	o.open(h, key)

	// Still open after the timeout: the wait ends there (the seal then
	// finds the handle open and refuses). Without FLUSH (FOPEN_NOFLUSH)
	// an open handle looks like one whose RELEASE is on its way.
	start := time.Now()
	o.waitReleased(context.Background(), key, 50*time.Millisecond)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("returned after %v, before the timeout, with a handle open", d)
	}
	if o.count("w", "a") != 1 {
		t.Errorf("the handle is no longer counted")
	}

	// Closed, RELEASE on its way: wait for it.
	go func() {
		time.Sleep(20 * time.Millisecond)
		o.close(h, false)
	}()
	o.waitReleased(context.Background(), key, time.Second)
	if o.count("w", "a") != 0 {
		t.Errorf("returned before the release")
	}
}
