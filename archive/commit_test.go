package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestPassDoesNotWaitForCommits: with the cache's commits held back (a
// disk that takes its time to fsync), a reader walking a batch still gets
// every file of it, whole and checked, from one cartridge pass: the pass
// reads the next member instead of waiting for the commit of the last.
// The files are online meanwhile; once the commits run, the objects are
// complete and evictable.
func TestPassDoesNotWaitForCommits(t *testing.T) {
	s := testSetup{Home: t.TempDir(), Settle: time.Hour}.withDefaults()
	te := s.open(t)
	sums := map[string]string{}
	for i, name := range []string{"a", "b", "c"} {
		sums[name] = writeBigFile(t, filepath.Join(te.StagingDir("ws"), "entry", name), 3<<20+int64(i), int64(i))
	}
	b, err := te.Seal(context.Background(), "ws", "entry", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	waitSynced(t, te.Engine, b.ID)
	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	files := batchFiles(t, te.Engine, b.ID)
	gate := make(chan struct{})
	te.commitGate = gate
	released := false
	defer func() {
		if !released {
			close(gate)
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"a", "b", "c"} {
		f := files["entry/"+name]
		got, err := md5Through(ctx, te.Engine, f.ID)
		if err != nil || got != sums[name] {
			t.Fatalf("%s with its commit held back: md5 %s, %v; want %s", name, got, err, sums[name])
		}
		info, _ := te.cache.Lookup(f.ID)
		if !info.Partial || !info.Verified {
			t.Errorf("%s: %+v; want verified and not yet committed (the gate holds it)", name, info)
		}
		if st := te.FileState(&f); st != Online {
			t.Errorf("%s is %v while its commit waits; want online", name, st)
		}
	}
	if n := te.Stats().RecalledFiles; n != 3 {
		t.Errorf("%d files recalled; want 3", n)
	}

	close(gate)
	released = true
	for _, name := range []string{"a", "b", "c"} {
		id := files["entry/"+name].ID
		waitFor(t, name+" committed", func() bool {
			info, ok := te.cache.Lookup(id)
			return ok && !info.Partial
		})
	}
	if freed, err := te.EvictBatch(b.ID); err != nil || freed != 9<<20+3 {
		t.Errorf("evict after the commits: %d bytes, %v; want all three", freed, err)
	}
}

// TestCrashBetweenReadAndCommit: the daemon is killed (SIGKILL) after a
// reader got every byte of a recalled file, whole and checked, but before
// the background commit of the object. After a restart the object is not
// served from what the crash left: the file is recalled again and reads
// right, and no partial object is left in the cache.
func TestCrashBetweenReadAndCommit(t *testing.T) {
	s, f, sum := offlineBigFile(t, 40<<20, 7)

	marker := filepath.Join(s.Home, "read-uncommitted")
	killDuring(t, s, "recall-uncommitted", []string{"TAPEFS_FILE=" + strconv.FormatUint(f.ID, 10), "TAPEFS_MARKER=" + marker},
		func() bool { _, err := os.Stat(marker); return err == nil })
	if got, _ := os.ReadFile(marker); string(got) != sum {
		t.Fatalf("the reader before the crash got md5 %q; want %s", got, sum)
	}
	if !walkAny(filepath.Join(s.Home, "cache", "objects"), ".partial") {
		t.Fatal("no partial object at the crash: the crash point was missed")
	}

	te := s.open(t)
	if walkAny(filepath.Join(s.Home, "cache", "objects"), ".partial") {
		t.Error("partial object left after the restart")
	}
	if info, ok := te.cache.Lookup(f.ID); ok {
		t.Fatalf("the object the crash left uncommitted is served: %+v", info)
	}
	if got, err := md5Through(context.Background(), te.Engine, f.ID); err != nil || got != sum {
		t.Fatalf("md5 after the crash %s, %v; want %s", got, err, sum)
	}
	if n := te.Stats().RecalledFiles; n != 1 {
		t.Errorf("%d files recalled after the restart; want the file recalled again", n)
	}
}

// recallUncommitted is the helper of TestCrashBetweenReadAndCommit: it
// reads a file with its commit held back, then says so in the marker file
// (the md5 it read) and waits to be killed.
func recallUncommitted(te *testEngine) {
	te.commitGate = make(chan struct{}) // never opened
	id, _ := strconv.ParseUint(os.Getenv("TAPEFS_FILE"), 10, 64)
	sum, err := md5Through(context.Background(), te.Engine, id)
	if err != nil {
		panic(err)
	}
	if info, _ := te.cache.Lookup(id); !info.Partial || !info.Verified {
		panic(fmt.Sprintf("object %d after its read: %+v; want verified and uncommitted", id, info))
	}
	// Written aside and renamed: the test kills this process as soon as
	// the marker exists, which must not be before it holds the md5.
	marker := os.Getenv("TAPEFS_MARKER")
	if err := os.WriteFile(marker+".tmp", []byte(sum), 0o644); err != nil {
		panic(err)
	}
	if err := os.Rename(marker+".tmp", marker); err != nil {
		panic(err)
	}
}
