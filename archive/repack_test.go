package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// repackArchive puts batches of the test workspace on one cartridge,
// removes and purges some, evicts the rest from the cache and returns the
// cartridge, the live files (data owners) with their md5s and the purged
// batch IDs.
type repackArchive struct {
	te     *testEngine
	clk    *fakeClock
	volser string
	live   map[uint64]string // file ID -> sealed md5
	purged []uint64
	kept   []uint64
}

func buildRepackArchive(t testing.TB, setup testSetup, batches, size int, purge func(i int) bool) *repackArchive {
	t.Helper()
	clk := &fakeClock{t: time.Now()}
	setup.clock, setup.Settle, setup.Retention = clk, time.Hour, time.Hour
	te := setup.open(t)
	a := &repackArchive{te: te, clk: clk, live: map[uint64]string{}}
	for i := 0; i < batches; i++ {
		entry := fmt.Sprintf("run%d", i)
		dir := filepath.Join(te.StagingDir("ws"), entry)
		makeTree(t, te.StagingDir("ws"), []srcFile{
			{path: entry + "/a.dat", typ: catalog.TypeFile, data: randomBytes(int64(i), size+i), mode: 0o644},
			{path: entry + "/sub/b.dat", typ: catalog.TypeFile, data: randomBytes(int64(100+i), 70_000), mode: 0o600},
			{path: entry + "/sub/empty", typ: catalog.TypeDir, mode: 0o755},
			{path: entry + "/sub/ln", typ: catalog.TypeSymlink, target: "../a.dat"},
		})
		if err := os.Link(filepath.Join(dir, "a.dat"), filepath.Join(dir, "hard.dat")); err != nil {
			t.Fatal(err)
		}
		b, err := te.Seal(context.Background(), "ws", entry, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		clk.Add(time.Minute) // past the flush age
		te.wakeMigration()
		waitSynced(t, te.Engine, b.ID)
		if purge(i) {
			a.purged = append(a.purged, b.ID)
		} else {
			a.kept = append(a.kept, b.ID)
		}
	}
	vols := map[string]bool{}
	for _, id := range append(append([]uint64{}, a.kept...), a.purged...) {
		for _, f := range batchFiles(t, te.Engine, id) {
			for _, c := range f.Copies {
				vols[c.VOLSER] = true
			}
		}
	}
	if len(vols) != 1 {
		t.Fatalf("batches written to %v, want one cartridge", vols)
	}
	for v := range vols {
		a.volser = v
	}
	for _, id := range a.purged {
		if _, err := te.Remove(id); err != nil {
			t.Fatal(err)
		}
	}
	// The removals reach tape (the journal) before the purge.
	if err := te.JournalOnce(true); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Hour)
	te.purgeExpired()
	for _, id := range a.kept {
		for _, f := range batchFiles(t, te.Engine, id) {
			if f.Type == catalog.TypeFile && f.Link == 0 {
				a.live[f.ID] = f.MD5
			}
		}
		if _, err := te.EvictBatch(id); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// waitRepacked waits until no repack is queued.
func waitRepacked(t testing.TB, e *Engine) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		rs, err := e.Repacks()
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("repack still queued: %+v", rs)
		}
		e.wakeRepack()
		time.Sleep(20 * time.Millisecond)
	}
}

func cartridgeRec(t testing.TB, e *Engine, volser string) catalog.CartridgeRecord {
	t.Helper()
	var c catalog.CartridgeRecord
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		c, err = tx.Cartridge(volser)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRepackMovesLiveCopiesAndErases: a cartridge with purged batches on
// it is repacked by hand; every live file reads back from its new copy,
// no file refers to the old cartridge, which is scratch with a label of
// the next generation; a catalog rebuilt from the library is the one the
// engine has (hard links, symlinks, empty directories, removals, Synced
// times included), and the purged batches stay purged.
func TestRepackMovesLiveCopiesAndErases(t *testing.T) {
	a := buildRepackArchive(t, testSetup{Home: t.TempDir(), AggregateTarget: 300_000}, 6, 200_000, func(i int) bool { return i%2 == 1 })
	te := a.te
	// A batch removed (restorable, not purged) with an entry hidden
	// before: its state record is on the cartridge and must survive.
	files := batchFiles(t, te.Engine, a.kept[0])
	if _, err := te.RemoveEntry("ws", a.kept[0], files["run0/sub"].ID, "b.dat", false); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Remove(a.kept[0]); err != nil {
		t.Fatal(err)
	}
	if err := te.JournalOnce(true); err != nil {
		t.Fatal(err)
	}
	before := cartridgeRec(t, te.Engine, a.volser)
	if before.Dead == 0 || before.LiveFraction(tape.LabelSize()) > 0.7 {
		t.Fatalf("cartridge %s after purging half: dead %d, live %.2f", a.volser, before.Dead, before.LiveFraction(tape.LabelSize()))
	}
	gen := cartInfoOf(t, te.lib, a.volser).Generation
	for _, ev := range eventsOf(t, te.Engine, "journal") {
		if ev.VOLSER != a.volser {
			t.Fatalf("journal written to %s, not to the cartridge repacked (%s): the test would not see its records carried", ev.VOLSER, a.volser)
		}
	}

	if _, err := te.Repack(a.volser); err != nil {
		t.Fatal(err)
	}
	waitRepacked(t, te.Engine)

	info := cartInfoOf(t, te.lib, a.volser)
	if info.State != tape.CartridgeScratch || info.Generation != gen+1 {
		t.Fatalf("after repack: %+v, want scratch of generation %d", info, gen+1)
	}
	if rec := cartridgeRec(t, te.Engine, a.volser); rec.Dead != 0 || rec.Generation != gen+1 {
		t.Fatalf("catalog record after repack: %+v", rec)
	}
	for id, sum := range a.live {
		var f catalog.File
		te.cat.View(func(tx *catalog.Tx) error { f, _ = tx.File(id); return nil })
		if len(f.Copies) != 1 || f.Copies[0].VOLSER == a.volser {
			t.Fatalf("%s: copies %+v after the repack of %s", f.Path, f.Copies, a.volser)
		}
		got, err := md5Through(context.Background(), te.Engine, id)
		if err != nil || got != sum {
			t.Fatalf("%s read back after repack: %s, %v; want %s", f.Path, got, err, sum)
		}
		if f.Batch != a.kept[0] { // removed: not evictable, and the rebuild says SYNCED of it alike
			if _, err := te.EvictBatch(f.Batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(eventsOf(t, te.Engine, EvRepack)); n != 2 {
		t.Fatalf("%d repack events, want queued and finished", n)
	}
	// Nothing new goes to the cartridge while it is being repacked, and
	// it takes new data once scratch.
	want := catalogListing(t, te.cat)
	rebuilt, st, _ := rebuildInto(t, te.lib, filepath.Join(t.TempDir(), "rebuilt.db"))
	if st.Batches != len(a.kept) {
		t.Errorf("rebuild found %d batches, want %d (purged ones stay purged)", st.Batches, len(a.kept))
	}
	diffListings(t, want, catalogListing(t, rebuilt))
}

func cartInfoOf(t testing.TB, lib tape.Library, volser string) tape.CartridgeInfo {
	t.Helper()
	ci, err := lib.Cartridge(volser)
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

// TestRestoreAfterRepack: a catalog snapshot taken before a repack names
// copies on the cartridge the repack erased. Brought up to date from the
// library (catalog restore), it drops them (the label's generation says
// the cartridge was erased since) and reads the new copies: the result is
// the catalog the engine had after the repack.
func TestRestoreAfterRepack(t *testing.T) {
	home := t.TempDir()
	a := buildRepackArchive(t, testSetup{Home: home}, 4, 100_000, func(i int) bool { return i == 1 })
	setup := a.te.setup
	// The snapshot as the daemon takes it: a bbolt file whatever the
	// engine (PostgreSQL in make test's second archive run).
	snap := filepath.Join(t.TempDir(), "snapshot.db")
	if _, err := a.te.cat.WriteSnapshot(snap); err != nil {
		t.Fatal(err)
	}
	a.te.close()
	te := setup.open(t)
	if _, err := te.Repack(a.volser); err != nil {
		t.Fatal(err)
	}
	waitRepacked(t, te.Engine)
	want := catalogListing(t, te.cat)
	te.close()

	lib, err := tape.Open(tape.Config{Dir: filepath.Join(home, "library")})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	cat, err := catalog.Open(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	known := map[string]int{}
	cat.View(func(tx *catalog.Tx) error {
		cs, err := tx.Cartridges()
		for _, c := range cs {
			known[c.VOLSER] = c.TapeFiles
		}
		return err
	})
	if _, err := Rebuild(context.Background(), RebuildOptions{Catalog: cat, Library: lib, Known: known, Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	diffListings(t, want, catalogListing(t, cat))
	rec, err := func() (c catalog.CartridgeRecord, err error) {
		err = cat.View(func(tx *catalog.Tx) error { c, err = tx.Cartridge(a.volser); return err })
		return
	}()
	if err != nil || rec.Generation != 2 {
		t.Fatalf("restored record of %s: %+v, %v; want generation 2", a.volser, rec, err)
	}
}

// TestRepackRefusals: unknown and scratch cartridges are refused.
func TestRepackRefusals(t *testing.T) {
	te := testSetup{Home: t.TempDir()}.open(t)
	if _, err := te.Repack("TF9999"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("repack of an unknown cartridge: %v", err)
	}
	if _, err := te.Repack("TF0004"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("repack of a scratch cartridge: %v", err)
	}
	b, _ := sealTree(t, te, "e", map[string][]byte{"f": []byte("data")})
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	vol := batchFiles(t, te.Engine, b.ID)["e/f"].Copies[0].VOLSER
	ro := catalog.CartridgeReadOnly
	if _, _, err := te.SetCartridge(vol, CartridgeChange{State: &ro}); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Repack(vol); !errors.Is(err, ErrInvalid) || !contains(err.Error(), "read-only") {
		t.Fatalf("repack of a read-only cartridge: %v", err)
	}
}

// TestRepackByThreshold: with RepackBelow set, purging half of a
// cartridge's batches has it repacked by itself.
func TestRepackByThreshold(t *testing.T) {
	a := buildRepackArchive(t, testSetup{Home: t.TempDir(), RepackBelow: 0.6}, 4, 100_000, func(i int) bool { return i%2 == 0 })
	// Queued by the repack loop, woken by the purge: wait for its end.
	deadline := time.Now().Add(time.Minute)
	for len(eventsOf(t, a.te.Engine, EvRepack)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("repack events: %+v, want queued by the threshold and done", eventsOf(t, a.te.Engine, EvRepack))
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitRepacked(t, a.te.Engine)
	if info := cartInfoOf(t, a.te.lib, a.volser); info.Generation != 2 {
		t.Fatalf("%s after the threshold's repack: %+v", a.volser, info)
	}
	for id, sum := range a.live {
		if got, err := md5Through(context.Background(), a.te.Engine, id); err != nil || got != sum {
			t.Fatalf("file %d after the repack: %s %v, want %s", id, got, err, sum)
		}
	}
}

// BenchmarkRepack: a cartridge holding 8 batches of 8 MiB, every other one
// purged (50 % dead bytes), is repacked; simulated tape seconds against
// the lower bound, reading the live bytes once and writing them once. The
// drives stream at 400 KB/s, a thousandth of LTO-9, so that the 32 MiB
// live behave as 32 GiB do at full speed against the fixed costs (mounts,
// locates, filemarks), which are not scaled.
func BenchmarkRepack(b *testing.B) {
	const rate = 400_000
	a := buildRepackArchive(b, testSetup{Home: b.TempDir(), StreamRate: rate}, 8, 8<<20, func(i int) bool { return i%2 == 1 })
	te := a.te
	var live int64
	for _, id := range a.kept {
		for _, f := range batchFiles(b, te.Engine, id) {
			for _, c := range f.Copies {
				live += c.Length
			}
		}
	}
	info := cartInfoOf(b, te.lib, a.volser)
	rec := cartridgeRec(b, te.Engine, a.volser)
	c0 := te.lib.Counters()
	t0 := time.Now()
	b.ResetTimer()
	if _, err := te.Repack(a.volser); err != nil {
		b.Fatal(err)
	}
	waitRepacked(b, te.Engine)
	b.StopTimer()
	wall := time.Since(t0)
	c := te.lib.Counters()
	sim := c.SimSeconds - c0.SimSeconds
	bound := 2 * float64(live) / rate
	b.ReportMetric(sim, "sim-tape-s")
	b.ReportMetric(bound, "bound-s")
	b.ReportMetric(sim/bound, "ratio")
	b.Logf("cartridge %s: %d bytes written, %d dead (%.0f%%), %d live; repack: %.0f simulated tape s (lower bound %.0f s: ratio %.2f), "+
		"read %d bytes, wrote %d, %d mounts, %d locates, %d filemarks; wall %v",
		a.volser, info.Used, rec.Dead, 100*float64(rec.Dead)/float64(info.Used), live, sim, bound, sim/bound,
		c.BytesRead-c0.BytesRead, c.BytesWritten-c0.BytesWritten, c.Mounts-c0.Mounts, c.Locates-c0.Locates, c.Filemarks-c0.Filemarks, wall.Round(time.Millisecond))
}

// TestRepackFindsABadCopy: a file has two copies, and the one on the
// cartridge being repacked reads back wrong. The repack does not copy it:
// it reports the bad copy, its repair rewrites it from the good one (read
// from tape: nothing is cached), and only then is the cartridge erased.
// The file ends with two good copies, none on the repacked cartridge.
func TestRepackFindsABadCopy(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Cartridges: 6}.open(t)
	if _, err := te.SetCopies("ws", 2); err != nil {
		t.Fatal(err)
	}
	b, _ := sealTree(t, te, "e", map[string][]byte{"good": randomBytes(5, 150_000), "bad": randomBytes(6, 250_000)})
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	files := batchFiles(t, te.Engine, b.ID)
	bad := files["e/bad"]
	if len(bad.Copies) != 2 || bad.Copies[0].VOLSER == bad.Copies[1].VOLSER {
		t.Fatalf("copies of e/bad: %+v, want two on two cartridges", bad.Copies)
	}
	c := bad.Copies[0]
	vol := c.VOLSER
	flipOnTape(t, te.setup.Home, c, 5000)
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}

	if _, err := te.Repack(vol); err != nil {
		t.Fatal(err)
	}
	waitRepacked(t, te.Engine)
	if info := cartInfoOf(t, te.lib, vol); info.State != tape.CartridgeScratch {
		t.Fatalf("cartridge %s after the repack: %+v, want scratch", vol, info)
	}
	files = batchFiles(t, te.Engine, b.ID)
	for _, p := range []string{"e/good", "e/bad"} {
		f := files[p]
		if len(f.Copies) != 2 || f.Copies[0].VOLSER == f.Copies[1].VOLSER || f.Copies[0].VOLSER == vol || f.Copies[1].VOLSER == vol {
			t.Fatalf("%s after the repack of %s: copies %+v, want two elsewhere", p, vol, f.Copies)
		}
	}
	if len(eventsOf(t, te.Engine, EvCopyBad)) == 0 || len(eventsOf(t, te.Engine, EvCopyRepaired)) == 0 {
		t.Errorf("events: copy-bad %v, copy-repaired %v; want the bad copy reported and repaired",
			eventsOf(t, te.Engine, EvCopyBad), eventsOf(t, te.Engine, EvCopyRepaired))
	}
	// Both copies read back whole now.
	rep, err := te.VerifyTape(context.Background(), TapeScope{Batch: b.ID})
	if err != nil || len(rep.Damaged) != 0 || rep.Files != 4 {
		t.Fatalf("verify after the repack: %+v %v; want 4 copies, none damaged", rep, err)
	}
}

// TestRepackOfAnOnlyBadCopyWaitsAndSaysWhy: the only copy of a file is
// bad on the cartridge being repacked. Nothing can repair it, so the
// repack cannot finish; it waits (the cartridge keeps the copy, nothing
// is erased) and says why in its status, for an operator to decide.
func TestRepackOfAnOnlyBadCopyWaitsAndSaysWhy(t *testing.T) {
	te := testSetup{Home: t.TempDir()}.open(t)
	b, _ := sealTree(t, te, "e", map[string][]byte{"good": randomBytes(7, 150_000), "bad": randomBytes(8, 250_000)})
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	c := batchFiles(t, te.Engine, b.ID)["e/bad"].Copies[0]
	flipOnTape(t, te.setup.Home, c, 7000)
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Repack(c.VOLSER); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rs, err := te.Repacks()
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 {
			t.Fatalf("repacks %+v: the repack of a cartridge holding an only bad copy ended", rs)
		}
		if contains(rs[0].Waits, "nothing to repair from") {
			t.Logf("repack waits: %s", rs[0].Waits)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("repack status %+v: never says why it cannot finish", rs[0])
		}
		te.wakeRepack()
		te.wakeRepair()
		time.Sleep(50 * time.Millisecond)
	}
	if info := cartInfoOf(t, te.lib, c.VOLSER); info.State == tape.CartridgeScratch {
		t.Fatalf("cartridge %s was erased with the only copy of a file on it", c.VOLSER)
	}
}
