package archive

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/pgtest"
)

// changeLog collects the changes an engine publishes.
type changeLog struct {
	mu sync.Mutex
	cs []Change
}

func (l *changeLog) add(c Change) { l.mu.Lock(); l.cs = append(l.cs, c); l.mu.Unlock() }

// wait waits up to d for the n-th change of kind to batch.
func (l *changeLog) wait(t *testing.T, d time.Duration, kind ChangeKind, batch uint64, n int) {
	t.Helper()
	deadline := time.Now().Add(d)
	for l.count(kind, batch) < n {
		if time.Now().After(deadline) {
			l.mu.Lock()
			seen := fmt.Sprint(l.cs)
			l.mu.Unlock()
			t.Fatalf("no %d× %s change of batch %d within %s; changes: %s", n, kind, batch, d, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *changeLog) count(kind ChangeKind, batch uint64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.cs {
		if c.Kind == kind && c.Batch == batch && c.Workspace == "ws" {
			n++
		}
	}
	return n
}

// TestFollowOtherHosts: two engines on one PostgreSQL catalog. A seal, a
// removal and an undelete committed by the first reach the second's
// subscribers within a second each; the first does not hear its own
// changes twice. While the second's listener is cut off (its
// connection killed, the database refusing new ones) ChangesFollowed is
// false, and a removal made meanwhile still reaches it; once the listener
// is back ChangesFollowed is true again.
func TestFollowOtherHosts(t *testing.T) {
	srv := catalogServer.srv
	if srv == nil {
		srv = pgtest.Start(t)
	}
	db := fmt.Sprintf("follow%d", time.Now().UnixNano())
	url := srv.CreateDB(t, db)
	a := testSetup{Home: t.TempDir(), Catalog: url, Settle: time.Hour}.open(t)
	// b migrates nothing (its flush age is never reached): a's batch is in
	// a's cache.
	b := testSetup{Home: t.TempDir(), Catalog: url, Settle: time.Hour, FlushAge: time.Hour}.open(t)
	if !a.cat.Shared() {
		t.Fatal("the catalog is not shared")
	}
	var mine, theirs changeLog
	defer a.Subscribe(mine.add)()
	defer b.Subscribe(theirs.add)()
	waitFollowed := func(e *testEngine, want bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for e.ChangesFollowed() != want {
			if time.Now().After(deadline) {
				t.Fatalf("ChangesFollowed stayed %v for 15 s", !want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFollowed(b, true)

	makeTree(t, a.StagingDir("ws"), []srcFile{{path: "run/f", typ: catalog.TypeFile, data: []byte("one"), mode: 0o644}})
	batch, err := a.Seal(context.Background(), "ws", "run", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	theirs.wait(t, time.Second, ChangeSealed, batch.ID, 1)
	if _, err := a.Remove(batch.ID); err != nil {
		t.Fatal(err)
	}
	theirs.wait(t, time.Second, ChangeRemoved, batch.ID, 1)
	if _, err := a.Undelete(batch.ID); err != nil {
		t.Fatal(err)
	}
	theirs.wait(t, time.Second, ChangeUndeleted, batch.ID, 1)
	// Changes made through b reach a too.
	if _, err := b.Remove(batch.ID); err != nil {
		t.Fatal(err)
	}
	mine.wait(t, time.Second, ChangeRemoved, batch.ID, 2)
	if _, err := b.Undelete(batch.ID); err != nil {
		t.Fatal(err)
	}
	mine.wait(t, time.Second, ChangeUndeleted, batch.ID, 2)
	time.Sleep(200 * time.Millisecond) // room for a duplicate to arrive
	if n := mine.count(ChangeRemoved, batch.ID); n != 2 {
		t.Errorf("a heard %d removals, want 2 (its own once, b's)", n)
	}
	if n := theirs.count(ChangeSealed, batch.ID); n != 1 {
		t.Errorf("the other host heard %d seals, want 1", n)
	}

	// Cut b's listener off.
	allow := srv.CutOff(t, db, "tapefs watch")
	waitFollowed(b, false)
	waitFollowed(a, false)
	if _, err := a.Remove(batch.ID); err != nil { // through a connection a's pool kept
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if b.ChangesFollowed() {
		t.Fatal("b says it follows every change while its listener cannot connect")
	}
	allow()
	// Heard by polling through b's pool, or by the read after the listener
	// is back: either way within the listener's reconnection.
	theirs.wait(t, 10*time.Second, ChangeRemoved, batch.ID, 3)
	waitFollowed(b, true)
	if n := theirs.count(ChangeRemoved, batch.ID); n != 3 {
		t.Errorf("b heard %d removals, want 3 (two by a, its own)", n)
	}
}
