package archive

import (
	"context"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// TestEvictEndsStagingAhead: staging ahead started by reads of a batch
// before `tapefs cache evict` of it, whose goroutine runs only after the
// evict (a loaded machine), brings nothing back into the cache (seen as
// TestCLIRemoveUndelete finding files online right after the evict).
func TestEvictEndsStagingAhead(t *testing.T) {
	te := copiesSetup(t, 1, nil)
	b, sums := sealCopiesTree(t, te, "run")
	waitSynced(t, te.Engine, b.ID)

	started, release := make(chan struct{}, 1), make(chan struct{})
	stageAheadStarts = func() {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
	}
	released := false
	t.Cleanup(func() {
		stageAheadStarts = func() {}
		if !released {
			close(release)
		}
	})

	// Reading 3 files of the batch makes it a traversal: staging ahead
	// starts, and is held before it looks at the cache.
	var data []catalog.File
	for _, f := range batchFiles(t, te.Engine, b.ID) {
		if f.Type == catalog.TypeFile && f.Link == 0 {
			data = append(data, f)
		}
	}
	for _, f := range data[:3] {
		if got, err := md5Through(context.Background(), te.Engine, f.ID); err != nil || got != sums[f.Path] {
			t.Fatalf("%s: md5 %s %v", f.Path, got, err)
		}
	}
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatal("no staging ahead after 3 files of the batch were read")
	}
	q := te.recalls
	q.mu.Lock()
	trav := q.travs[b.ID]
	q.mu.Unlock()
	if trav == nil {
		t.Fatal("no traversal recorded")
	}

	if _, err := te.EvictBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	close(release)
	released = true
	waitFor(t, "staging ahead to end and the recall queue to drain", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return !trav.filling && len(q.byID) == 0
	})
	back := 0
	for _, f := range data {
		if _, ok := te.cache.Lookup(f.ID); ok {
			back++
		}
	}
	if back > 0 {
		t.Fatalf("%d of %d files of the evicted batch are back in the cache: staging ahead outlived the evict", back, len(data))
	}
	if st, _ := te.Status(b.ID); st.State != catalog.Synced {
		t.Fatalf("batch is %s after the evict, want SYNCED", st.State)
	}
}
