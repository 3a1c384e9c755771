package tape

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeTapeFile appends data as a new tape file and returns its number.
func writeTapeFile(t *testing.T, d Drive, data []byte) int {
	t.Helper()
	n, err := d.SeekEOD()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write(data); err != nil {
		t.Fatalf("write tape file %d: %v", n, err)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	return n
}

func readTapeFile(t *testing.T, d Drive, n int) []byte {
	t.Helper()
	if err := d.Locate(n, 0); err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("read tape file %d: %v", n, err)
	}
	return data
}

func readIndex(t *testing.T, dir string) cartridgeIndex {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "INDEX"))
	if err != nil {
		t.Fatal(err)
	}
	var idx cartridgeIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestAppendLocateRead(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	files := [][]byte{[]byte("first tape file"), bytes.Repeat([]byte("0123456789"), 1000), {}, []byte("last")}
	for i, data := range files {
		if n := writeTapeFile(t, d, data); n != i+1 {
			t.Fatalf("tape file %d written as %d", i+1, n)
		}
		if n, off := d.Position(); n != i+2 || off != 0 {
			t.Fatalf("after filemark at (%d, %d)", n, off)
		}
	}
	if n, err := d.SeekEOD(); n != 5 || err != nil {
		t.Fatalf("SeekEOD = %d, %v", n, err)
	}
	for i := len(files) - 1; i >= 0; i-- {
		if got := readTapeFile(t, d, i+1); !bytes.Equal(got, files[i]) {
			t.Errorf("tape file %d: %d bytes, want %d", i+1, len(got), len(files[i]))
		}
	}
	if err := d.Locate(2, 9995); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := d.Read(buf)
	if string(buf[:n]) != "56789" || err != nil {
		t.Errorf("read at the end of file 2: %q, %v", buf[:n], err)
	}
	if n, err := d.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read at the filemark: %d, %v; want io.EOF", n, err)
	}
	if n, err := d.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("read after the filemark: %d, %v; want io.EOF", n, err)
	}
	for _, bad := range []struct {
		n   int
		off int64
	}{{0, 0}, {6, 0}, {5, 1}, {1, 16}, {1, -1}} {
		if err := d.Locate(bad.n, bad.off); err == nil {
			t.Errorf("Locate(%d, %d) succeeded", bad.n, bad.off)
		}
	}
	if err := d.Locate(9, 0); !errors.Is(err, ErrNoSuchFile) {
		t.Errorf("Locate past the last file: %v, want ErrNoSuchFile", err)
	}

	ci := cartInfo(t, l, "TF0001")
	var total int64
	for _, f := range files {
		total += int64(len(f))
	}
	label := readIndex(t, filepath.Join(l.dir, "TF0001")).Files[0].Size
	if ci.State != CartridgeFilling || ci.TapeFiles != 5 || ci.Used != label+total || ci.Drive != 0 {
		t.Errorf("cartridge %+v, want filling, 5 tape files, %d bytes used", ci, label+total)
	}
	if d.Remaining() != ci.Capacity-ci.Used {
		t.Errorf("Remaining at EOD %d, want %d", d.Remaining(), ci.Capacity-ci.Used)
	}
	c := l.Counters()
	if c.BytesWritten != total || c.Filemarks != 4 || c.BytesRead != total+5 {
		t.Errorf("counters %+v", c)
	}
}

func TestLocateCost(t *testing.T) {
	const capacity = 1_000_000
	l := openTest(t, Config{Drives: 1, Cartridges: 1, Capacity: capacity})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	for _, size := range []int{1000, 2000, 3000} {
		writeTapeFile(t, d, make([]byte, size))
	}
	tm := LTO9()
	cost := func(dist int64) float64 {
		return tm.LocateBase.Seconds() + tm.LocateFull.Seconds()*float64(dist)/capacity
	}
	before := l.Counters()
	check := func(what string, locates int64, secs float64) {
		t.Helper()
		now := l.Counters()
		if now.Locates-before.Locates != locates || !almostEqual(now.SimSeconds-before.SimSeconds, secs) {
			t.Errorf("%s: %d locates, %v s; want %d, %v s", what, now.Locates-before.Locates, now.SimSeconds-before.SimSeconds, locates, secs)
		}
		before = now
	}

	// At EOD after the last filemark: file 4 offset 0.
	if err := d.Locate(1, 100); err != nil { // back over 3000 + 2000 + 900
		t.Fatal(err)
	}
	check("locate back", 1, cost(5900))
	if err := d.Locate(3, 2500); err != nil { // forward over 900 + 2000 + 2500
		t.Fatal(err)
	}
	check("locate forward", 1, cost(5400))
	if err := d.Locate(3, 2500); err != nil {
		t.Fatal(err)
	}
	check("locate in place", 0, 0)
	// The end of file 2 and the start of file 3 are the same place on tape.
	if err := d.Locate(2, 2000); err != nil {
		t.Fatal(err)
	}
	check("locate to end of file 2", 1, cost(2500))
	if err := d.Locate(3, 0); err != nil {
		t.Fatal(err)
	}
	check("locate across a filemark", 0, 0)
	if n, err := d.SeekEOD(); err != nil || n != 4 {
		t.Fatal(n, err)
	}
	check("seek EOD", 1, cost(3000))
	// Reading streams: 3000 bytes at 400 MB/s.
	readTapeFile(t, d, 3)
	check("read file 3", 1, cost(3000)+3000/4e8)
}

func TestWriteInTheMiddleDestroysWhatFollows(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	cdir := filepath.Join(l.dir, "TF0001")
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	for _, s := range []string{"one", "two", "three", "four"} {
		writeTapeFile(t, d, []byte(s))
	}
	if err := d.Locate(2, 0); err != nil {
		t.Fatal(err)
	}
	if got := d.Remaining(); got != cartInfo(t, l, "TF0001").Capacity-readIndex(t, cdir).used(2) {
		t.Errorf("Remaining at the start of file 2 = %d", got)
	}
	if _, err := d.Write([]byte("TWO")); err != nil {
		t.Fatal(err)
	}
	// Destroyed at once, before any filemark: INDEX and disk forget 2..4.
	if idx := readIndex(t, cdir); len(idx.Files) != 2 {
		t.Errorf("INDEX lists %d files after a write at file 2, want 2", len(idx.Files))
	}
	for _, n := range []int{2, 3, 4} {
		if _, err := os.Stat(filepath.Join(cdir, tapeFileName(n, 0))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("tape file %d still on disk: %v", n, err)
		}
	}
	if ci := cartInfo(t, l, "TF0001"); ci.TapeFiles != 2 {
		t.Errorf("%d tape files during the overwrite, want 2", ci.TapeFiles)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.SeekEOD(); n != 3 {
		t.Errorf("EOD at %d, want 3", n)
	}
	if got := readTapeFile(t, d, 1); string(got) != "one" {
		t.Errorf("file 1 = %q", got)
	}
	if got := readTapeFile(t, d, 2); string(got) != "TWO" {
		t.Errorf("file 2 = %q", got)
	}
	if err := d.Locate(3, 0); err != nil {
		t.Errorf("Locate to EOD: %v", err)
	}
	if err := d.Locate(4, 0); !errors.Is(err, ErrNoSuchFile) {
		t.Errorf("Locate to destroyed file 4: %v", err)
	}
}

func TestWriteInsideACommittedFileRefused(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	writeTapeFile(t, d, []byte("committed"))
	if err := d.Locate(1, 4); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("x")); err == nil || !strings.Contains(err.Error(), "inside tape file 1") {
		t.Errorf("write inside a committed file: %v", err)
	}
	if got := readTapeFile(t, d, 1); string(got) != "committed" {
		t.Errorf("file 1 = %q", got)
	}
}

func TestReadWhileWritingRefused(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	if _, err := d.Write([]byte("pending")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Read(make([]byte, 10)); err == nil {
		t.Error("read while writing succeeded")
	}
	// Locating away abandons the uncommitted tape file.
	if n, err := d.SeekEOD(); err != nil || n != 1 {
		t.Errorf("SeekEOD = %d, %v", n, err)
	}
	if _, err := os.Stat(filepath.Join(l.dir, "TF0001", partialName(1, 0))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned partial still on disk: %v", err)
	}
}

func TestEndOfTape(t *testing.T) {
	const capacity = 1 << 20
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Drives: 1, Cartridges: 1, Capacity: capacity})
	d := acquire(t, l, "TF0001")
	first := bytes.Repeat([]byte("a"), 300_000)
	writeTapeFile(t, d, first)

	chunk := make([]byte, 64<<10)
	written := 0
	for {
		n, err := d.Write(chunk)
		if errors.Is(err, ErrEndOfTape) {
			if n != 0 {
				t.Errorf("end of tape after %d bytes of the write", n)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		written += n
		if written > capacity {
			t.Fatal("wrote past capacity")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "TF0001", partialName(2, 0))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial tape file kept after end of tape: %v", err)
	}
	ci := cartInfo(t, l, "TF0001")
	if ci.State != CartridgeFull || ci.TapeFiles != 2 {
		t.Errorf("after end of tape: %+v", ci)
	}
	if n, off := d.Position(); n != 2 || off != 0 {
		t.Errorf("after end of tape at (%d, %d), want EOD (2, 0)", n, off)
	}
	if d.Remaining() != 0 {
		t.Errorf("Remaining on a full cartridge = %d", d.Remaining())
	}
	if _, err := d.Write([]byte("x")); !errors.Is(err, ErrEndOfTape) {
		t.Errorf("write on a full cartridge: %v", err)
	}
	if err := d.WriteFilemark(); !errors.Is(err, ErrEndOfTape) {
		t.Errorf("filemark on a full cartridge: %v", err)
	}
	if got := readTapeFile(t, d, 1); !bytes.Equal(got, first) {
		t.Error("committed file damaged by end of tape")
	}
	l.Release(d)
	l.Close()

	l = openTest(t, Config{Dir: dir})
	if ci := cartInfo(t, l, "TF0001"); ci.State != CartridgeFull {
		t.Errorf("full state not persisted: %+v", ci)
	}
	// Overwriting from file 1 frees the tape again.
	d = acquire(t, l, "TF0001")
	defer l.Release(d)
	if err := d.Locate(1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("fresh")); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	if ci := cartInfo(t, l, "TF0001"); ci.State != CartridgeFilling || ci.TapeFiles != 2 {
		t.Errorf("after overwriting a full cartridge: %+v", ci)
	}
}

// TestCrashLosesOnlyTheUncommittedFile leaves a .partial (and the other
// debris a crash can leave) on disk and reopens.
func TestCrashLosesOnlyTheUncommittedFile(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Drives: 1, Cartridges: 1})
	cdir := filepath.Join(dir, "TF0001")
	d := acquire(t, l, "TF0001")
	writeTapeFile(t, d, []byte("committed"))
	if _, err := d.Write([]byte("being written when the process died")); err != nil {
		t.Fatal(err)
	}
	// The "crash": the library goes away with the drive held.
	l.Close()
	if _, err := os.Stat(filepath.Join(cdir, partialName(2, 0))); err != nil {
		t.Fatalf("partial file not on disk before reopening: %v", err)
	}
	// A crash between the rename of a tape file and the INDEX update, and
	// during an INDEX replacement.
	for _, name := range []string{tapeFileName(3, 0), ".INDEX.tmp123"} {
		if err := os.WriteFile(filepath.Join(cdir, name), []byte("debris"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	l2 := openTest(t, Config{Dir: dir})
	l.Release(d) // the old handle lets go of its files without touching the new library's
	for _, name := range []string{partialName(2, 0), tapeFileName(3, 0), ".INDEX.tmp123"} {
		if _, err := os.Stat(filepath.Join(cdir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived reopening: %v", name, err)
		}
	}
	if ci := cartInfo(t, l2, "TF0001"); ci.TapeFiles != 2 || ci.State != CartridgeFilling {
		t.Errorf("after crash: %+v", ci)
	}
	d = acquire(t, l2, "TF0001")
	defer l2.Release(d)
	if n, err := d.SeekEOD(); n != 2 || err != nil {
		t.Errorf("append point after crash: file %d, %v; want 2", n, err)
	}
	if got := readTapeFile(t, d, 1); string(got) != "committed" {
		t.Errorf("file 1 = %q", got)
	}
}

func TestIndexSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Drives: 2, Cartridges: 2})
	want := map[string][]string{"TF0001": {"a", "bb", "ccc"}, "TF0002": {"dddd"}}
	for volser, files := range want {
		d := acquire(t, l, volser)
		for _, f := range files {
			writeTapeFile(t, d, []byte(f))
		}
		l.Release(d)
	}
	before := l.Cartridges()
	l.Close()

	l = openTest(t, Config{Dir: dir})
	after := l.Cartridges()
	for i := range before {
		before[i].Drive = -1 // drives start empty
		if before[i] != after[i] {
			t.Errorf("cartridge before close %+v, after reopen %+v", before[i], after[i])
		}
	}
	for volser, files := range want {
		d := acquire(t, l, volser)
		for i, f := range files {
			if got := readTapeFile(t, d, i+1); string(got) != f {
				t.Errorf("%s file %d = %q, want %q", volser, i+1, got, f)
			}
		}
		l.Release(d)
	}
}

func TestDamagedCartridgesInErrorState(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, Config{Dir: dir, Drives: 1, Cartridges: 5})
	for _, v := range []string{"TF0001", "TF0002", "TF0003", "TF0004"} {
		d := acquire(t, l, v)
		writeTapeFile(t, d, []byte("data of "+v))
		l.Release(d)
	}
	l.Close()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(filepath.Join(dir, "TF0001", tapeFileName(1, 0))))                 // missing
	must(os.Truncate(filepath.Join(dir, "TF0002", tapeFileName(1, 0)), 3))            // wrong size
	must(os.WriteFile(filepath.Join(dir, "TF0003", "INDEX"), []byte("{garb"), 0o644)) // unreadable INDEX
	must(os.WriteFile(filepath.Join(dir, "TF0004", tapeFileName(0, 0)),               // label replaced, same size
		bytes.Repeat([]byte{0xff}, int(readIndex(t, filepath.Join(dir, "TF0004")).Files[0].Size)), 0o644))

	l = openTest(t, Config{Dir: dir})
	for _, v := range []string{"TF0001", "TF0002", "TF0003", "TF0004"} {
		if ci := cartInfo(t, l, v); ci.State != CartridgeError {
			t.Errorf("%s: state %s, want error", v, ci.State)
		}
		if _, err := l.Acquire(t.Context(), v); err == nil || !strings.Contains(err.Error(), "error state") {
			t.Errorf("Acquire %s in error state: %v", v, err)
		}
	}
	if ci := cartInfo(t, l, "TF0005"); ci.State != CartridgeScratch {
		t.Errorf("undamaged TF0005: %s", ci.State)
	}
	// Nothing was "repaired" away: the evidence is still there.
	if _, err := os.Stat(filepath.Join(dir, "TF0002", tapeFileName(1, 0))); err != nil {
		t.Error(err)
	}
}

func TestReadOfADamagedTapeFile(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	writeTapeFile(t, d, bytes.Repeat([]byte("x"), 1000))
	// Damaged behind the library's back while it is open.
	if err := os.Truncate(filepath.Join(l.dir, "TF0001", tapeFileName(1, 0)), 600); err != nil {
		t.Fatal(err)
	}
	if err := d.Locate(1, 0); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(d)
	if len(got) != 600 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("read of a shortened tape file: %d bytes, %v", len(got), err)
	}
}

// TestReadOfAMissingTapeFile: a tape file gone from the cartridge is a
// medium error naming cartridge and file, never "no such file" (which a
// reader of the mount would get as ENOENT).
func TestReadOfAMissingTapeFile(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	writeTapeFile(t, d, bytes.Repeat([]byte("x"), 1000))
	if err := os.Remove(filepath.Join(l.dir, "TF0001", tapeFileName(1, 0))); err != nil {
		t.Fatal(err)
	}
	if err := d.Locate(1, 0); err != nil {
		t.Fatal(err)
	}
	_, err := io.ReadAll(d)
	var me *MediumError
	if !errors.As(err, &me) || me.VOLSER != "TF0001" || me.TapeFile != 1 || !errors.Is(err, ErrMedium) {
		t.Fatalf("read of a missing tape file: %v; want a MediumError of TF0001 file 1", err)
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) {
		t.Errorf("the medium error unwraps to ENOENT: %v", err)
	}
}
