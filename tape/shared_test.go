package tape

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"
)

// TestSharedLibraryFencing: two hosts open one library directory. Host A
// starts a tape file under epoch 2 and is then "paused"; host B takes the
// cartridge under epoch 3, which discards A's half-written file, and
// commits its own. A's late filemark fails and its late index is never
// read: a fresh reader sees exactly the committed files, and an epoch
// older than the cartridge's is refused.
func TestSharedLibraryFencing(t *testing.T) {
	dir := t.TempDir()
	open := func() FencedLibrary {
		l, err := Open(Config{Dir: dir, Drives: 1, Cartridges: 1, Shared: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l.(FencedLibrary)
	}
	ctx := context.Background()
	a, b := open(), open()
	write := func(d Drive, data string) {
		t.Helper()
		if _, err := d.SeekEOD(); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Write([]byte(data)); err != nil {
			t.Fatal(err)
		}
	}

	da, err := a.AcquireFenced(ctx, "TF0001", 1)
	if err != nil {
		t.Fatal(err)
	}
	write(da, "first by A")
	if err := da.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	a.Release(da)

	da, err = a.AcquireFenced(ctx, "TF0001", 2)
	if err != nil {
		t.Fatal(err)
	}
	write(da, "late by A") // ... and A is paused here

	db, err := b.AcquireFenced(ctx, "TF0001", 3)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "TF0001", "*.partial")); len(m) != 0 {
		t.Errorf("B's take left A's half-written tape file: %v", m)
	}
	write(db, "second by B")
	if err := db.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	b.Release(db)

	// A goes on: its write and filemark fail, and name nothing B wrote.
	_, werr := da.Write([]byte(" more"))
	ferr := da.WriteFilemark()
	if werr == nil && ferr == nil {
		t.Errorf("A's late tape file was committed under a lost lease")
	}
	a.Release(da)
	if _, err := a.AcquireFenced(ctx, "TF0001", 2); !errors.Is(err, ErrFenced) {
		t.Errorf("acquire under an epoch older than the cartridge's: %v, want ErrFenced", err)
	}

	c := open()
	dc, err := c.AcquireFenced(ctx, "TF0001", 4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release(dc)
	for n, want := range map[int]string{1: "first by A", 2: "second by B"} {
		if err := dc.Locate(n, 0); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(dc)
		if err != nil || string(got) != want {
			t.Errorf("tape file %d: %q, %v; want %q", n, got, err, want)
		}
	}
	if n, _ := dc.SeekEOD(); n != 3 {
		t.Errorf("end of data at tape file %d, want 3 (label, A's, B's)", n)
	}
}

// TestSharedLibraryRefresh: a host's view of a cartridge another host
// filled catches up (for choosing where to append), without an acquire.
func TestSharedLibraryRefresh(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(Config{Dir: dir, Drives: 1, Cartridges: 1, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(Config{Dir: dir, Drives: 1, Cartridges: 1, Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	d, err := a.(FencedLibrary).AcquireFenced(context.Background(), "TF0001", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Write([]byte("by A")); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	a.Release(d)
	b.(*library).refreshed = time.Time{} // as if refreshEvery had passed
	if c := b.Cartridges()[0]; c.TapeFiles != 2 || c.State != CartridgeFilling {
		t.Errorf("host b sees %+v, want 2 tape files, filling", c)
	}
}
