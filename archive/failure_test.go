package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/checksum"
	"github.com/tapefs/tapefs/tape"
)

// failingLibrary refuses every mount while fail is set: a broken robot.
type failingLibrary struct {
	tape.Library
	fail atomic.Bool
}

func (f *failingLibrary) Acquire(ctx context.Context, volser string) (tape.Drive, error) {
	if f.fail.Load() {
		return nil, errors.New("robot: gripper error (injected)")
	}
	return f.Library.Acquire(ctx, volser)
}

// TestMigrationFailureKeepsData: a library that fails makes the batch
// FAILED with its reason after the last attempt, its data stays in the
// cache, and it reaches tape once the library works again.
func TestMigrationFailureKeepsData(t *testing.T) {
	fl := &failingLibrary{}
	fl.fail.Store(true)
	te := testSetup{Home: t.TempDir(), Settle: time.Hour, wrap: func(l tape.Library) tape.Library { fl.Library = l; return fl }}.open(t)
	makeTree(t, te.StagingDir("ws"), []srcFile{{path: "e/f", typ: catalog.TypeFile, data: []byte("precious"), mode: 0o644}})
	b, err := te.Seal(context.Background(), "ws", "e", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := te.Status(b.ID)
		if st.State == catalog.Failed {
			if !strings.Contains(st.Reason, "gripper") {
				t.Fatalf("reason %q does not say why", st.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch never FAILED: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := te.WaitBatch(context.Background(), b.ID); err == nil || !strings.Contains(err.Error(), "FAILED") {
		t.Fatalf("WaitBatch on a failed batch: %v", err)
	}
	f := batchFiles(t, te.Engine, b.ID)["e/f"]
	if info, ok := te.cache.Lookup(f.ID); !ok || info.Synced {
		t.Fatalf("data of a failed batch not kept unsynced in the cache: %+v %v", info, ok)
	}
	if _, err := te.cache.EvictTo(0); err != nil {
		t.Fatal(err)
	}
	if got, err := readAll(context.Background(), te.Engine, f.ID); err != nil || string(got) != "precious" {
		t.Fatalf("read of a failed batch: %q %v", got, err)
	}
	var kinds []string
	te.cat.View(func(tx *catalog.Tx) error {
		evs, _ := tx.Events(0, 0, "ws")
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
		return nil
	})
	if !strings.Contains(strings.Join(kinds, ","), EvFailed) || !strings.Contains(strings.Join(kinds, ","), EvRetry) {
		t.Fatalf("events %v lack retry and failed", kinds)
	}
	fl.fail.Store(false)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st, _ := te.Status(b.ID); st.State == catalog.CachedSynced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("failed batch never reached tape once the library worked again")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRecallChecksumMismatch: a tape copy whose bytes changed is detected
// as it is staged — by the CRC32C recorded with the md5, or, for a file
// sealed before tapefs recorded CRC32Cs, by the md5 itself; the reader
// gets an error, the object is discarded and an event says what happened.
func TestRecallChecksumMismatch(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		oldFile    bool // sealed without a CRC32C
	}{
		{name: "crc32c", want: "CRC32C mismatch"},
		{name: "md5 (no CRC32C recorded)", want: "md5 mismatch", oldFile: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te, b, f := offlineDamaged(t, tc.oldFile)
			_, err := readAll(context.Background(), te.Engine, f.ID)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read of a corrupted copy: %v, want a %s", err, tc.want)
			}
			if _, ok := te.cache.Lookup(f.ID); ok {
				t.Fatal("corrupted object kept in the cache")
			}
			evs := eventsOf(t, te.Engine, EvMD5Mismatch)
			if len(evs) != 1 || evs[0].Batch != b.ID || evs[0].VOLSER != f.Copies[0].VOLSER || !strings.Contains(evs[0].Message, tc.want) {
				t.Fatalf("md5-mismatch events: %+v", evs)
			}
		})
	}
}

// offlineDamaged seals one file, evicts it and flips a byte of its copy
// on tape. With oldFile its CRC32C is forgotten first, as for a file
// sealed by a tapefs that did not record one.
func offlineDamaged(t *testing.T, oldFile bool) (*testEngine, catalog.Batch, catalog.File) {
	t.Helper()
	data := randomBytes(1, 100_000)
	te, b := sealedOneFile(t, testSetup{}, data)
	te.EvictBatch(b.ID)
	f := batchFiles(t, te.Engine, b.ID)["e/f"]
	if wantMD5, wantCRC := checksum.Of(data); f.MD5 != wantMD5 || f.CRC32C != wantCRC {
		t.Fatalf("sealed with md5 %s and CRC32C %q; want %s and %s", f.MD5, f.CRC32C, wantMD5, wantCRC)
	}
	if oldFile {
		f = setFile(t, te.Engine, f.ID, func(f *catalog.File) { f.CRC32C = "" })
	}
	c := f.Copies[0]
	tf := filepath.Join(te.setup.Home, "library", c.VOLSER, fmt.Sprintf("%06d.tar", c.TapeFile))
	raw, err := os.ReadFile(tf)
	if err != nil {
		t.Fatal(err)
	}
	raw[c.Offset+5000] ^= 0xff // one flipped byte in the middle of the member
	if err := os.WriteFile(tf, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return te, b, f
}

// sealedOneFile seals a batch of one file, e/f holding data, and waits
// until it is on tape (s: the settings besides home and settle time).
func sealedOneFile(t *testing.T, s testSetup, data []byte) (*testEngine, catalog.Batch) {
	t.Helper()
	s.Home, s.Settle = t.TempDir(), time.Hour
	te := s.open(t)
	makeTree(t, te.StagingDir("ws"), []srcFile{{path: "e/f", typ: catalog.TypeFile, data: data, mode: 0o644}})
	b, err := te.Seal(context.Background(), "ws", "e", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	waitSynced(t, te.Engine, b.ID)
	return te, b
}

// TestRecallCheckMD5: with --recall-check md5 a recall holds the last
// bytes until the md5 matches, even for a file with a CRC32C: bytes that
// match the CRC32C and not the md5 are never read.
func TestRecallCheckMD5(t *testing.T) {
	data := randomBytes(3, 2<<20+5)
	te, b := sealedOneFile(t, testSetup{RecallMD5: true}, data)
	te.EvictBatch(b.ID)
	f := batchFiles(t, te.Engine, b.ID)["e/f"]
	if got, err := readAll(context.Background(), te.Engine, f.ID); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("recall checked by md5: %d bytes, %v", len(got), err)
	}
	te.EvictBatch(b.ID)
	setFile(t, te.Engine, f.ID, func(f *catalog.File) { f.MD5 = strings.Repeat("0", 32) })
	if _, err := readAll(context.Background(), te.Engine, f.ID); err == nil || !strings.Contains(err.Error(), "md5 mismatch") {
		t.Fatalf("recall of a file whose md5 does not match: %v; want an md5 mismatch before the last bytes", err)
	}
	if g := batchFiles(t, te.Engine, b.ID)["e/f"]; g.CRC32C == "" {
		t.Error("the CRC32C was dropped: the md5 gate needs no such step")
	}
}

// setFile changes a file's catalog record and returns it.
func setFile(t *testing.T, e *Engine, id uint64, change func(*catalog.File)) catalog.File {
	t.Helper()
	var f catalog.File
	err := e.cat.Update(func(tx *catalog.Tx) error {
		var err error
		if f, err = tx.File(id); err != nil {
			return err
		}
		change(&f)
		return tx.PutFile(f)
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRecallMD5CheckedBeforeCommit: a recall checked by its CRC32C has its
// md5 checked before the object is committed. Bytes that match the CRC32C
// and not the md5 (here: the catalog's md5 is made wrong, which a CRC32C
// cannot see) are dropped from the cache with an event, and the file's
// CRC32C is no longer trusted, so the next recall is checked by md5 before
// the reader gets the last bytes — and fails.
func TestRecallMD5CheckedBeforeCommit(t *testing.T) {
	data := randomBytes(2, 3<<20+17) // several stream chunks
	te, b := sealedOneFile(t, testSetup{}, data)

	// A good recall: committed after its md5 check.
	te.EvictBatch(b.ID)
	f := batchFiles(t, te.Engine, b.ID)["e/f"]
	got, err := readAll(context.Background(), te.Engine, f.ID)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("recall: %d bytes, %v", len(got), err)
	}
	waitFor(t, "the recalled object committed", func() bool {
		info, ok := te.cache.Lookup(f.ID)
		return ok && !info.Partial
	})

	// The catalog's md5 made wrong; the CRC32C still matches the tape.
	te.EvictBatch(b.ID)
	wrong := strings.Repeat("0", 32)
	setFile(t, te.Engine, f.ID, func(f *catalog.File) { f.MD5 = wrong })
	got, err = readAll(context.Background(), te.Engine, f.ID)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("recall checked by CRC32C: %d bytes, %v", len(got), err)
	}
	waitFor(t, "the object that failed its md5 dropped", func() bool {
		_, ok := te.cache.Lookup(f.ID)
		return !ok
	})
	evs := eventsOf(t, te.Engine, EvMD5Mismatch)
	if len(evs) != 1 || evs[0].Batch != b.ID || !strings.Contains(evs[0].Message, "md5 mismatch") || !strings.Contains(evs[0].Message, "after its CRC32C") {
		t.Fatalf("md5-mismatch events: %+v", evs)
	}
	if g := batchFiles(t, te.Engine, b.ID)["e/f"]; g.CRC32C != "" || g.MD5 != wrong {
		t.Fatalf("after the md5 mismatch the file has CRC32C %q, md5 %s; want no CRC32C and the md5 unchanged", g.CRC32C, g.MD5)
	}
	// Checked by md5 now, before the last bytes.
	if _, err := readAll(context.Background(), te.Engine, f.ID); err == nil || !strings.Contains(err.Error(), "md5 mismatch") {
		t.Fatalf("recall after the CRC32C was dropped: %v; want an md5 mismatch", err)
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestRemoveUndeletePurge: a removed batch is hidden but restorable during
// the retention period, and purged after it.
func TestRemoveUndeletePurge(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	te := testSetup{Home: t.TempDir(), Settle: time.Hour, clock: clk, Retention: time.Hour}.open(t)
	makeTree(t, te.StagingDir("ws"), []srcFile{
		{path: "e/f", typ: catalog.TypeFile, data: []byte("one"), mode: 0o644},
		{path: "e/g", typ: catalog.TypeFile, data: []byte("two"), mode: 0o644},
	})
	b, err := te.Seal(context.Background(), "ws", "e", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute) // past the flush age
	waitSynced(t, te.Engine, b.ID)
	files := batchFiles(t, te.Engine, b.ID)
	if _, err := te.RemoveEntry("ws", b.ID, files["e/g"].Parent, "g", false); err != nil {
		t.Fatal(err)
	}
	rb, err := te.Remove(b.ID)
	if err != nil || rb.State != catalog.Deleted {
		t.Fatalf("remove: %+v %v", rb, err)
	}
	if _, err := te.Remove(b.ID); err == nil {
		t.Fatal("second remove succeeded")
	}
	ub, err := te.Undelete(b.ID)
	if err != nil || ub.State != catalog.CachedSynced {
		t.Fatalf("undelete: %+v %v", ub, err)
	}
	if batchFiles(t, te.Engine, b.ID)["e/g"].Removed {
		t.Fatal("undelete did not restore a removed entry")
	}
	var used int64
	te.cat.View(func(tx *catalog.Tx) error { w, _ := tx.Workspace("ws"); used = w.Used; return nil })
	if used != 6 {
		t.Fatalf("workspace used %d, want 6", used)
	}
	if _, err := te.Remove(b.ID); err != nil {
		t.Fatal(err)
	}
	te.purgeExpired()
	if _, err := te.Status(b.ID); err != nil {
		t.Fatal("batch purged before its retention ended")
	}
	clk.Add(2 * time.Hour)
	te.purgeExpired()
	if _, err := te.Status(b.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("batch after retention: %v, want purged", err)
	}
	if _, ok := te.cache.Lookup(files["e/f"].ID); ok {
		t.Fatal("objects of a purged batch left in the cache")
	}
	te.cat.View(func(tx *catalog.Tx) error { w, _ := tx.Workspace("ws"); used = w.Used; return nil })
	if used != 0 {
		t.Fatalf("workspace used %d after purge, want 0", used)
	}
}
