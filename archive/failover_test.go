package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// flipOnTape inverts 8 bytes of a copy in its cartridge's tape file.
func flipOnTape(t *testing.T, home string, c catalog.Copy, off int64) {
	t.Helper()
	p := filepath.Join(home, "library", c.VOLSER, fmt.Sprintf("%06d.tar", c.TapeFile))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, c.Offset+off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, c.Offset+off); err != nil {
		t.Fatal(err)
	}
}

// TestReadFailsOverToNextCopy: in a workspace with copies = 2, the first
// copy of a file is damaged on its cartridge; a read gets the right bytes from the second copy (none of the
// damaged ones), an event names the bad cartridge and the file, the bad
// copy is rewritten elsewhere and replaced in the catalog, and reading
// every tape copy back then finds nothing wrong. A file whose first
// cartridge cannot be read at all (its tape file gone) is read from the
// second copy too.
func TestReadFailsOverToNextCopy(t *testing.T) {
	te := copiesSetup(t, 2, nil) // two pools of two cartridges
	home := te.setup.Home
	data := map[string][]byte{"big.dat": randomBytes(1, 3<<20), "small.dat": randomBytes(2, 5000), "gone.dat": randomBytes(3, 4000)}
	b, _ := sealTree(t, te, "e", data)
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	files := batchFiles(t, te.Engine, b.ID)
	big, small := files["e/big.dat"], files["e/small.dat"]
	if len(big.Copies) != 2 {
		t.Fatalf("copies of big.dat: %+v", big.Copies)
	}
	second := big.Copies[1].VOLSER
	pools := te.cartRecords()
	first := big.Copies[0]
	flipOnTape(t, home, first, 2<<20)       // deep inside: a streaming reader would have had the bytes before
	flipOnTape(t, home, small.Copies[0], 0) // the first bytes
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}

	for _, name := range []string{"e/big.dat", "e/small.dat"} {
		f := files[name]
		got, err := md5Through(context.Background(), te.Engine, f.ID)
		if err != nil || got != f.MD5 {
			t.Fatalf("%s through the engine: %s, %v; want %s", name, got, err, f.MD5)
		}
	}
	var named bool
	for _, ev := range eventsOf(t, te.Engine, EvCopyBad) {
		if ev.VOLSER == first.VOLSER && contains(ev.Message, "e/big.dat") {
			named = true
		}
	}
	if !named {
		t.Fatalf("no %s event names cartridge %s and e/big.dat: %+v", EvCopyBad, first.VOLSER, eventsOf(t, te.Engine, EvCopyBad))
	}
	// The repair: both bad copies are replaced, in their place.
	deadline := time.Now().Add(time.Minute)
	for {
		fs := batchFiles(t, te.Engine, b.ID)
		if fs["e/big.dat"].Copies[0] != first && fs["e/small.dat"].Copies[0] != small.Copies[0] {
			for _, name := range []string{"e/big.dat", "e/small.dat"} {
				c := fs[name].Copies
				if len(c) != 2 || c[1].VOLSER != second || c[0].VOLSER == second || pools[c[0].VOLSER].Pool != pools[first.VOLSER].Pool {
					t.Fatalf("%s after repair: copies %+v, want a new first copy in the pool of %s and the second on %s", name, c, first.VOLSER, second)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bad copies not repaired: %+v / %+v", fs["e/big.dat"].Copies, fs["e/small.dat"].Copies)
		}
		te.wakeRepair()
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(eventsOf(t, te.Engine, EvCopyRepaired)); n != 2 {
		t.Fatalf("%d %s events, want 2", n, EvCopyRepaired)
	}
	if rec := cartridgeRec(t, te.Engine, first.VOLSER); rec.Dead != first.Length+small.Copies[0].Length {
		t.Fatalf("dead bytes on %s: %d, want %d", first.VOLSER, rec.Dead, first.Length+small.Copies[0].Length)
	}
	rep, err := te.VerifyTape(context.Background(), TapeScope{Batch: b.ID})
	if err != nil || len(rep.Damaged) != 0 {
		t.Fatalf("verify after repair: %+v, %v", rep.Damaged, err)
	}
	// The tapes say the bad copies are none: a catalog rebuilt from the
	// library has the copies the engine has, not the damaged ones.
	rebuilt, _, _ := rebuildInto(t, te.lib, filepath.Join(t.TempDir(), "rebuilt.db"))
	var got []catalog.File
	rebuilt.View(func(tx *catalog.Tx) error { got, err = tx.Files(b.ID, 0, 0); return err })
	want := batchFiles(t, te.Engine, b.ID)
	for _, f := range got {
		w := want[f.Path].Copies
		if len(f.Copies) != len(w) {
			t.Fatalf("%s rebuilt with copies %+v, the engine has %+v", f.Path, f.Copies, w)
		}
		for _, c := range f.Copies {
			if !slices.Contains(w, c) {
				t.Fatalf("%s rebuilt with copies %+v, the engine has %+v", f.Path, f.Copies, w)
			}
		}
	}
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	// A tape file that is gone (a medium error): read from the other copy.
	gone := batchFiles(t, te.Engine, b.ID)["e/gone.dat"]
	if err := os.Remove(filepath.Join(home, "library", gone.Copies[0].VOLSER, fmt.Sprintf("%06d.tar", gone.Copies[0].TapeFile))); err != nil {
		t.Fatal(err)
	}
	if got, err := md5Through(context.Background(), te.Engine, gone.ID); err != nil || got != gone.MD5 {
		t.Fatalf("gone.dat with its first tape file gone: %s, %v", got, err)
	}
}

// TestReadOneCopyDamagedIsEIO: with one copy only, a damaged copy is still
// an error for the reader (nothing to fail over to), not wrong bytes
// given as right.
func TestReadOneCopyDamagedIsEIO(t *testing.T) {
	home := t.TempDir()
	te := testSetup{Home: home, Settle: time.Hour}.open(t)
	b, _ := sealTree(t, te, "e", map[string][]byte{"a": randomBytes(4, 100_000)})
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	f := batchFiles(t, te.Engine, b.ID)["e/a"]
	flipOnTape(t, home, f.Copies[0], 10)
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := md5Through(context.Background(), te.Engine, f.ID); err == nil {
		t.Fatalf("damaged only copy read without error (md5 %s)", got)
	}
}

// TestVerifyRepairsBadCopy: a read-back (tapefs verify) that finds a copy
// damaged queues its repair when the file has another copy; once repaired,
// a second read-back finds nothing wrong.
func TestVerifyRepairsBadCopy(t *testing.T) {
	te := copiesSetup(t, 2, nil)
	b, _ := sealTree(t, te, "e", map[string][]byte{"a": randomBytes(9, 200_000), "b": randomBytes(10, 3000)})
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	a := batchFiles(t, te.Engine, b.ID)["e/a"]
	bad := a.Copies[1]
	flipOnTape(t, te.setup.Home, bad, 100)
	rep, err := te.VerifyTape(context.Background(), TapeScope{Batch: b.ID})
	if err != nil || len(rep.Damaged) != 1 || rep.Damaged[0].VOLSER != bad.VOLSER {
		t.Fatalf("first read-back: %+v, %v; want the copy on %s damaged", rep.Damaged, err, bad.VOLSER)
	}
	deadline := time.Now().Add(time.Minute)
	for batchFiles(t, te.Engine, b.ID)["e/a"].Copies[1] == bad {
		if time.Now().After(deadline) {
			t.Fatal("the damaged copy found by verify was not repaired")
		}
		te.wakeRepair()
		time.Sleep(20 * time.Millisecond)
	}
	if rep, err := te.VerifyTape(context.Background(), TapeScope{Batch: b.ID}); err != nil || len(rep.Damaged) != 0 {
		t.Fatalf("read-back after the repair: %+v, %v", rep.Damaged, err)
	}
}
