package archive

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// Two hosts in one process: one memory catalog and one library directory
// shared, a cache each. The catalog of a host can be switched off (its
// Updates fail: the database is out of its reach) or frozen (every call
// blocks: the host is paused).

const hostLease = 300 * time.Millisecond

// hostCatalog is one host's way to the shared catalog.
type hostCatalog struct {
	catalog.Engine
	off    atomic.Bool
	mu     sync.Mutex
	frozen chan struct{} // non-nil: calls wait until it is closed
}

func (h *hostCatalog) gate() error {
	h.mu.Lock()
	c := h.frozen
	h.mu.Unlock()
	if c != nil {
		<-c
	}
	if h.off.Load() {
		return errors.New("catalog database unavailable (test)")
	}
	return nil
}

func (h *hostCatalog) Update(fn func(catalog.KVTxn) error) error {
	if err := h.gate(); err != nil {
		return err
	}
	return h.Engine.Update(fn)
}

func (h *hostCatalog) View(fn func(catalog.KVTxn) error) error {
	if err := h.gate(); err != nil {
		return err
	}
	return h.Engine.View(fn)
}

func (h *hostCatalog) freeze() {
	h.mu.Lock()
	h.frozen = make(chan struct{})
	h.mu.Unlock()
}

// thawIfFrozen thaws a catalog a failed test left frozen.
func (h *hostCatalog) thawIfFrozen() {
	h.mu.Lock()
	frozen := h.frozen != nil
	h.mu.Unlock()
	if frozen {
		h.thaw()
	}
}

func (h *hostCatalog) thaw() {
	h.mu.Lock()
	close(h.frozen)
	h.frozen = nil
	h.mu.Unlock()
}

// afterFilemark runs hook after every filemark a host writes.
type afterFilemark struct {
	tape.FencedLibrary
	hook func()
}

type hookedDrive struct {
	tape.Drive
	hook func()
}

func (l *afterFilemark) AcquireFenced(ctx context.Context, volser string, epoch uint64) (tape.Drive, error) {
	d, err := l.FencedLibrary.AcquireFenced(ctx, volser, epoch)
	if err != nil {
		return nil, err
	}
	return &hookedDrive{Drive: d, hook: l.hook}, nil
}

func (l *afterFilemark) Release(d tape.Drive) {
	if h, ok := d.(*hookedDrive); ok {
		d = h.Drive
	}
	l.FencedLibrary.Release(d)
}

func (d *hookedDrive) WriteFilemark() error {
	err := d.Drive.WriteFilemark()
	if err == nil {
		d.hook()
	}
	return err
}

type testHost struct {
	*Engine
	cat  *hostCatalog
	libr tape.Library
}

// startHost starts host id on the shared memory engine and library dir.
func startHost(t *testing.T, id string, shared catalog.Engine, libDir string, flushAge time.Duration, wrap func(tape.FencedLibrary) tape.FencedLibrary) *testHost {
	t.Helper()
	return startHostWith(t, hostOpts{id: id, shared: shared, libDir: libDir, flushAge: flushAge, wrap: wrap})
}

// hostOpts is a test host: startHost's arguments, and what only some tests
// set (zero: one cartridge, one copy, no snapshots).
type hostOpts struct {
	id            string
	shared        catalog.Engine
	libDir        string
	flushAge      time.Duration
	wrap          func(tape.FencedLibrary) tape.FencedLibrary
	cartridges    int
	drives        int // 0: one
	copies        int
	snapshotEvery time.Duration
	snapshotDir   string
	retention     time.Duration
	removeGrace   time.Duration
}

func startHostWith(t *testing.T, o hostOpts) *testHost {
	t.Helper()
	id, shared, libDir, flushAge, wrap := o.id, o.shared, o.libDir, o.flushAge, o.wrap
	hc := &hostCatalog{Engine: shared}
	cat, err := catalog.New(hc)
	if err != nil {
		t.Fatal(err)
	}
	lib, err := tape.Open(tape.Config{Dir: libDir, Drives: max(o.drives, 1), Cartridges: max(o.cartridges, 1), Capacity: 1 << 30, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	var engineLib tape.Library = lib
	if wrap != nil {
		engineLib = wrap(lib.(tape.FencedLibrary))
	}
	cacheDir := filepath.Join(t.TempDir(), "cache")
	c, err := cache.Open(cache.Config{Dir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Catalog: cat, Cache: c, Library: engineLib, Log: zerolog.Nop(), Settle: time.Hour, FlushAge: flushAge,
		Backoff: 20 * time.Millisecond, ScrubRate: -1, VerifyPeriod: -1, Host: id, Lease: hostLease, Shared: true, CacheDir: cacheDir,
		Copies: o.copies, SnapshotEvery: o.snapshotEvery, SnapshotDir: o.snapshotDir, Retention: o.retention, RemoveGrace: o.removeGrace})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CreateWorkspace(catalog.Workspace{Name: "ws"}); err != nil && !errors.Is(err, catalog.ErrExists) {
		t.Fatal(err)
	}
	e.Start()
	h := &testHost{Engine: e, cat: hc, libr: lib}
	t.Cleanup(func() {
		e.Close()
		c.Close()
		lib.Close()
	})
	return h
}

func waitHost(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func batchState(t *testing.T, e *Engine, id uint64) catalog.Batch {
	t.Helper()
	var b catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostWithoutHeartbeatTakesNoWork: a host that cannot renew its
// heartbeat stops taking work once its lease has run out, and takes it
// again when the catalog is back.
func TestHostWithoutHeartbeatTakesNoWork(t *testing.T) {
	h := startHost(t, "a", catalog.NewMemoryEngine(), t.TempDir(), time.Hour, nil)
	b, _ := sealTree(t, &testEngine{Engine: h.Engine}, "run", map[string][]byte{"x": randomBytes(1, 5000)})
	h.cat.off.Store(true)
	waitHost(t, "the host to let its lease go", 10*hostLease, func() bool { return !h.holding() })
	h.cat.off.Store(false)
	h.cat.freeze() // the catalog answers nothing: not even the heartbeat gets through
	if h.migrateOnce(true) {
		t.Fatalf("a host whose heartbeat lapsed took a migration")
	}
	h.cat.thaw()
	waitHost(t, "the heartbeat renewed", 10*hostLease, h.holding)
	h.Flush()
	if st := batchState(t, h.Engine, b.ID).State; st != catalog.CachedSynced {
		t.Fatalf("batch after the heartbeat came back: %s, want CACHED_SYNCED", st)
	}
}

// TestLateCommitIsRefused: host a writes a tape file and is paused after
// its filemark, before it records the tape file in the catalog. Its lease
// lapses; host b claims the job, takes the cartridge, reads the batch from
// a's cache and writes and records it. When a goes on, its commit is
// refused: every file has one copy, b's.
func TestLateCommitIsRefused(t *testing.T) {
	shared := catalog.NewMemoryEngine()
	libDir := t.TempDir()
	paused := make(chan struct{})
	var once sync.Once
	var a *testHost
	pause := func() {
		once.Do(func() {
			a.cat.freeze()
			close(paused)
			// Held here, between the filemark and the commit, until b
			// has written the batch and the test thaws a's catalog (the
			// commit then waits in the gate anyway).
		})
	}
	a = startHost(t, "a", shared, libDir, 20*time.Millisecond, func(l tape.FencedLibrary) tape.FencedLibrary {
		return &afterFilemark{FencedLibrary: l, hook: pause}
	})
	batch, _ := sealTree(t, &testEngine{Engine: a.Engine}, "run", map[string][]byte{"x": randomBytes(2, 70_000), "y": randomBytes(3, 100)})
	select {
	case <-paused:
	case <-time.After(30 * time.Second):
		t.Fatal("host a wrote no tape file")
	}
	b := startHost(t, "b", shared, libDir, 20*time.Millisecond, nil)
	waitHost(t, "host b to write a's batch", 30*time.Second, func() bool {
		return batchState(t, b.Engine, batch.ID).State == catalog.CachedSynced
	})
	a.cat.thaw()
	waitHost(t, "host a to give its work up (or record it a second time)", 30*time.Second, func() bool {
		if len(batchFiles(t, b.Engine, batch.ID)["run/x"].Copies) > 1 {
			return true // a's late commit went through: reported below
		}
		a.host.mu.Lock()
		defer a.host.mu.Unlock()
		return a.host.fences > 0
	})
	files := batchFiles(t, b.Engine, batch.ID)
	for p, f := range files {
		if f.Type != catalog.TypeFile {
			continue
		}
		if len(f.Copies) != 1 || f.Copies[0].TapeFile != 2 {
			t.Errorf("%s: copies %+v, want one, in b's tape file 2 (a's file 1 was never recorded)", p, f.Copies)
		}
	}
	if got := batchState(t, b.Engine, batch.ID); got.State != catalog.CachedSynced || got.Attempts != 0 {
		t.Errorf("batch after a went on: %s, %d failed attempts", got.State, got.Attempts)
	}
}

// TestFenceHoldsTheClaims: the fence of a commit is the claims of the work
// that wrote it. It passes while they hold, and refuses once the job was
// taken over and finished (deleted) by another host — whatever cartridge
// that host wrote on — and once this host's work ended.
func TestFenceHoldsTheClaims(t *testing.T) {
	a := startHost(t, "a", catalog.NewMemoryEngine(), t.TempDir(), time.Hour, nil)
	b, _ := sealTree(t, &testEngine{Engine: a.Engine}, "run", map[string][]byte{"x": randomBytes(4, 3000)})
	var jobs []catalog.Job
	if err := a.Engine.cat.View(func(tx *catalog.Tx) error {
		var err error
		jobs, err = tx.Jobs(catalog.JobMigrate)
		return err
	}); err != nil || len(jobs) != 1 {
		t.Fatalf("migrate jobs %v, %v", jobs, err)
	}
	claimed := a.claimJobs(jobs)
	if len(claimed) != 1 || claimed[0].Owner != "a" || claimed[0].Epoch != 1 {
		t.Fatalf("claim: %+v", claimed)
	}
	check := func() error {
		f := a.fenceFor("TF0001", map[uint64]int64{b.ID: 1})
		return a.Engine.cat.Update(func(tx *catalog.Tx) error { return tx.CheckFence(f) })
	}
	// This host writes TF0001 under its lease (held here at epoch 0).
	if err := a.Engine.cat.Update(func(tx *catalog.Tx) error {
		return tx.PutCartridgeLease(catalog.CartridgeLease{VOLSER: "TF0001", Holder: "a"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := check(); err != nil {
		t.Fatalf("fence while the claim holds: %v", err)
	}
	if err := a.Engine.cat.Update(func(tx *catalog.Tx) error { return tx.DeleteJob(jobs[0].ID) }); err != nil {
		t.Fatal(err)
	}
	if err := check(); !errors.Is(err, catalog.ErrFenced) {
		t.Errorf("fence after another host finished the job: %v, want ErrFenced", err)
	}
	a.endClaims(claimed)
	if f := a.fenceFor("TF0001", map[uint64]int64{b.ID: 1}); len(f.Jobs) != 0 {
		t.Errorf("claims kept after the work ended: %v", f.Jobs)
	}
}

// TestRepackCommitsAreFenced: a repack's commits — the references switched
// to the tape file it wrote, and the erase of the old cartridge — hold the
// job's claim like every other tape write: once another host has taken
// the job over, the host that lost it records nothing.
func TestRepackCommitsAreFenced(t *testing.T) {
	a := startHostWith(t, hostOpts{id: "a", shared: catalog.NewMemoryEngine(), libDir: t.TempDir(), flushAge: time.Hour, cartridges: 2})
	var job catalog.Job
	if err := a.Engine.cat.Update(func(tx *catalog.Tx) error {
		var err error
		// Not due for an hour: the repack loop leaves it to the test.
		job, err = tx.AddJob(catalog.Job{Kind: catalog.JobRepack, VOLSER: "TF0001", Progress: 1, Created: time.Now(), NotBefore: time.Now().Add(time.Hour)})
		if err != nil {
			return err
		}
		// The target of the tape file written, under this host's lease.
		return tx.PutCartridgeLease(catalog.CartridgeLease{VOLSER: "TF0002", Holder: "a"})
	}); err != nil {
		t.Fatal(err)
	}
	claimed := a.claimJobs([]catalog.Job{job})
	if len(claimed) != 1 || claimed[0].Owner != "a" {
		t.Fatalf("claim: %+v", claimed)
	}
	defer a.endClaims(claimed)
	// Host b takes the job over (a was paused past its lease).
	if err := a.Engine.cat.Update(func(tx *catalog.Tx) error {
		j, err := tx.Job(job.ID)
		if err != nil {
			return err
		}
		j.Owner, j.Epoch = "b", j.Epoch+1
		return tx.PutJob(j)
	}); err != nil {
		t.Fatal(err)
	}
	if err := a.commitRepack(&claimed[0], "TF0002", repackResult{next: 5}); !errors.Is(err, catalog.ErrFenced) {
		t.Errorf("commit of a repacked tape file by the host that lost the job: %v, want ErrFenced", err)
	}
	info, err := a.lib.Cartridge("TF0001")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.repackDone(claimed[0], info, 0, 0); !errors.Is(err, catalog.ErrFenced) {
		t.Errorf("erase recorded by the host that lost the job: %v, want ErrFenced", err)
	}
	j, found := jobRecord(t, a.Engine.cat, job.ID)
	if !found || j.Progress != 1 || j.Owner != "b" {
		t.Errorf("repack job after host a's late commits: %+v (found %v), want b's at progress 1", j, found)
	}
}

// TestRepackOnSharedLibrary: with several hosts a repack job, which
// belongs to a cartridge and not to a batch, is claimed and run like any
// other: the cartridge ends scratch, the files read back from their new
// copies. (The claim used to look the job's batch up and skip it.)
func TestRepackOnSharedLibrary(t *testing.T) {
	a := startHostWith(t, hostOpts{id: "a", shared: catalog.NewMemoryEngine(), libDir: t.TempDir(), flushAge: 20 * time.Millisecond, cartridges: 3, drives: 2})
	b, files := sealTree(t, &testEngine{Engine: a.Engine}, "run", map[string][]byte{"x": randomBytes(5, 70_000), "y": randomBytes(6, 3000)})
	waitSynced(t, a.Engine, b.ID)
	old := batchFiles(t, a.Engine, b.ID)["run/x"].Copies[0].VOLSER
	gen := cartInfoOf(t, a.libr, old).Generation
	if _, err := a.Repack(old); err != nil {
		t.Fatal(err)
	}
	waitRepacked(t, a.Engine)
	if info := cartInfoOf(t, a.libr, old); info.State != tape.CartridgeScratch || info.Generation != gen+1 {
		t.Fatalf("cartridge %s after its repack: %+v, want scratch of generation %d", old, info, gen+1)
	}
	for p, f := range batchFiles(t, a.Engine, b.ID) {
		if f.Type != catalog.TypeFile {
			continue
		}
		if len(f.Copies) != 1 || f.Copies[0].VOLSER == old {
			t.Fatalf("%s: copies %+v after the repack of %s", p, f.Copies, old)
		}
		if got, err := md5Through(context.Background(), a.Engine, f.ID); err != nil || got != files[p].MD5 {
			t.Fatalf("%s read back after the repack: %s, %v; want %s", p, got, err, files[p].MD5)
		}
	}
}
