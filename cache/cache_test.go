package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/cache"
)

// waitLong bounds every wait for something that must happen, so that a bug
// fails the test instead of hanging it.
const waitLong = 5 * time.Second

func openCache(t *testing.T, cfg cache.Config) *cache.Cache {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	c, err := cache.Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// adopt seals a file of size bytes into the cache as object id.
func adopt(t *testing.T, c *cache.Cache, id uint64, size int, synced bool) []byte {
	t.Helper()
	dir, err := c.NewSealingDir()
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{byte(id)}, size)
	src := filepath.Join(dir, "f")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Adopt(id, src, synced); err != nil {
		t.Fatalf("Adopt %d: %v", id, err)
	}
	return data
}

func ids(c *cache.Cache) []uint64 {
	var out []uint64
	for _, o := range c.Objects() {
		out = append(out, o.ID)
	}
	return out
}

func touch(t *testing.T, c *cache.Cache, id uint64) {
	t.Helper()
	h, err := c.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}

func TestOpenValidatesConfig(t *testing.T) {
	for _, cfg := range []cache.Config{
		{},
		{Dir: t.TempDir(), High: 0.5, Low: 0.8},
		{Dir: t.TempDir(), High: 1.5},
		{Dir: t.TempDir(), Limit: -1},
	} {
		if _, err := cache.Open(cfg); err == nil {
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
}

func TestLayoutAndPaths(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, cache.Config{Dir: dir})
	for _, d := range []string{"put", "sealing", "objects"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Errorf("%s not created: %v", d, err)
		}
	}
	if got, want := c.ObjectPath(0x1234), filepath.Join(dir, "objects", "34", "4660"); got != want {
		t.Errorf("ObjectPath = %s, want %s", got, want)
	}
	ws := c.StagingDir("ws1")
	if fi, err := os.Stat(ws); err != nil || !fi.IsDir() || ws != filepath.Join(dir, "put", "ws1") {
		t.Errorf("StagingDir = %s (%v)", ws, err)
	}
	if c.Stats().Limit <= 0 {
		t.Errorf("Limit 0 should take the free space of the disk, got %d", c.Stats().Limit)
	}

	var made []string
	for range 5 {
		d, err := c.NewSealingDir()
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, d)
	}
	if !slices.IsSorted(made) || len(slices.Compact(slices.Clone(made))) != len(made) {
		t.Errorf("sealing dirs not unique and increasing: %v", made)
	}
	listed, err := c.SealingDirs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(listed, made) {
		t.Errorf("SealingDirs = %v, want %v", listed, made)
	}
}

func TestAdoptLookupOpenClose(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	data := adopt(t, c, 300, 1000, false)

	info, ok := c.Lookup(300)
	if !ok || info != (cache.ObjectInfo{ID: 300, Size: 1000}) {
		t.Fatalf("Lookup = %+v, %v", info, ok)
	}
	if st := c.Stats(); st.Used != 1000 || st.Unsynced != 1000 || st.Objects != 1 {
		t.Errorf("Stats = %+v", st)
	}
	if _, ok := c.Lookup(301); ok {
		t.Error("Lookup of an absent object succeeded")
	}
	if _, err := c.Open(301); !errors.Is(err, cache.ErrNotCached) {
		t.Errorf("Open absent: %v, want ErrNotCached", err)
	}

	h1, err := c.Open(300)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := c.Open(300)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Lookup(300); info.Open != 2 {
		t.Errorf("Open count = %d, want 2", info.Open)
	}
	got, err := io.ReadAll(h1.File())
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("read %d bytes (%v), want the adopted contents", len(got), err)
	}
	h1.Close()
	h1.Close() // a second close must not count twice
	if info, _ := c.Lookup(300); info.Open != 1 {
		t.Errorf("Open count = %d, want 1", info.Open)
	}
	h2.Close()

	c.SetSynced(300, true)
	c.Pin(300, true)
	if info, _ := c.Lookup(300); !info.Synced || !info.Pinned || info.Open != 0 {
		t.Errorf("Lookup = %+v", info)
	}
	if st := c.Stats(); st.Unsynced != 0 {
		t.Errorf("Unsynced = %d after SetSynced", st.Unsynced)
	}
	if err := c.WaitRange(context.Background(), 300, 0, 1000); err != nil {
		t.Errorf("WaitRange on a complete object: %v", err)
	}
	if err := c.WaitRange(context.Background(), 301, 0, 1); !errors.Is(err, cache.ErrNotCached) {
		t.Errorf("WaitRange on an absent object: %v", err)
	}
}

func TestAdoptIsIdempotent(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	dir, _ := c.NewSealingDir()
	src := filepath.Join(dir, "f")
	os.WriteFile(src, []byte("hello"), 0o644)
	if err := c.Adopt(7, src, false); err != nil {
		t.Fatal(err)
	}
	// Crash recovery replays the adoption: src is gone, the object is there.
	if err := c.Adopt(7, src, true); err != nil {
		t.Errorf("replayed Adopt: %v", err)
	}
	if info, _ := c.Lookup(7); !info.Synced || info.Size != 5 {
		t.Errorf("after replay: %+v", info)
	}
	// Both exist: src replaces the object.
	os.WriteFile(src, []byte("hello, world"), 0o644)
	if err := c.Adopt(7, src, false); err != nil {
		t.Fatal(err)
	}
	if info, _ := c.Lookup(7); info.Size != 12 || info.Synced {
		t.Errorf("after replace: %+v", info)
	}
	if got, _ := os.ReadFile(c.ObjectPath(7)); string(got) != "hello, world" {
		t.Errorf("object holds %q", got)
	}
	if st := c.Stats(); st.Used != 12 || st.Unsynced != 12 || st.Objects != 1 {
		t.Errorf("Stats = %+v", st)
	}

	if err := c.Adopt(8, filepath.Join(dir, "missing"), false); err == nil {
		t.Error("Adopt of a missing file without an object succeeded")
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	if err := c.Adopt(9, filepath.Join(dir, "sub"), false); err == nil {
		t.Error("Adopt of a directory succeeded")
	}
}

func TestReopenRebuildsIndex(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, cache.Config{Dir: dir, Limit: 1 << 20})
	adopt(t, c, 1, 100, true)
	adopt(t, c, 2, 200, false)
	adopt(t, c, 258, 300, true) // same fan-out directory as 2
	p, started, err := c.BeginRecall(3, 400)
	if err != nil || !started {
		t.Fatal(started, err)
	}
	p.Write(make([]byte, 50))
	junk := filepath.Join(dir, "objects", "01", "notes.txt")
	os.WriteFile(junk, []byte("x"), 0o644)
	// Older modification time = less recently used after a restart.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(c.ObjectPath(258), old, old)
	// No Close: a crash.

	c2 := openCache(t, cache.Config{Dir: dir, Limit: 1 << 20})
	if got := ids(c2); !slices.Equal(got, []uint64{1, 2, 258}) {
		t.Errorf("objects after reopen = %v", got)
	}
	for _, o := range c2.Objects() {
		if o.Synced || o.Pinned || o.Open != 0 || o.Partial {
			t.Errorf("flags must start clear after reopen: %+v", o)
		}
	}
	if info, _ := c2.Lookup(258); info.Size != 300 {
		t.Errorf("size after reopen: %+v", info)
	}
	if st := c2.Stats(); st.Used != 600 || st.Unsynced != 600 {
		t.Errorf("Stats after reopen = %+v", st)
	}
	if _, err := os.Stat(c2.ObjectPath(3) + ".partial"); !os.IsNotExist(err) {
		t.Errorf("stale partial object not removed: %v", err)
	}
	if _, err := os.Stat(junk); err != nil {
		t.Errorf("a file that is not an object must be left alone: %v", err)
	}
	// The interrupted recall starts again.
	if _, started, err := c2.BeginRecall(3, 400); err != nil || !started {
		t.Errorf("BeginRecall after restart: %v %v", started, err)
	}
	// LRU order is the modification time: 258 goes first.
	for _, id := range []uint64{1, 2, 258} {
		c2.SetSynced(id, true)
	}
	if freed, err := c2.EvictTo(c2.Stats().Used - 1); err != nil || freed != 300 {
		t.Errorf("EvictTo freed %d (%v), want object 258's 300", freed, err)
	}
	if _, ok := c2.Lookup(258); ok {
		t.Error("the least recently modified object was not evicted first")
	}
}

func TestLRUEvictionAndWatermarks(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1000, High: 0.9, Low: 0.5})
	for id := uint64(1); id <= 9; id++ {
		adopt(t, c, id, 100, true)
	}
	if st := c.Stats(); st.Used != 900 || st.Evictions != 0 {
		t.Fatalf("at the high watermark nothing is evicted: %+v", st)
	}
	touch(t, c, 1)
	touch(t, c, 3)
	adopt(t, c, 10, 100, true) // passes 900: evict down to 500
	if got, want := ids(c), []uint64{1, 3, 8, 9, 10}; !slices.Equal(got, want) {
		t.Errorf("after eviction: %v, want %v", got, want)
	}
	if st := c.Stats(); st.Used != 500 || st.Evictions != 5 || st.EvictedBytes != 500 {
		t.Errorf("Stats = %+v", st)
	}
	for _, id := range []uint64{2, 4, 5, 6, 7} {
		if _, err := os.Stat(c.ObjectPath(id)); !os.IsNotExist(err) {
			t.Errorf("evicted object %d still on disk: %v", id, err)
		}
	}
	// Trim does nothing under the high watermark.
	if freed, err := c.Trim(); freed != 0 || err != nil {
		t.Errorf("Trim = %d, %v", freed, err)
	}
	if err := c.Evict(8); err != nil {
		t.Errorf("Evict: %v", err)
	}
	if err := c.Evict(8); !errors.Is(err, cache.ErrNotCached) {
		t.Errorf("Evict twice: %v", err)
	}
}

func TestTrimAfterObjectsBecomeSynced(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1000, High: 0.8, Low: 0.4})
	for id := uint64(1); id <= 10; id++ {
		adopt(t, c, id, 100, false) // unsynced: Adopt may not evict
	}
	if st := c.Stats(); st.Used != 1000 || st.Unsynced != 1000 {
		t.Fatalf("Stats = %+v", st)
	}
	for id := uint64(1); id <= 10; id++ {
		c.SetSynced(id, true)
	}
	if freed, err := c.Trim(); freed != 600 || err != nil {
		t.Errorf("Trim = %d, %v; want 600", freed, err)
	}
	if got := ids(c); !slices.Equal(got, []uint64{7, 8, 9, 10}) {
		t.Errorf("after Trim: %v", got)
	}
}

func TestNeverEvictsUnsyncedPinnedOpenOrPartial(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 10000})
	adopt(t, c, 1, 100, false) // unsynced
	adopt(t, c, 2, 100, true)  // pinned
	c.Pin(2, true)
	adopt(t, c, 3, 100, true) // open
	h, err := c.Open(3)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := c.BeginRecall(4, 100) // partial
	if err != nil {
		t.Fatal(err)
	}
	adopt(t, c, 5, 100, true) // the only evictable one

	if freed, err := c.EvictTo(0); freed != 100 || err != nil {
		t.Errorf("EvictTo(0) = %d, %v; want only object 5", freed, err)
	}
	if got := ids(c); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Errorf("left: %v", got)
	}
	for _, id := range []uint64{1, 2, 3, 4} {
		if err := c.Evict(id); !errors.Is(err, cache.ErrBusy) {
			t.Errorf("Evict(%d) = %v, want ErrBusy", id, err)
		}
	}
	// A full cache must not break these rules either.
	if err := c.Reserve(context.Background(), 10000); !errors.Is(err, cache.ErrNoSpace) {
		t.Errorf("Reserve: %v", err)
	}
	if got := ids(c); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Errorf("left after Reserve: %v", got)
	}

	c.SetSynced(1, true)
	c.Pin(2, false)
	h.Close()
	p.Write(make([]byte, 100))
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if freed, _ := c.EvictTo(0); freed != 400 || c.Stats().Used != 0 {
		t.Errorf("once released, EvictTo(0) freed %d, Stats %+v", freed, c.Stats())
	}
}

func TestFullCache(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1000})
	adopt(t, c, 1, 600, false)
	adopt(t, c, 2, 300, true)
	c.Pin(2, true)

	err := c.Reserve(context.Background(), 200)
	if !errors.Is(err, cache.ErrNoSpace) {
		t.Fatalf("Reserve = %v, want ErrNoSpace", err)
	}
	for _, want := range []string{"200 B needed", "100 B free of 1000 B", "600 B not yet on tape", "300 B pinned", "--cache-size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not say %q", err, want)
		}
	}
	p, started, err := c.BeginRecall(3, 200)
	if !errors.Is(err, cache.ErrNoSpace) || p != nil || started {
		t.Errorf("BeginRecall on a full cache = %v, %v, %v", p, started, err)
	}
	if _, ok := c.Lookup(3); ok {
		t.Error("a refused recall left an object")
	}
	if err := c.Reserve(context.Background(), 5000); !errors.Is(err, cache.ErrNoSpace) ||
		!strings.Contains(err.Error(), "whole cache") {
		t.Errorf("Reserve of more than the cache: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Reserve(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Reserve with a cancelled context: %v", err)
	}

	// Once on tape, object 1 makes way.
	c.SetSynced(1, true)
	if err := c.Reserve(context.Background(), 200); err != nil {
		t.Errorf("Reserve after sync: %v", err)
	}
	if _, ok := c.Lookup(1); ok {
		t.Error("Reserve did not evict the synced object")
	}
	// A recall's size counts as used from the start.
	if _, started, err := c.BeginRecall(3, 600); err != nil || !started {
		t.Fatal(started, err)
	}
	if st := c.Stats(); st.Used != 900 {
		t.Errorf("Used with a partial = %d, want 900", st.Used)
	}
	if _, _, err := c.BeginRecall(4, 200); !errors.Is(err, cache.ErrNoSpace) {
		t.Errorf("second recall over the limit: %v", err)
	}
}

// waiter runs WaitRange in a goroutine and reports its result.
func waiter(ctx context.Context, c *cache.Cache, id uint64, off, n int64) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.WaitRange(ctx, id, off, n) }()
	return done
}

func mustReturn(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(waitLong):
		t.Fatal("WaitRange did not return")
		return nil
	}
}

// mustWait checks that done has not returned yet and lets n waiters block
// on object id, so that what the test does next surely finds them waiting.
func mustWait(t *testing.T, c *cache.Cache, id uint64, n int, dones ...<-chan error) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for cache.WaitersForTest(c, id) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d waiters blocked on object %d", n, id)
		}
		time.Sleep(time.Millisecond)
	}
	for _, done := range dones {
		select {
		case err := <-done:
			t.Fatalf("WaitRange returned early: %v", err)
		default:
		}
	}
}

func TestPartialWithConcurrentWaiters(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	p, started, err := c.BeginRecall(42, 1000)
	if err != nil || !started {
		t.Fatal(started, err)
	}
	if info, _ := c.Lookup(42); !info.Partial || !info.Synced || info.Size != 1000 {
		t.Errorf("Lookup of a partial = %+v", info)
	}
	// A second reader of the same object joins the recall in progress.
	if p2, started, err := c.BeginRecall(42, 1000); p2 != nil || started || err != nil {
		t.Errorf("second BeginRecall = %v, %v, %v", p2, started, err)
	}

	ctx := context.Background()
	type w struct {
		end  int64 // the filled size it needs
		done <-chan error
	}
	ws := []w{
		{100, waiter(ctx, c, 42, 0, 100)},
		{350, waiter(ctx, c, 42, 300, 50)},
		{350, waiter(ctx, c, 42, 349, 1)},
		{700, waiter(ctx, c, 42, 600, 100)},
		{1000, waiter(ctx, c, 42, 900, 5000)}, // clipped to the size
		{1000, waiter(ctx, c, 42, 0, -1)},     // the whole object
	}
	want := make([]byte, 1000)
	for i := range want {
		want[i] = byte(i)
	}
	for filled := int64(0); filled < 1000; filled += 50 {
		// Every waiter not yet served is blocked before each write.
		var pending []<-chan error
		for _, x := range ws {
			pending = append(pending, x.done)
		}
		mustWait(t, c, 42, len(ws), pending...)
		n, err := p.Write(want[filled : filled+50])
		if err != nil || n != 50 {
			t.Fatalf("Write = %d, %v", n, err)
		}
		if p.Filled() != filled+50 {
			t.Fatalf("Filled = %d, want %d", p.Filled(), filled+50)
		}
		var left []w
		for _, x := range ws {
			// The end of the object waits for the Commit (md5 checked).
			if x.end <= filled+50 && x.end < 1000 {
				if err := mustReturn(t, x.done); err != nil {
					t.Errorf("waiter for %d: %v", x.end, err)
				}
			} else {
				left = append(left, x)
			}
		}
		ws = left
	}
	if _, err := p.Write([]byte{1}); err == nil {
		t.Error("Write past the size succeeded")
	}
	if len(ws) != 2 {
		t.Fatalf("%d waiters left before Commit, want the 2 that need the end", len(ws))
	}
	var pending []<-chan error
	for _, x := range ws {
		pending = append(pending, x.done)
	}
	mustWait(t, c, 42, len(ws), pending...)
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, x := range ws {
		if err := mustReturn(t, x.done); err != nil {
			t.Errorf("waiter for the end after Commit: %v", err)
		}
	}
	if info, _ := c.Lookup(42); info.Partial || !info.Synced {
		t.Errorf("after Commit: %+v", info)
	}
	got, err := os.ReadFile(c.ObjectPath(42))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("committed object differs (%v)", err)
	}
	if _, err := os.Stat(c.ObjectPath(42) + ".partial"); !os.IsNotExist(err) {
		t.Errorf("partial file left after Commit: %v", err)
	}
	if _, started, _ := c.BeginRecall(42, 1000); started {
		t.Error("BeginRecall of a complete object started a recall")
	}
	if err := p.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	p.Abort(errors.New("late")) // does nothing after Commit
	if _, ok := c.Lookup(42); !ok {
		t.Error("Abort after Commit removed the object")
	}
}

func TestAbortWakesWaiters(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	p, _, err := c.BeginRecall(5, 100)
	if err != nil {
		t.Fatal(err)
	}
	p.Write(make([]byte, 10))
	ctx := context.Background()
	w1 := waiter(ctx, c, 5, 20, 10)
	w2 := waiter(ctx, c, 5, 50, 50)
	mustWait(t, c, 5, 2, w1)
	tapeErr := errors.New("medium error on VOL001")
	p.Abort(tapeErr)
	for _, w := range []<-chan error{w1, w2} {
		if err := mustReturn(t, w); !errors.Is(err, tapeErr) {
			t.Errorf("waiter got %v, want the abort error", err)
		}
	}
	if _, ok := c.Lookup(5); ok {
		t.Error("aborted object still indexed")
	}
	if _, err := os.Stat(c.ObjectPath(5) + ".partial"); !os.IsNotExist(err) {
		t.Errorf("aborted partial file left: %v", err)
	}
	if st := c.Stats(); st.Used != 0 {
		t.Errorf("Used after abort = %d", st.Used)
	}
	if err := c.WaitRange(ctx, 5, 0, 1); !errors.Is(err, cache.ErrNotCached) {
		t.Errorf("WaitRange after abort = %v, want ErrNotCached", err)
	}
	if _, err := p.Write([]byte{1}); !errors.Is(err, tapeErr) {
		t.Errorf("Write after Abort = %v", err)
	}
	if err := p.Commit(); !errors.Is(err, tapeErr) {
		t.Errorf("Commit after Abort = %v", err)
	}
	// The recall may be tried again.
	if _, started, err := c.BeginRecall(5, 100); !started || err != nil {
		t.Errorf("BeginRecall after abort: %v %v", started, err)
	}
}

func TestShortCommitAborts(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	p, _, _ := c.BeginRecall(6, 100)
	p.Write(make([]byte, 60))
	w := waiter(context.Background(), c, 6, 90, 10)
	mustWait(t, c, 6, 1, w)
	if err := p.Commit(); err == nil {
		t.Fatal("Commit of a short recall succeeded")
	}
	if err := mustReturn(t, w); err == nil {
		t.Error("waiter not told of the failed recall")
	}
	if _, ok := c.Lookup(6); ok {
		t.Error("failed recall left an object")
	}
}

func TestCancelledWaiterLeavesRecallRunning(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	p, _, _ := c.BeginRecall(9, 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := waiter(ctx, c, 9, 0, 100)
	patient := waiter(context.Background(), c, 9, 0, 100)
	mustWait(t, c, 9, 2, cancelled)
	cancel()
	if err := mustReturn(t, cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter got %v", err)
	}
	mustWait(t, c, 9, 1, patient)
	if info, _ := c.Lookup(9); !info.Partial {
		t.Error("cancelling a waiter ended the recall")
	}
	p.Write(make([]byte, 100))
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := mustReturn(t, patient); err != nil {
		t.Errorf("patient waiter: %v", err)
	}
	if err := c.WaitRange(context.Background(), 9, 0, 100); err != nil {
		t.Errorf("WaitRange after Commit: %v", err)
	}
}

func TestHandleOnPartialSurvivesCommit(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	p, _, _ := c.BeginRecall(77, 11)
	h, err := c.Open(77)
	if err != nil {
		t.Fatalf("Open of a partial: %v", err)
	}
	defer h.Close()
	if info, _ := c.Lookup(77); info.Open != 1 {
		t.Errorf("Open count = %d", info.Open)
	}
	p.Write([]byte("hello"))
	if err := c.WaitRange(context.Background(), 77, 0, 5); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := h.File().ReadAt(buf, 0); err != nil || string(buf) != "hello" {
		t.Errorf("read from partial = %q, %v", buf, err)
	}
	p.Write([]byte(", tape"))
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	buf = make([]byte, 11)
	if _, err := h.File().ReadAt(buf, 0); err != nil || string(buf) != "hello, tape" {
		t.Errorf("read after Commit = %q, %v", buf, err)
	}
	if err := c.Evict(77); !errors.Is(err, cache.ErrBusy) {
		t.Errorf("Evict of an open object = %v", err)
	}
}

func TestRemoveWithOpenHandle(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	data := adopt(t, c, 11, 4096, false)
	h, err := c.Open(11)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := c.Remove(11); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Lookup(11); ok {
		t.Error("removed object still indexed")
	}
	if _, err := os.Stat(c.ObjectPath(11)); !os.IsNotExist(err) {
		t.Errorf("removed object still on disk: %v", err)
	}
	got, err := io.ReadAll(h.File())
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("open handle lost its data after Remove (%v)", err)
	}
	if st := c.Stats(); st.Used != 0 || st.Unsynced != 0 || st.Evictions != 0 {
		t.Errorf("Stats after Remove = %+v", st)
	}
	if err := c.Remove(11); !errors.Is(err, cache.ErrNotCached) {
		t.Errorf("second Remove = %v", err)
	}

	// Removing a partial aborts its recall.
	p, _, _ := c.BeginRecall(12, 10)
	w := waiter(context.Background(), c, 12, 0, 10)
	mustWait(t, c, 12, 1, w)
	if err := c.Remove(12); err != nil {
		t.Fatal(err)
	}
	if err := mustReturn(t, w); err == nil {
		t.Error("waiter on a removed partial got no error")
	}
	if _, err := p.Write([]byte("x")); err == nil {
		t.Error("Write to a removed partial succeeded")
	}
}

func TestAdoptSupersedesRecall(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 20})
	p, _, _ := c.BeginRecall(13, 10)
	w := waiter(context.Background(), c, 13, 0, 10)
	mustWait(t, c, 13, 1, w)
	adopt(t, c, 13, 10, true)
	if err := mustReturn(t, w); err == nil {
		t.Error("waiter on a superseded recall got no error")
	}
	if err := p.Commit(); err == nil {
		t.Error("Commit of a superseded recall succeeded")
	}
	if info, ok := c.Lookup(13); !ok || info.Partial || info.Size != 10 {
		t.Errorf("adopted object: %+v %v", info, ok)
	}
	if st := c.Stats(); st.Used != 10 {
		t.Errorf("Used = %d, want 10", st.Used)
	}
}

func TestCloseAbortsRecalls(t *testing.T) {
	c, err := cache.Open(cache.Config{Dir: t.TempDir(), Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	adopt(t, c, 1, 10, true)
	h, _ := c.Open(1)
	c.BeginRecall(2, 10)
	w := waiter(context.Background(), c, 2, 0, 10)
	mustWait(t, c, 2, 1, w)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mustReturn(t, w); err == nil {
		t.Error("waiter not released by Close")
	}
	if _, _, err := c.BeginRecall(3, 10); err == nil {
		t.Error("BeginRecall after Close succeeded")
	}
	if _, err := h.File().ReadAt(make([]byte, 10), 0); err != nil {
		t.Errorf("handle unreadable after Close: %v", err)
	}
	h.Close()
}

func TestConcurrentUse(t *testing.T) {
	// Run under -race: recalls, readers, evictions and adoptions at once.
	c := openCache(t, cache.Config{Limit: 20000, High: 0.8, Low: 0.5})
	done := make(chan error)
	for g := range 8 {
		go func() {
			done <- func() error {
				for i := range 20 {
					id := uint64(g*1000 + i%5)
					p, started, err := c.BeginRecall(id, 500)
					if errors.Is(err, cache.ErrNoSpace) {
						continue
					}
					if err != nil {
						return err
					}
					if started {
						go func() {
							for range 5 {
								p.Write(make([]byte, 100))
							}
							p.Commit()
						}()
					}
					if h, err := c.Open(id); err == nil {
						if err := c.WaitRange(context.Background(), id, 0, 500); err != nil {
							return fmt.Errorf("WaitRange %d: %w", id, err)
						}
						h.Close()
					}
					c.EvictTo(10000)
					c.Stats()
				}
				return nil
			}()
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestAdoptAll: many objects adopted in one call (a sealed batch) are all
// in the cache, over several fan-out directories, with their sizes; a
// replay after a crash is a no-op, and a missing source fails the call.
func TestAdoptAll(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1 << 30})
	dir, err := c.NewSealingDir()
	if err != nil {
		t.Fatal(err)
	}
	var objs []cache.Adoption
	for id := uint64(1); id <= 600; id++ { // past 256: every fan-out directory, some twice
		src := filepath.Join(dir, fmt.Sprint(id))
		if err := os.WriteFile(src, bytes.Repeat([]byte{'x'}, int(id)), 0o644); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, cache.Adoption{ID: id, Src: src})
	}
	if err := c.AdoptAll(objs, false); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		info, ok := c.Lookup(o.ID)
		if !ok || info.Size != int64(o.ID) || info.Synced {
			t.Fatalf("object %d after AdoptAll: %+v %v", o.ID, info, ok)
		}
		if _, err := os.Stat(o.Src); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("source of %d still there: %v", o.ID, err)
		}
	}
	if err := c.AdoptAll(objs, true); err != nil {
		t.Errorf("replayed AdoptAll: %v", err)
	}
	if info, _ := c.Lookup(600); !info.Synced {
		t.Errorf("replay did not apply synced: %+v", info)
	}
	if err := c.AdoptAll([]cache.Adoption{{ID: 601, Src: filepath.Join(dir, "missing")}}, false); err == nil {
		t.Error("AdoptAll of a missing source succeeded")
	}
}

// TestObjectsAfter: paging through the cache with ObjectsAfter yields
// every object once, by ascending ID, whatever the page size.
func TestObjectsAfter(t *testing.T) {
	c := openCache(t, cache.Config{})
	for i := range 60 {
		adopt(t, c, uint64(i*37%61+1), 1, false) // IDs 1..61 but one, out of order
	}
	want := ids(c)
	for _, limit := range []int{1, 7, 60, 100} {
		var got []uint64
		for after := uint64(0); ; {
			page := c.ObjectsAfter(after, limit)
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			for _, o := range page {
				got = append(got, o.ID)
			}
			after = page[len(page)-1].ID
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: paged %v, want %v", limit, got, want)
		}
	}
}
