package archive

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// Repair jobs on several hosts (failover.go, hosts.go): a repair is
// claimed like the other jobs, taken over when its host's heartbeat
// lapses, and its commit is fenced.

// repairHosts seals and migrates one file with two copies on host a (three
// cartridges: the repair writes on the one holding no copy) and returns
// the file.
func repairSetup(t *testing.T, a *testHost) catalog.File {
	t.Helper()
	b, _ := sealTree(t, &testEngine{Engine: a.Engine}, "run", map[string][]byte{"x": randomBytes(21, 90_000)})
	a.Flush()
	waitSynced(t, a.Engine, b.ID)
	f := batchFiles(t, a.Engine, b.ID)["run/x"]
	if len(f.Copies) != 2 {
		t.Fatalf("copies of run/x: %+v, want 2", f.Copies)
	}
	return f
}

// queueRepair adds a repair job for copy c of f, owned by owner.
func queueRepair(t *testing.T, e *Engine, f catalog.File, c catalog.Copy, owner string) catalog.Job {
	t.Helper()
	var j catalog.Job
	if err := e.cat.Update(func(tx *catalog.Tx) error {
		var err error
		j, err = tx.AddJob(catalog.Job{Kind: catalog.JobRepair, Batch: f.Batch, File: f.ID, Copy: c, Created: time.Now(), Owner: owner})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return j
}

// jobRecord reads job id through cat ("" owner and false when it is gone).
func jobRecord(t *testing.T, cat *catalog.Catalog, id uint64) (catalog.Job, bool) {
	t.Helper()
	var j catalog.Job
	found := true
	if err := cat.View(func(tx *catalog.Tx) error {
		var err error
		j, err = tx.Job(id)
		if err != nil {
			found = false
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return j, found
}

// TestRepairTakenOverFromPausedHost: host a claims a repair, writes the new
// copy and is paused before it records it. Host b takes the job over once
// a's heartbeat lapsed, recalls the good copy and records its own new
// copy; a's late commit is refused, so the file keeps b's copy only.
func TestRepairTakenOverFromPausedHost(t *testing.T) {
	shared, libDir := catalog.NewMemoryEngine(), t.TempDir()
	var armed atomic.Bool
	paused := make(chan struct{})
	var once sync.Once
	var a *testHost
	a = startHostWith(t, hostOpts{id: "a", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond, cartridges: 3, copies: 2,
		wrap: func(l tape.FencedLibrary) tape.FencedLibrary {
			return &afterFilemark{FencedLibrary: l, hook: func() {
				if armed.Load() {
					once.Do(func() { a.cat.freeze(); close(paused) })
				}
			}}
		}})
	t.Cleanup(func() { a.cat.thawIfFrozen() }) // before a's Close, on a failure
	f := repairSetup(t, a)
	bad, good := f.Copies[0], f.Copies[1]
	armed.Store(true)
	job := queueRepair(t, a.Engine, f, bad, "")
	a.wakeRepair()
	select {
	case <-paused:
	case <-time.After(30 * time.Second):
		t.Fatal("host a wrote no repair")
	}
	watch, err := catalog.New(shared)
	if err != nil {
		t.Fatal(err)
	}
	if j, ok := jobRecord(t, watch, job.ID); !ok || j.Owner != "a" || j.Epoch != 1 {
		t.Fatalf("repair job while host a works on it: %+v (found %v), want owner a at epoch 1", j, ok)
	}
	b := startHostWith(t, hostOpts{id: "b", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond, cartridges: 3, copies: 2})
	var repaired catalog.File
	waitHost(t, "host b to repair the copy", 30*time.Second, func() bool {
		repaired = batchFiles(t, b.Engine, f.Batch)["run/x"]
		return !slices.Contains(repaired.Copies, bad)
	})
	if _, ok := jobRecord(t, watch, job.ID); ok {
		t.Errorf("repair job still queued after b repaired the copy")
	}
	if repaired.Copies[1] != good || repaired.Copies[0].VOLSER == bad.VOLSER || repaired.Copies[0].VOLSER == good.VOLSER {
		t.Fatalf("copies after b's repair: %+v (bad %+v, good %+v)", repaired.Copies, bad, good)
	}
	a.cat.thaw()
	waitHost(t, "host a to give its repair up (or record it)", 30*time.Second, func() bool {
		if !slices.Equal(batchFiles(t, b.Engine, f.Batch)["run/x"].Copies, repaired.Copies) {
			return true // a's late commit went through: reported below
		}
		a.host.mu.Lock()
		defer a.host.mu.Unlock()
		return a.host.fences > 0
	})
	if got := batchFiles(t, b.Engine, f.Batch)["run/x"].Copies; !slices.Equal(got, repaired.Copies) {
		t.Errorf("copies after host a went on: %+v, want b's %+v (a's late commit was recorded)", got, repaired.Copies)
	}
}

// TestRepairOfAnotherHostsBatch: a repair claimed by host b of a batch
// sealed on host a, which is alive, reads the good bytes b recalled into
// its own cache (not a's cache, which only an adopting migration reads,
// and which no longer holds the file).
func TestRepairOfAnotherHostsBatch(t *testing.T) {
	shared, libDir := catalog.NewMemoryEngine(), t.TempDir()
	a := startHostWith(t, hostOpts{id: "a", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond, cartridges: 3, copies: 2})
	f := repairSetup(t, a)
	bad := f.Copies[0]
	// Host a's cache no longer holds the file (evicted: it is on tape).
	if _, err := a.EvictBatch(f.Batch); err != nil {
		t.Fatal(err)
	}
	b := startHostWith(t, hostOpts{id: "b", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond, cartridges: 3, copies: 2})
	job := queueRepair(t, b.Engine, f, bad, "b") // b's: a, alive, leaves it alone
	b.wakeRepair()
	waitHost(t, "host b to repair a copy of host a's batch", 30*time.Second, func() bool {
		return !slices.Contains(batchFiles(t, b.Engine, f.Batch)["run/x"].Copies, bad)
	})
	if _, ok := jobRecord(t, b.Engine.cat, job.ID); ok {
		t.Errorf("repair job still queued after the repair")
	}
	b.host.mu.Lock()
	fences := b.host.fences
	b.host.mu.Unlock()
	if fences != 0 {
		t.Errorf("host b counted %d lost leases doing a repair nobody else held", fences)
	}
}
