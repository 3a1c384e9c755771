package cache_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tapefs/tapefs/cache"
)

// stageAhead stages object id of size bytes ahead and commits it.
func stageAhead(t *testing.T, c *cache.Cache, id uint64, size int, keepFree int64) {
	t.Helper()
	p, started, err := c.BeginStageAhead(id, int64(size), keepFree)
	if err != nil || !started {
		t.Fatalf("BeginStageAhead(%d): %v, started %v", id, err, started)
	}
	if _, err := p.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestStageAheadEvictsOnlyWhatWasRead: staging ahead keeps keepFree
// bytes free, evicts objects that were opened since they were staged, and
// never one staged and still unread, nor one open.
func TestStageAheadEvictsOnlyWhatWasRead(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1000})
	stageAhead(t, c, 1, 300, 100)
	stageAhead(t, c, 2, 300, 100)
	if st := c.Stats(); st.Unread != 600 {
		t.Errorf("Unread = %d after staging 2 × 300; want 600", st.Unread)
	}
	// 400 left, 100 kept: 300 fits, 400 does not (nothing read to evict).
	if _, _, err := c.BeginStageAhead(3, 400, 100); !errors.Is(err, cache.ErrNoSpace) {
		t.Fatalf("BeginStageAhead past the free space with nothing read: %v; want ErrNoSpace", err)
	}
	// Object 1 is read (and closed): now it may go. Object 2 stays open.
	h, err := c.Open(1)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	h2, err := c.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	if st := c.Stats(); st.Unread != 0 {
		t.Errorf("Unread = %d after both were opened; want 0", st.Unread)
	}
	stageAhead(t, c, 3, 400, 100)
	if got := ids(c); !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("objects after staging 3: %v; want 1 (read) evicted, 2 (open) kept", got)
	}
	// Nothing evictable is left for staging ahead: 3 is unread, 2 is open.
	if _, _, err := c.BeginStageAhead(4, 300, 100); !errors.Is(err, cache.ErrNoSpace) {
		t.Errorf("BeginStageAhead with only unread and open objects: %v; want ErrNoSpace", err)
	}
	// A read's recall may evict what was staged ahead and not read.
	p, started, err := c.BeginRecall(5, 300)
	if err != nil || !started {
		t.Fatalf("BeginRecall with an unread staged object to evict: %v", err)
	}
	p.Abort(nil)
}

// TestReadPreemptsStagingAhead: a read that finds no room takes the space
// of a recall staged ahead in progress; whoever waits on that one gets an
// error that says to ask again (ErrNotCached). A promoted one is kept.
func TestReadPreemptsStagingAhead(t *testing.T) {
	c := openCache(t, cache.Config{Limit: 1000})
	ahead, _, err := c.BeginStageAhead(1, 600, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ahead.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	p, started, err := c.BeginRecall(2, 600)
	if err != nil || !started {
		t.Fatalf("BeginRecall beside a recall staged ahead: %v; want the staged one preempted", err)
	}
	if err := c.WaitRange(context.Background(), 1, 0, 600); !errors.Is(err, cache.ErrNotCached) {
		t.Errorf("waiting on the preempted recall: %v; want ErrNotCached (ask again)", err)
	}
	if _, err := ahead.Write(make([]byte, 100)); err == nil {
		t.Errorf("writing to a preempted recall succeeded")
	}
	p.Abort(nil)

	// Promoted (a reader joined): not preempted.
	kept, _, err := c.BeginStageAhead(3, 600, 0)
	if err != nil {
		t.Fatal(err)
	}
	kept.Promote()
	if _, _, err := c.BeginRecall(4, 600); !errors.Is(err, cache.ErrNoSpace) {
		t.Errorf("BeginRecall beside a promoted recall: %v; want ErrNoSpace", err)
	}
	kept.Abort(nil)
}

// TestVerifiedReleasesTheEnd: the last bytes of a recall are given out once
// it is verified, before Commit; a restart before Commit drops the object.
func TestVerifiedReleasesTheEnd(t *testing.T) {
	dir := t.TempDir()
	c := openCache(t, cache.Config{Dir: dir})
	p, _, err := c.BeginRecall(7, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.WaitRange(ctx, 7, 90, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the end of a filled but unverified recall: %v; want it held back", err)
	}
	p.Verified()
	if err := c.WaitRange(context.Background(), 7, 90, 10); err != nil {
		t.Fatalf("the end of a verified recall: %v", err)
	}
	if info, _ := c.Lookup(7); !info.Partial {
		t.Errorf("verified but not committed: %+v; want still partial", info)
	}
	// A crash now (the cache reopened without Commit): nothing is served.
	c2 := openCache(t, cache.Config{Dir: dir})
	if _, ok := c2.Lookup(7); ok {
		t.Errorf("a verified, uncommitted object survived a restart")
	}
}
