package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// poolLibrary refuses mounts of the cartridges in deny while it is set: a
// pool whose cartridges cannot be written (or read) for now.
type poolLibrary struct {
	tape.Library
	deny atomic.Value // map[string]bool
}

func (p *poolLibrary) Acquire(ctx context.Context, volser string) (tape.Drive, error) {
	if m, _ := p.deny.Load().(map[string]bool); m[volser] {
		return nil, fmt.Errorf("cartridge %s stuck in its slot (injected)", volser)
	}
	return p.Library.Acquire(ctx, volser)
}

// copiesSetup is an engine on 4 cartridges in two pools (TF0001-2 pool-a,
// TF0003-4 pool-b), workspace ws with the given copies.
func copiesSetup(t *testing.T, copies int, wrap func(tape.Library) tape.Library) *testEngine {
	t.Helper()
	te := testSetup{Home: t.TempDir(), Settle: time.Hour, Cartridges: 4, wrap: wrap}.open(t)
	if err := te.AssignPools("pool-a", "pool-b"); err != nil {
		t.Fatal(err)
	}
	if _, err := te.SetCopies("ws", copies); err != nil {
		t.Fatal(err)
	}
	return te
}

// sealCopiesTree seals a small tree with files, a hard link, a symlink and an
// empty directory; it returns the batch and the md5 of each regular file.
func sealCopiesTree(t *testing.T, te *testEngine, entry string) (catalog.Batch, map[string]string) {
	t.Helper()
	staging := te.StagingDir("ws")
	var files []srcFile
	sums := map[string]string{}
	for i := range 20 {
		data := randomBytes(int64(i+len(entry)), 1000+i*3000)
		p := fmt.Sprintf("%s/d%d/f%02d", entry, i%3, i)
		files = append(files, srcFile{path: p, typ: catalog.TypeFile, data: data, mode: 0o644})
		sums[p] = md5hex(data)
	}
	files = append(files, srcFile{path: entry + "/empty", typ: catalog.TypeDir, mode: 0o755},
		srcFile{path: entry + "/sym", typ: catalog.TypeSymlink, target: "d0/f00"})
	makeTree(t, staging, files)
	if err := os.Link(filepath.Join(staging, entry, "d0/f00"), filepath.Join(staging, entry, "hard")); err != nil {
		t.Fatal(err)
	}
	sums[entry+"/hard"] = sums[entry+"/d0/f00"]
	b, err := te.Seal(context.Background(), "ws", entry, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	return b, sums
}

// checkCopies checks that every data file of a batch has want good copies,
// each on another cartridge and, for up to two copies, in another pool.
func checkCopies(t *testing.T, te *testEngine, id uint64, want int) {
	t.Helper()
	recs := te.cartRecords()
	for p, f := range batchFiles(t, te.Engine, id) {
		if f.Type != catalog.TypeFile || f.Link != 0 {
			continue
		}
		good := f.GoodCopies(te.cartBad)
		if len(good) != want {
			t.Errorf("%s: %d good copies %+v, want %d", p, len(good), f.Copies, want)
			continue
		}
		carts, pools := map[string]bool{}, map[string]bool{}
		for _, c := range good {
			carts[c.VOLSER] = true
			pools[recs[c.VOLSER].Pool] = true
		}
		if len(carts) != want || len(pools) != min(want, 2) {
			t.Errorf("%s: copies %+v share cartridges or pools (pools %v)", p, good, pools)
		}
	}
}

// readBack evicts everything and reads every file of the batch through the
// engine (a recall from tape), comparing md5s.
func readBack(t *testing.T, te *testEngine, id uint64, sums map[string]string) {
	t.Helper()
	if _, err := te.cache.EvictTo(0); err != nil {
		t.Fatal(err)
	}
	for p, f := range batchFiles(t, te.Engine, id) {
		if f.Type != catalog.TypeFile {
			continue
		}
		got, err := md5Through(context.Background(), te.Engine, f.ID)
		if err != nil || got != sums[p] {
			t.Errorf("%s: md5 %s, %v; want %s", p, got, err, sums[p])
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func copyJobCount(t *testing.T, te *testEngine) int {
	t.Helper()
	n := 0
	if err := te.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(catalog.JobCopy)
		n = len(jobs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCopiesTwoPools: a workspace with copies = 2 gets each file on two
// cartridges in two pools, and each copy is a whole tape file set: the
// tree (directories, symlink, hard link) is in both.
func TestCopiesTwoPools(t *testing.T) {
	te := copiesSetup(t, 2, nil)
	b, sums := sealCopiesTree(t, te, "run")
	b = waitSynced(t, te.Engine, b.ID)
	if b.State != catalog.CachedSynced || b.Copies != 2 || b.OnTape != 2*b.Bytes {
		t.Fatalf("batch: state %s, copies %d, on tape %d of 2×%d", b.State, b.Copies, b.OnTape, b.Bytes)
	}
	if st, _ := te.Status(b.ID); st.Progress != 1 {
		t.Fatalf("progress %v", st.Progress)
	}
	checkCopies(t, te, b.ID, 2)
	// Each pool's tape files hold the batch's whole tree.
	for _, pool := range []string{"pool-a", "pool-b"} {
		paths := map[string]bool{}
		for v, r := range te.cartRecords() {
			if r.Pool != pool {
				continue
			}
			for _, m := range tapeMembers(t, te, v) {
				paths[m] = true
			}
		}
		for _, p := range []string{"run/empty", "run/sym", "run/hard", "run/d2/f05"} {
			if !paths[p] {
				t.Errorf("%s: no member %s on its cartridges (%d members)", pool, p, len(paths))
			}
		}
	}
	readBack(t, te, b.ID, sums)
}

// tapeMembers lists the member paths of every tape file of a cartridge.
func tapeMembers(t *testing.T, te *testEngine, volser string) []string {
	t.Helper()
	info, err := te.lib.Cartridge(volser)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for n := 1; n < info.TapeFiles; n++ {
		f, err := os.Open(filepath.Join(te.setup.Home, "library", volser, fmt.Sprintf("%06d.tar", n)))
		if err != nil {
			t.Fatal(err)
		}
		err = tape.ReadAggregate(f, func(m tape.Member, _ io.Reader) error {
			out = append(out, m.Path)
			return nil
		})
		f.Close()
		if err != nil {
			t.Fatalf("%s tape file %d: %v", volser, n, err)
		}
	}
	return out
}

// TestCopiesSyncedOnlyWhenAll: while pool-b cannot be written, a batch
// with copies = 2 has its first copy recorded but is not CACHED_SYNCED,
// its data is not evictable and its progress says half; once pool-b works
// the second copy is written and only then is the batch on tape.
func TestCopiesSyncedOnlyWhenAll(t *testing.T) {
	pl := &poolLibrary{}
	pl.deny.Store(map[string]bool{"TF0003": true, "TF0004": true})
	te := copiesSetup(t, 2, func(l tape.Library) tape.Library { pl.Library = l; return pl })
	b, sums := sealCopiesTree(t, te, "run")
	// Wait until the batch has used up its attempts (MaxAttempts 2, 20 ms
	// apart) and is FAILED: lifting the denial any earlier races the
	// retry timer, and the state seen here would depend on the load.
	waitFor(t, "the first copy and the batch FAILED for want of the second", func() bool {
		st, _ := te.Status(b.ID)
		return st.OnTape == st.Bytes && st.State == catalog.Failed
	})
	st, _ := te.Status(b.ID)
	if st.State.OnTape() || st.Progress != 0.5 || st.Attempts < te.cfg.MaxAttempts {
		t.Fatalf("one copy of two written: state %s, progress %v, attempts %d", st.State, st.Progress, st.Attempts)
	}
	for _, f := range batchFiles(t, te.Engine, b.ID) {
		if f.Type == catalog.TypeFile && f.Link == 0 {
			if info, ok := te.cache.Lookup(f.ID); !ok || info.Synced {
				t.Fatalf("%s evictable before its second copy: %+v", f.Path, info)
			}
		}
	}
	// A FAILED batch keeps being retried: once pool-b works its second
	// copy is written and only then is it on tape. (WaitBatch gives up
	// on FAILED, so poll the state.)
	pl.deny.Store(map[string]bool{})
	waitFor(t, "the batch on tape with both copies", func() bool {
		st, _ := te.Status(b.ID)
		return st.State.OnTape()
	})
	b = waitSynced(t, te.Engine, b.ID)
	if b.OnTape != 2*b.Bytes {
		t.Fatalf("on tape %d, want %d", b.OnTape, 2*b.Bytes)
	}
	checkCopies(t, te, b.ID, 2)
	readBack(t, te, b.ID, sums)
}

// TestCopiesRaised: raising a workspace's copies from 1 to 2 writes the
// second copy of a batch already on tape and evicted (recalled into the
// cache first), in the other pool, and the batch stays SYNCED meanwhile.
func TestCopiesRaised(t *testing.T) {
	te := copiesSetup(t, 1, nil)
	b, sums := sealCopiesTree(t, te, "run")
	waitSynced(t, te.Engine, b.ID)
	checkCopies(t, te, b.ID, 1)
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := te.SetCopies("ws", 2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the copy job to end", func() bool { return copyJobCount(t, te) == 0 })
	checkCopies(t, te, b.ID, 2)
	st, _ := te.Status(b.ID)
	if !st.State.OnTape() || st.Copies != 2 || st.Progress != 1 {
		t.Fatalf("after raising: state %s, copies %d, progress %v", st.State, st.Copies, st.Progress)
	}
	// The new copies alone give the data back.
	first := map[string]bool{}
	for _, f := range batchFiles(t, te.Engine, b.ID) {
		if len(f.Copies) > 0 {
			first[f.Copies[0].VOLSER] = true
		}
	}
	for v := range first {
		lost := "lost"
		if _, _, err := te.SetCartridge(v, CartridgeChange{State: &lost}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the copy jobs to end", func() bool { return copyJobCount(t, te) == 0 })
	for v := range first {
		if err := os.RemoveAll(filepath.Join(te.setup.Home, "library", v)); err != nil {
			t.Fatal(err)
		}
	}
	readBack(t, te, b.ID, sums)
}

// TestCartridgeLost: marking a cartridge lost re-creates the copies it held
// from the other copies, in the lost cartridge's pool, and the files read
// back with its tape files deleted; the workspace shows missing copies
// until then.
func TestCartridgeLost(t *testing.T) {
	pl := &poolLibrary{}
	te := copiesSetup(t, 2, func(l tape.Library) tape.Library { pl.Library = l; return pl })
	b, sums := sealCopiesTree(t, te, "run")
	waitSynced(t, te.Engine, b.ID)
	var lostVol string
	for _, f := range batchFiles(t, te.Engine, b.ID) {
		if len(f.Copies) == 2 {
			lostVol = f.Copies[1].VOLSER
			break
		}
	}
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	// Hold the copy job back (the other pool cannot be mounted) to see
	// the workspace reported short of copies.
	other := map[string]bool{}
	for v, r := range te.cartRecords() {
		if r.Pool != te.cartRecords()[lostVol].Pool {
			other[v] = true
		}
	}
	pl.deny.Store(other)
	lost := catalog.CartridgeLost
	rec, n, err := te.SetCartridge(lostVol, CartridgeChange{State: &lost})
	if err != nil || n != 1 || rec.Status() != catalog.CartridgeLost {
		t.Fatalf("mark lost: %+v, %d batches, %v", rec, n, err)
	}
	if m, err := te.CopiesMissing(); err != nil || m["ws"] != 1 {
		t.Fatalf("copies missing: %v %v", m, err)
	}
	checkCopies(t, te, b.ID, 1)
	pl.deny.Store(map[string]bool{})
	waitFor(t, "the copy job to end", func() bool { return copyJobCount(t, te) == 0 })
	if m, _ := te.CopiesMissing(); len(m) != 0 {
		t.Fatalf("copies still missing: %v", m)
	}
	checkCopies(t, te, b.ID, 2)
	for _, f := range batchFiles(t, te.Engine, b.ID) {
		for _, c := range f.GoodCopies(te.cartBad) {
			if c.VOLSER == lostVol {
				t.Fatalf("%s: a good copy on the lost cartridge", f.Path)
			}
		}
	}
	if err := os.RemoveAll(filepath.Join(te.setup.Home, "library", lostVol)); err != nil {
		t.Fatal(err)
	}
	readBack(t, te, b.ID, sums)
	// Migration never writes to it again.
	if v, err := te.pickCartridge(1, "", func(v string) bool { return v == lostVol }); err == nil {
		t.Fatalf("lost cartridge %s picked for writing (%s)", lostVol, v)
	}
}

// TestRebuildKeepsCopies: a catalog rebuilt from the library alone has
// both copies of every file, the copies of batch and workspace, and the
// pools of the cartridges written.
func TestRebuildKeepsCopies(t *testing.T) {
	te := copiesSetup(t, 2, nil)
	b, _ := sealCopiesTree(t, te, "run")
	waitSynced(t, te.Engine, b.ID)
	want := batchFiles(t, te.Engine, b.ID)
	rebuilt, _, _ := rebuildInto(t, te.lib, filepath.Join(t.TempDir(), "rebuilt.db"))
	err := rebuilt.View(func(tx *catalog.Tx) error {
		rb, err := tx.Batch(b.ID)
		if err != nil {
			return err
		}
		if rb.Copies != 2 || rb.OnTape != 2*rb.Bytes || !rb.State.OnTape() {
			t.Errorf("rebuilt batch: copies %d, on tape %d of %d, state %s", rb.Copies, rb.OnTape, rb.Bytes, rb.State)
		}
		w, err := tx.Workspace("ws")
		if err != nil || w.Copies != 2 {
			t.Errorf("rebuilt workspace: %+v %v", w, err)
		}
		// Each cartridge written comes back in its pool: the closing record
		// of its tape files names it.
		carts, err := tx.CartridgeMap()
		if err != nil {
			return err
		}
		for v, r := range te.cartRecords() {
			if info, _ := te.lib.Cartridge(v); info.TapeFiles > 1 && carts[v].Pool != r.Pool {
				t.Errorf("rebuilt cartridge %s: pool %q, want %q", v, carts[v].Pool, r.Pool)
			}
		}
		files, err := tx.Files(b.ID, 0, 0)
		for _, f := range files {
			got, exp := copyKeys(f.Copies), copyKeys(want[f.Path].Copies)
			if !slices.Equal(got, exp) {
				t.Errorf("%s: rebuilt copies %v, want %v", f.Path, got, exp)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func copyKeys(cs []catalog.Copy) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s/%d@%d+%d", c.VOLSER, c.TapeFile, c.Offset, c.Length))
	}
	sort.Strings(out)
	return out
}

// TestCopyPlanTargets: where the missing copies of a file go.
func TestCopyPlanTargets(t *testing.T) {
	p := copyPlan{pools: []string{"pool-a", "pool-b"}, poolOf: map[string]string{"A1": "pool-a", "B1": "pool-b", "A2": "pool-a"},
		bad: func(v string) bool { return v == "A2" }}
	cases := []struct {
		copies []string
		want   int
		out    string
	}{
		{nil, 1, "*0"},
		{nil, 2, "pool-a,pool-b"},
		{nil, 3, "pool-a,pool-b,*0"},
		{[]string{"A1"}, 2, "pool-b"},
		{[]string{"B1"}, 2, "pool-a"},
		{[]string{"A2"}, 2, "pool-a,pool-b"}, // on a lost cartridge: does not count
		{[]string{"A1", "B1"}, 2, ""},
		{[]string{"A1"}, 1, ""},
	}
	for _, c := range cases {
		f := catalog.File{}
		for _, v := range c.copies {
			f.Copies = append(f.Copies, catalog.Copy{VOLSER: v})
		}
		if got := strings.Join(p.targets(&f, c.want), ","); got != c.out {
			t.Errorf("copies %v, want %d: targets %q, want %q", c.copies, c.want, got, c.out)
		}
	}
}

// TestCartridgeReadOnly: a read-only cartridge is still read (its copies
// count, nothing is re-created) but never written; ok gives it back to
// migration.
func TestCartridgeReadOnly(t *testing.T) {
	te := copiesSetup(t, 1, nil)
	b, sums := sealCopiesTree(t, te, "run")
	waitSynced(t, te.Engine, b.ID)
	var vol string
	for _, f := range batchFiles(t, te.Engine, b.ID) {
		if len(f.Copies) > 0 {
			vol = f.Copies[0].VOLSER
		}
	}
	ro := catalog.CartridgeReadOnly
	if rec, n, err := te.SetCartridge(vol, CartridgeChange{State: &ro}); err != nil || n != 0 || rec.Status() != ro {
		t.Fatalf("read-only: %+v, %d batches to copy, %v", rec, n, err)
	}
	if v, err := te.pickCartridge(1, "", func(v string) bool { return v == vol }); err == nil {
		t.Fatalf("read-only cartridge %s picked for writing (%s)", vol, v)
	}
	checkCopies(t, te, b.ID, 1)
	readBack(t, te, b.ID, sums)
	b2, _ := sealCopiesTree(t, te, "more")
	for _, f := range batchFiles(t, te.Engine, waitSynced(t, te.Engine, b2.ID).ID) {
		for _, c := range f.Copies {
			if c.VOLSER == vol {
				t.Fatalf("%s written on read-only %s", f.Path, vol)
			}
		}
	}
	ok := "ok"
	if rec, _, err := te.SetCartridge(vol, CartridgeChange{State: &ok}); err != nil || rec.Admin != "" || rec.Status() == ro {
		t.Fatalf("ok: %+v %v", rec, err)
	}
	if _, err := te.pickCartridge(1, "", func(v string) bool { return v == vol }); err != nil {
		t.Fatalf("%s not writable again: %v", vol, err)
	}
	bad := "broken"
	if _, _, err := te.SetCartridge(vol, CartridgeChange{State: &bad}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("state broken: %v", err)
	}
	if _, _, err := te.SetCartridge("XX9999", CartridgeChange{State: &ro}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown cartridge: %v", err)
	}
}

// TestCartRecordsReadOnlyOutsideTransactions: picking a copy to read runs
// inside catalog transactions (recall, failover, verify, copy planning),
// so the cartridge records it consults must already be in memory. A
// change of a cartridge reloads them at once; on main it only dropped
// them, and the next reader loaded them inside its transaction: a nested
// transaction (two PostgreSQL pool connections; a panic under
// TAPEFS_CATALOG_NESTING=panic, which failed CI in the copy loop).
func TestCartRecordsReadOnlyOutsideTransactions(t *testing.T) {
	te := copiesSetup(t, 2, nil)
	has := func() bool {
		te.carts.mu.Lock()
		defer te.carts.mu.Unlock()
		return te.carts.recs != nil
	}
	if !has() {
		t.Fatal("cartridge records not loaded when the engine opened")
	}
	dis := catalog.CartridgeDisabled
	if _, _, err := te.SetCartridge("TF0001", CartridgeChange{State: &dis}); err != nil {
		t.Fatal(err)
	}
	if !has() {
		t.Fatal("cartridge records dropped by a change: the next reader would load them inside its transaction")
	}
	if !te.cartBad("TF0001") || te.cartBad("TF0002") {
		t.Fatalf("after disabling TF0001: bad(TF0001)=%v bad(TF0002)=%v", te.cartBad("TF0001"), te.cartBad("TF0002"))
	}
	if err := te.AssignPools("pool-a", "pool-b"); err != nil {
		t.Fatal(err)
	}
	if !has() {
		t.Fatal("cartridge records dropped by the pool assignment")
	}
}

// TestEvictTrustsTheCatalog: a batch the catalog says is on tape is
// evicted whole even when the cache has not yet heard that its objects
// are synced (the migration tells it just after its commit, so an evict
// right after the state changed used to leave every file cached and say
// nothing: seen on PostgreSQL, where that window is wider).
func TestEvictTrustsTheCatalog(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Settle: time.Hour}.open(t)
	b, _ := sealCopiesTree(t, te, "e")
	waitSynced(t, te.Engine, b.ID)
	files := batchFiles(t, te.Engine, b.ID)
	for _, f := range files {
		if f.Type == catalog.TypeFile && f.Link == 0 {
			te.cache.SetSynced(f.ID, false) // as between the commit and markSynced
		}
	}
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	for p, f := range files {
		if _, ok := te.cache.Lookup(f.ID); ok && f.Type == catalog.TypeFile {
			t.Errorf("%s still cached after evicting batch %d", p, b.ID)
		}
	}
}
