package archive

import (
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

// TestRecallMD5Mismatch: a tape copy whose bytes changed is detected as it
// is staged; the reader gets an error, the object is discarded and an event
// says what happened.
func TestRecallMD5Mismatch(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Settle: time.Hour}.open(t)
	data := randomBytes(1, 100_000)
	makeTree(t, te.StagingDir("ws"), []srcFile{{path: "e/f", typ: catalog.TypeFile, data: data, mode: 0o644}})
	b, err := te.Seal(context.Background(), "ws", "e", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	waitSynced(t, te.Engine, b.ID)
	te.EvictBatch(b.ID)
	f := batchFiles(t, te.Engine, b.ID)["e/f"]
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
	_, err = readAll(context.Background(), te.Engine, f.ID)
	if err == nil || !strings.Contains(err.Error(), "md5 mismatch") {
		t.Fatalf("read of a corrupted copy: %v, want an md5 mismatch", err)
	}
	if _, ok := te.cache.Lookup(f.ID); ok {
		t.Fatal("corrupted object kept in the cache")
	}
	found := false
	te.cat.View(func(tx *catalog.Tx) error {
		evs, _ := tx.Events(0, 0, "")
		for _, ev := range evs {
			found = found || (ev.Kind == EvMD5Mismatch && ev.Batch == b.ID && ev.VOLSER == c.VOLSER)
		}
		return nil
	})
	if !found {
		t.Fatal("no md5-mismatch event")
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
