package tape

import (
	"os"
	"path/filepath"
	"testing"
)

// writeTapeFile appends one tape file holding data.
func eraseTestFile(t *testing.T, d Drive, data string) int {
	t.Helper()
	n, err := d.SeekEOD()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEraseMakesScratchOfNextGeneration(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Cartridges: 2, Capacity: 1 << 20})
	if g := cartInfo(t, l, "TF0001").Generation; g != 1 {
		t.Fatalf("new cartridge: generation %d, want 1", g)
	}
	d := acquire(t, l, "TF0001")
	eraseTestFile(t, d, "first")
	eraseTestFile(t, d, "second")
	if err := d.Erase(); err != nil {
		t.Fatal(err)
	}
	ci := cartInfo(t, l, "TF0001")
	if ci.State != CartridgeScratch || ci.TapeFiles != 1 || ci.Generation != 2 {
		t.Fatalf("after erase: %+v, want scratch, 1 tape file, generation 2", ci)
	}
	if err := d.Locate(2, 0); err == nil {
		t.Fatal("locate to tape file 2 of an erased cartridge succeeded")
	}
	if err := d.Locate(1, 0); err != nil {
		t.Fatal(err)
	}
	if n, err := d.Read(make([]byte, 10)); n != 0 || err == nil {
		t.Fatalf("read at tape file 1 of an erased cartridge: %d bytes, %v; want end of data", n, err)
	}
	// Written again from the start: tape file 1 is new data.
	if n := eraseTestFile(t, d, "third"); n != 1 {
		t.Fatalf("first tape file after erase is %d, want 1", n)
	}
	l.Release(d)
	l.Close()
	if _, err := os.Stat(filepath.Join(dir, "TF0001", tapeFileName(2, 0))); err == nil {
		t.Fatal("tape file 2 still on disk after the erase")
	}
	l2 := openTest(t, Config{Dir: dir})
	ci = cartInfo(t, l2, "TF0001")
	if ci.Generation != 2 || ci.TapeFiles != 2 || ci.State != CartridgeFilling {
		t.Fatalf("reopened: %+v, want generation 2 with 2 tape files", ci)
	}
	if g := cartInfo(t, l2, "TF0002").Generation; g != 1 {
		t.Fatalf("other cartridge: generation %d, want 1", g)
	}
}

// A crash after the erase's INDEX was written and before the label was
// renamed in place: the next Open finishes the erase.
func TestEraseInterruptedIsFinishedAtOpen(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Cartridges: 1, Capacity: 1 << 20})
	d := acquire(t, l, "TF0001")
	eraseTestFile(t, d, "data")
	l.Release(d)
	l.Close()

	cdir := filepath.Join(dir, "TF0001")
	label, err := labelBytes("TF0001", l.now(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cdir, partialName(0, 0)), label, 0o644); err != nil {
		t.Fatal(err)
	}
	idx := cartridgeIndex{Format: formatVersion, VOLSER: "TF0001", Capacity: 1 << 20, Files: []indexFile{{N: 0, Size: int64(len(label))}}, Relabel: true}
	if err := writeJSONAtomic(filepath.Join(cdir, indexName), idx); err != nil {
		t.Fatal(err)
	}
	l2 := openTest(t, Config{Dir: dir})
	ci := cartInfo(t, l2, "TF0001")
	if ci.State != CartridgeScratch || ci.Generation != 2 || ci.TapeFiles != 1 {
		t.Fatalf("after an interrupted erase: %+v, want scratch of generation 2", ci)
	}
	for _, name := range []string{tapeFileName(1, 0), partialName(0, 0)} {
		if _, err := os.Stat(filepath.Join(cdir, name)); err == nil {
			t.Fatalf("%s left behind", name)
		}
	}
}

// A crash before the erase's INDEX: the new label is a stray and the
// cartridge keeps its data.
func TestEraseBeforeIndexKeepsData(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Cartridges: 1, Capacity: 1 << 20})
	d := acquire(t, l, "TF0001")
	eraseTestFile(t, d, "data")
	l.Release(d)
	l.Close()
	label, _ := labelBytes("TF0001", l.now(), 2)
	if err := os.WriteFile(filepath.Join(dir, "TF0001", partialName(0, 0)), label, 0o644); err != nil {
		t.Fatal(err)
	}
	l2 := openTest(t, Config{Dir: dir})
	ci := cartInfo(t, l2, "TF0001")
	if ci.State != CartridgeFilling || ci.Generation != 1 || ci.TapeFiles != 2 {
		t.Fatalf("%+v, want the cartridge as it was (generation 1, 2 tape files)", ci)
	}
}
