package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// damage inverts 8 bytes of a file's cache object at off.
func damage(t *testing.T, te *testEngine, id uint64, off int64) {
	t.Helper()
	f, err := os.OpenFile(te.cache.ObjectPath(id), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// sealTree writes files under put/<entry> and seals them into a batch.
func sealTree(t testing.TB, te *testEngine, entry string, files map[string][]byte) (catalog.Batch, map[string]catalog.File) {
	t.Helper()
	var src []srcFile
	for p, data := range files {
		src = append(src, srcFile{path: entry + "/" + p, typ: catalog.TypeFile, data: data, mode: 0o644})
	}
	makeTree(t, te.StagingDir("ws"), src)
	b, err := te.Seal(context.Background(), "ws", entry, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	// Seal returns before the md5s are computed (SEALING): the tests
	// damage objects after sealing, which must be after the md5s.
	for _, f := range batchFiles(t, te.Engine, b.ID) {
		if _, err := te.Checksum(context.Background(), f.ID); err != nil {
			t.Fatal(err)
		}
	}
	return b, batchFiles(t, te.Engine, b.ID)
}

// events returns the events of a kind.
func eventsOf(t *testing.T, e *Engine, kind string) []catalog.Event {
	t.Helper()
	var out []catalog.Event
	_ = e.cat.View(func(tx *catalog.Tx) error {
		evs, err := tx.Events(0, 100_000, "")
		for _, ev := range evs {
			if ev.Kind == kind {
				out = append(out, ev)
			}
		}
		return err
	})
	return out
}

// TestMigrationRefusesDamagedObject: a member whose object no longer hashes
// to its sealed md5 — small (read into memory) or large (copy_file_range)
// — stops its batch FAILED naming the file, with no tape copy, its data
// kept; the other batch of the same flush reaches tape.
func TestMigrationRefusesDamagedObject(t *testing.T) {
	for _, size := range []int{5000, 3<<20 + 1} {
		t.Run(fmt.Sprintf("%dB", size), func(t *testing.T) {
			te := testSetup{Home: t.TempDir(), FlushAge: time.Hour}.open(t)
			defer te.close()
			good, _ := sealTree(t, te, "good", map[string][]byte{"a": randomBytes(1, size), "b": randomBytes(2, 100)})
			data := randomBytes(3, size)
			bad, files := sealTree(t, te, "bad", map[string][]byte{"x": data, "y": randomBytes(4, 100)})
			x := files["bad/x"]
			damage(t, te, x.ID, int64(size/2))
			damaged, _ := os.ReadFile(te.cache.ObjectPath(x.ID))
			te.Flush()
			waitSynced(t, te.Engine, good.ID)
			st, _ := te.Status(bad.ID)
			if st.State != catalog.Failed || !strings.Contains(st.Reason, "bad/x") || !strings.Contains(st.Reason, md5hex(data)) ||
				!strings.Contains(st.Reason, md5hex(damaged)) {
				t.Fatalf("damaged batch: %s %q; want FAILED naming bad/x, sealed %s and found %s", st.State, st.Reason, md5hex(data), md5hex(damaged))
			}
			for p, f := range batchFiles(t, te.Engine, bad.ID) {
				if len(f.Copies) > 0 && p == "bad/x" {
					t.Errorf("%s has tape copies %v", p, f.Copies)
				}
			}
			if kept, _ := os.ReadFile(te.cache.ObjectPath(x.ID)); !bytes.Equal(kept, damaged) {
				t.Error("the damaged object was not kept as it was")
			}
			if ev := eventsOf(t, te.Engine, EvDamaged); len(ev) != 1 || ev[0].Batch != bad.ID {
				t.Errorf("want one %s event of batch %d, got %+v", EvDamaged, bad.ID, ev)
			}
			if _, err := te.Open(x.ID); !errors.Is(err, ErrDamaged) {
				t.Errorf("Open of the kept damaged object: %v; want ErrDamaged", err)
			}
			// A retry of the FAILED batch does not take the others' flush
			// down with it, and still does not reach tape.
			another, _ := sealTree(t, te, "another", map[string][]byte{"z": randomBytes(5, 100)})
			_ = te.cat.Update(func(tx *catalog.Tx) error {
				jobs, _ := tx.Jobs(catalog.JobMigrate)
				for _, j := range jobs {
					j.NotBefore = time.Time{}
					_ = tx.PutJob(j)
				}
				return nil
			})
			te.Flush()
			waitSynced(t, te.Engine, another.ID)
			if st, _ := te.Status(bad.ID); st.State != catalog.Failed {
				t.Errorf("damaged batch after a retry: %s", st.State)
			}
		})
	}
}

// TestScrubDropsDamagedSyncedObject: the scrub finds a damaged object of a
// file on tape, drops it, and the recall puts the right bytes back.
func TestScrubDropsDamagedSyncedObject(t *testing.T) {
	te := testSetup{Home: t.TempDir(), FlushAge: time.Hour, ScrubRate: 1 << 30, ScrubEvery: 20 * time.Millisecond}.open(t)
	defer te.close()
	data := randomBytes(7, 300_000)
	b, files := sealTree(t, te, "e", map[string][]byte{"f": data})
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	f := files["e/f"]
	damage(t, te, f.ID, 1000)
	deadline := time.Now().Add(time.Minute)
	for len(eventsOf(t, te.Engine, EvDamaged)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the scrub did not report the damaged object")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ev := eventsOf(t, te.Engine, EvDamaged)[0]
	if !strings.Contains(ev.Message, "e/f") || !strings.Contains(ev.Message, "recalled from") || ev.VOLSER == "" {
		t.Errorf("event %+v should name the file and the cartridge it is recalled from", ev)
	}
	got, err := md5Through(context.Background(), te.Engine, f.ID)
	if err != nil || got != md5hex(data) {
		t.Fatalf("read after the scrub: %s, %v; want %s", got, err, md5hex(data))
	}
	if st, _ := te.Status(b.ID); st.State != catalog.CachedSynced {
		t.Errorf("batch is %s; want CACHED_SYNCED", st.State)
	}
}

// TestScrubKeepsOnlyCopy: a damaged object of a file not on tape is kept,
// its batch FAILED once (not at every pass), and opens of it fail.
func TestScrubKeepsOnlyCopy(t *testing.T) {
	te := testSetup{Home: t.TempDir(), FlushAge: time.Hour, ScrubRate: 1 << 30, ScrubEvery: 10 * time.Millisecond}.open(t)
	defer te.close()
	b, files := sealTree(t, te, "e", map[string][]byte{"f": randomBytes(8, 70_000)})
	f := files["e/f"]
	damage(t, te, f.ID, 0)
	deadline := time.Now().Add(time.Minute)
	for {
		st, _ := te.Status(b.ID)
		if st.State == catalog.Failed {
			if !strings.Contains(st.Reason, "e/f") || !strings.Contains(st.Reason, f.MD5) {
				t.Errorf("reason %q should name e/f and its md5", st.Reason)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch not FAILED: %s", st.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // many more passes
	if n := len(eventsOf(t, te.Engine, EvDamaged)); n != 1 {
		t.Errorf("%d damaged-object events; want 1 (reported once)", n)
	}
	if _, err := os.Stat(te.cache.ObjectPath(f.ID)); err != nil {
		t.Errorf("the only copy was dropped: %v", err)
	}
	if _, err := te.Open(f.ID); !errors.Is(err, ErrDamaged) {
		t.Errorf("Open: %v; want ErrDamaged", err)
	}
	rep, err := te.VerifyCache(context.Background(), VerifyScope{})
	if err != nil || len(rep.Damaged) != 1 || !strings.Contains(rep.Damaged[0].Action, "kept") {
		t.Errorf("VerifyCache: %+v, %v; want the kept object reported", rep, err)
	}
}

// TestOpenChecksObjectSize: an open through the daemon of a cached object
// of the wrong size drops it (the file is on tape) and the read recalls
// the right bytes; for a file not on tape the open fails and the object is
// kept.
func TestOpenChecksObjectSize(t *testing.T) {
	te := testSetup{Home: t.TempDir(), FlushAge: time.Hour}.open(t)
	defer te.close()
	data := randomBytes(9, 200_000)
	b, files := sealTree(t, te, "e", map[string][]byte{"f": data})
	te.Flush()
	waitSynced(t, te.Engine, b.ID)
	f := files["e/f"]
	if err := os.Truncate(te.cache.ObjectPath(f.ID), 1000); err != nil {
		t.Fatal(err)
	}
	if got, err := md5Through(context.Background(), te.Engine, f.ID); err != nil || got != md5hex(data) {
		t.Fatalf("read of a file whose object was cut short: %s %v; want %s (recalled)", got, err, md5hex(data))
	}
	if ev := eventsOf(t, te.Engine, EvDamaged); len(ev) != 1 {
		t.Errorf("want one damaged-object event, got %+v", ev)
	}
	_, files = sealTree(t, te, "u", map[string][]byte{"g": randomBytes(10, 5000)})
	g := files["u/g"]
	if err := os.Truncate(te.cache.ObjectPath(g.ID), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := te.Open(g.ID); !errors.Is(err, ErrDamaged) {
		t.Errorf("open of the short only copy: %v; want ErrDamaged", err)
	}
	if fi, err := os.Stat(te.cache.ObjectPath(g.ID)); err != nil || fi.Size() != 10 {
		t.Errorf("the only copy was not kept as it was: %v", err)
	}
}

// TestVerifyCacheScope: a verify of one workspace checks only its objects.
func TestVerifyCacheScope(t *testing.T) {
	te := testSetup{Home: t.TempDir(), FlushAge: time.Hour}.open(t)
	defer te.close()
	_, files := sealTree(t, te, "e", map[string][]byte{"f": randomBytes(1, 1000), "g": randomBytes(2, 0)})
	rep, err := te.VerifyCache(context.Background(), VerifyScope{Workspaces: map[string]bool{"other": true}})
	if err != nil || rep.Objects != 0 {
		t.Fatalf("verify of another workspace: %+v %v", rep, err)
	}
	damage(t, te, files["e/f"].ID, 10)
	rep, err = te.VerifyCache(context.Background(), VerifyScope{Workspaces: map[string]bool{"ws": true}})
	if err != nil || rep.Objects != 2 || len(rep.Damaged) != 1 || rep.Damaged[0].Path != "e/f" {
		t.Fatalf("verify of ws: %+v %v; want 2 objects, e/f damaged", rep, err)
	}
}
