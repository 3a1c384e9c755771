package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// commitWatch replaces a cache's syncs with recording ones; the data sync
// of object gateID waits for gate.
type commitWatch struct {
	t      *testing.T
	c      *Cache
	gateID uint64
	gate   chan struct{}
	failID uint64 // its data sync fails

	mu         sync.Mutex
	dataSyncs  []uint64
	dirSyncs   []string
	gateWaited chan struct{} // closed when the gated sync is reached
}

func watchCommits(t *testing.T, c *Cache) *commitWatch {
	w := &commitWatch{t: t, c: c, gate: make(chan struct{}), gateWaited: make(chan struct{})}
	c.ops = commitOps{
		syncData: func(f *os.File) error {
			var id uint64
			fmt.Sscanf(filepath.Base(f.Name()), "%d.partial", &id)
			// The order that makes a crash harmless: the object's name
			// does not exist while its bytes are synced.
			if _, err := os.Stat(c.ObjectPath(id)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("object %d: named before its data sync (%v)", id, err)
			}
			w.mu.Lock()
			w.dataSyncs = append(w.dataSyncs, id)
			w.mu.Unlock()
			if id == w.gateID {
				close(w.gateWaited)
				<-w.gate
			}
			if id == w.failID {
				return errors.New("input/output error")
			}
			return fdatasync(f)
		},
		syncDir: func(dir string) error {
			w.mu.Lock()
			w.dirSyncs = append(w.dirSyncs, dir)
			w.mu.Unlock()
			return syncRenames(dir)
		},
	}
	return w
}

func openTestCache(t *testing.T, dir string) *Cache {
	t.Helper()
	c, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recallVerified fills object id with its bytes and verifies it.
func recallVerified(t *testing.T, c *Cache, id uint64) *Partial {
	t.Helper()
	data := objectBytes(id)
	p, started, err := c.BeginRecall(id, int64(len(data)))
	if err != nil || !started {
		t.Fatalf("recall %d: started %v, %v", id, started, err)
	}
	if _, err := p.Write(data); err != nil {
		t.Fatal(err)
	}
	p.Verified()
	return p
}

func objectBytes(id uint64) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("object %d\n", id)), 1000)
}

// results collects CommitLater's callbacks.
type results struct {
	mu   sync.Mutex
	errs map[uint64]error
	wg   sync.WaitGroup
}

func (r *results) commitLater(p *Partial) {
	r.wg.Add(1)
	id := p.id
	p.CommitLater(func(err error) {
		r.mu.Lock()
		if r.errs == nil {
			r.errs = map[uint64]error{}
		}
		r.errs[id] = err
		r.mu.Unlock()
		r.wg.Done()
	})
}

// TestCommitterBatchesDirectorySyncs: CommitLater returns at once; the
// recalls verified while a commit is under way are committed together with
// one sync of their directory, each after its bytes were synced; all the
// while they read to the end, and afterwards they are complete objects
// that survive a restart.
func TestCommitterBatchesDirectorySyncs(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	w := watchCommits(t, c)
	var res results

	const first = 5
	w.gateID = first
	res.commitLater(recallVerified(t, c, first))
	<-w.gateWaited // the committer is busy with the first

	// Twenty more in the same fan-out directory (the same low byte).
	var ids []uint64
	for k := uint64(1); k <= 20; k++ {
		id := k<<8 | first
		ids = append(ids, id)
		start := time.Now()
		res.commitLater(recallVerified(t, c, id))
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("CommitLater of object %d took %v: it waited for the committer", id, d)
		}
	}
	for _, id := range ids {
		info, _ := c.Lookup(id)
		if !info.Partial || !info.Verified || !info.Whole() {
			t.Errorf("object %d before its commit: %+v; want partial, verified, whole", id, info)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := c.WaitRange(ctx, id, 0, -1); err != nil {
			t.Errorf("object %d before its commit does not read to the end: %v", id, err)
		}
		cancel()
	}
	close(w.gate)
	res.wg.Wait()
	c.WaitCommits()

	for _, id := range append([]uint64{first}, ids...) {
		if err := res.errs[id]; err != nil {
			t.Errorf("commit of %d: %v", id, err)
		}
		if info, ok := c.Lookup(id); !ok || info.Partial {
			t.Errorf("object %d after the commit: %+v", id, info)
		}
	}
	w.mu.Lock()
	if len(w.dataSyncs) != 21 {
		t.Errorf("%d data syncs for 21 objects", len(w.dataSyncs))
	}
	// One for the first object's batch, one for the other twenty.
	if len(w.dirSyncs) != 2 {
		t.Errorf("directory syncs %v for 21 objects in one directory committed in two batches; want 2", w.dirSyncs)
	}
	w.mu.Unlock()

	c.Close()
	c2 := openTestCache(t, dir)
	for _, id := range append([]uint64{first}, ids...) {
		h, err := c2.Open(id)
		if err != nil {
			t.Fatalf("object %d after a restart: %v", id, err)
		}
		got, err := os.ReadFile(h.File().Name())
		h.Close()
		if err != nil || !bytes.Equal(got, objectBytes(id)) {
			t.Errorf("object %d after a restart: %d bytes, %v", id, len(got), err)
		}
	}
}

// TestCrashBeforeTheCommit: a verified recall whose commit has not run is
// gone after a restart (it is recalled again), never served.
func TestCrashBeforeTheCommit(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	w := watchCommits(t, c)
	w.gateID = 9
	var res results
	res.commitLater(recallVerified(t, c, 9))
	<-w.gateWaited

	// The process dies here; a new one opens the cache.
	crashed, err := Open(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if info, ok := crashed.Lookup(9); ok {
		t.Errorf("an uncommitted recall survived the restart: %+v", info)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, objectsDir, "*", "*")); len(m) != 0 {
		t.Errorf("files left after the restart: %v", m)
	}
	crashed.Close()
	close(w.gate)
	res.wg.Wait()
}

// TestCommitFailureDropsTheObject: an object whose data sync fails is
// dropped (read again from tape later) and its callback says why; the
// others of its batch are committed.
func TestCommitFailureDropsTheObject(t *testing.T) {
	c := openTestCache(t, t.TempDir())
	w := watchCommits(t, c)
	w.gateID, w.failID = 1, 2<<8|1
	var res results
	res.commitLater(recallVerified(t, c, 1))
	<-w.gateWaited
	res.commitLater(recallVerified(t, c, 2<<8|1))
	res.commitLater(recallVerified(t, c, 3<<8|1))
	close(w.gate)
	res.wg.Wait()
	if err := res.errs[2<<8|1]; err == nil || errors.Is(err, ErrAborted) {
		t.Errorf("commit with a failing sync: %v; want the sync's error", err)
	}
	if info, ok := c.Lookup(2<<8 | 1); ok {
		t.Errorf("object with a failed commit still cached: %+v", info)
	}
	for _, id := range []uint64{1, 3<<8 | 1} {
		if info, ok := c.Lookup(id); !ok || info.Partial || res.errs[id] != nil {
			t.Errorf("object %d beside a failed commit: %+v, %v", id, info, res.errs[id])
		}
	}
}

// TestEvictAndCloseWaitForTheCommitter: evicting an object the committer
// still holds waits for its commit and then evicts it; Close commits what
// is queued.
func TestEvictAndCloseWaitForTheCommitter(t *testing.T) {
	dir := t.TempDir()
	c := openTestCache(t, dir)
	w := watchCommits(t, c)
	w.gateID = 4
	var res results
	res.commitLater(recallVerified(t, c, 4))
	<-w.gateWaited
	res.commitLater(recallVerified(t, c, 7))

	evicted := make(chan error, 1)
	go func() { evicted <- c.Evict(4) }()
	closed := make(chan error, 1)
	go func() {
		for WaitersForTest(c, 4) == 0 && len(evicted) == 0 { // Evict waits on the commit
			time.Sleep(time.Millisecond)
		}
		closed <- c.Close()
	}()
	select {
	case err := <-evicted:
		t.Fatalf("Evict returned before the commit: %v", err)
	case <-closed:
		t.Fatal("Close returned before the commit")
	case <-time.After(100 * time.Millisecond):
	}
	close(w.gate)
	if err := <-evicted; err != nil {
		t.Errorf("evict after the commit: %v", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
	res.wg.Wait()
	c2 := openTestCache(t, dir)
	if _, ok := c2.Lookup(4); ok {
		t.Error("the evicted object is back after a restart")
	}
	if info, ok := c2.Lookup(7); !ok || info.Partial {
		t.Errorf("object queued when the cache closed: %+v, %v; want committed by Close", info, ok)
	}
}
