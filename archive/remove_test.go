package archive

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// removalEvents returns the messages of the events of a kind.
func removalEvents(t *testing.T, e *Engine, kind string) []string {
	t.Helper()
	var out []string
	err := e.cat.View(func(tx *catalog.Tx) error {
		evs, err := tx.Events(0, 0, "")
		for _, ev := range evs {
			if ev.Kind == kind {
				out = append(out, ev.Message)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// statusView is the batch as the surface shows it.
func statusView(e *Engine, id uint64) (Batch, error) {
	st, err := e.Status(id)
	return e.batchView(st.Batch), err
}

// hiddenPaths lists the entries of a batch that are hidden.
func hiddenPaths(t *testing.T, e *Engine, id uint64) []string {
	t.Helper()
	var out []string
	for p, f := range batchFiles(t, e, id) {
		if f.Removed {
			out = append(out, p)
		}
	}
	return out
}

// TestProvisionalRemoval: entries removed inside a live batch are hidden
// and recorded; they come back with an event when the grace period after
// the last removal passes, at once with Undelete, and after a restart the
// grace period goes on from the recorded last removal. Removing the
// emptied batch directory deletes the batch with all of them.
func TestProvisionalRemoval(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	home := t.TempDir()
	setup := testSetup{Home: home, Settle: time.Hour, clock: clk, RemoveGrace: time.Minute}
	te := setup.open(t)
	makeTree(t, te.StagingDir("ws"), []srcFile{
		{path: "e/f", typ: catalog.TypeFile, data: []byte("one"), mode: 0o644},
		{path: "e/d/g", typ: catalog.TypeFile, data: []byte("two"), mode: 0o644},
	})
	b, err := te.Seal(context.Background(), "ws", "e", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	files := batchFiles(t, te.Engine, b.ID)
	e, d := files["e"].ID, files["e/d"].ID

	// Refusals: wrong type, a directory with visible entries, a batch
	// directory that still shows entries.
	if _, err := te.RemoveEntry("ws", b.ID, e, "d", false); !errors.Is(err, ErrIsDir) {
		t.Errorf("unlink of a directory: %v, want ErrIsDir", err)
	}
	if _, err := te.RemoveEntry("ws", b.ID, e, "f", true); !errors.Is(err, ErrNotDir) {
		t.Errorf("rmdir of a file: %v, want ErrNotDir", err)
	}
	if _, err := te.RemoveEntry("ws", b.ID, e, "d", true); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("rmdir of a directory with entries: %v, want ErrNotEmpty", err)
	}
	if _, err := te.RemoveEntry("other", b.ID, e, "f", false); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("rm through another workspace: %v, want ErrNotFound", err)
	}
	if _, err := te.RemoveEmptied("ws", b.ID); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("rmdir of a batch directory with entries: %v, want ErrNotEmpty", err)
	}
	if st, _ := statusView(te.Engine, b.ID); st.Removing != "" || len(hiddenPaths(t, te.Engine, b.ID)) != 0 {
		t.Fatalf("refused removals left a removal in progress: %+v %v", st, hiddenPaths(t, te.Engine, b.ID))
	}

	// Three removals, 30 s apart: the grace period runs from the last.
	if _, err := te.RemoveEntry("ws", b.ID, e, "f", false); err != nil {
		t.Fatal(err)
	}
	if _, err := te.RemoveEntry("ws", b.ID, e, "f", false); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("second rm of the same file: %v, want ErrNotFound", err)
	}
	clk.Add(30 * time.Second)
	if _, err := te.RemoveEntry("ws", b.ID, d, "g", false); err != nil {
		t.Fatal(err)
	}
	if _, err := te.RemoveEntry("ws", b.ID, e, "d", true); err != nil {
		t.Fatal(err)
	}
	st, err := statusView(te.Engine, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removing != "removal in progress (3 entries hidden)" || st.Removal.Hidden != 3 || !st.RemovalUndo.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("status during the removal: %q, %+v, undo at %v; want 3 entries hidden, undone a minute from now", st.Removing, st.Removal, st.RemovalUndo)
	}
	if ev := removalEvents(t, te.Engine, EvRemoving); len(ev) != 1 || !strings.Contains(ev[0], "e/f") {
		t.Errorf("removing events: %q; want one naming e/f", ev)
	}
	clk.Add(45 * time.Second) // 75 s after the first removal, 45 s after the last
	te.undoExpiredRemovals()
	if len(hiddenPaths(t, te.Engine, b.ID)) != 3 {
		t.Fatalf("removal undone before the grace period after the last removal: hidden %v", hiddenPaths(t, te.Engine, b.ID))
	}
	clk.Add(16 * time.Second)
	te.undoExpiredRemovals()
	if h := hiddenPaths(t, te.Engine, b.ID); len(h) != 0 {
		t.Fatalf("hidden after the grace period: %v", h)
	}
	if st, _ := statusView(te.Engine, b.ID); st.Removing != "" || st.Removal.Hidden > 0 || !st.State.Live() {
		t.Errorf("status after the undo: %+v", st)
	}
	if ev := removalEvents(t, te.Engine, EvRemovalUndone); len(ev) != 1 || !strings.Contains(ev[0], "3 entries") || !strings.Contains(ev[0], "not removed within 1m0s") {
		t.Errorf("undone events: %q; want one saying 3 entries and why", ev)
	}

	// Undelete of a live batch with a removal in progress: back at once.
	if _, err := te.RemoveEntry("ws", b.ID, e, "f", false); err != nil {
		t.Fatal(err)
	}
	if ub, err := te.Undelete(b.ID); err != nil || ub.Removal.Pending() {
		t.Fatalf("undelete of a removal in progress: %+v %v", ub, err)
	}
	if h := hiddenPaths(t, te.Engine, b.ID); len(h) != 0 {
		t.Fatalf("hidden after undelete: %v", h)
	}
	if ev := removalEvents(t, te.Engine, EvRemovalUndone); len(ev) != 2 || !strings.Contains(ev[1], "by tapefs undelete: 1 entry") {
		t.Errorf("undone events: %q; want a second one by undelete of 1 entry", ev)
	}
	if _, err := te.Undelete(b.ID); err == nil {
		t.Error("undelete of a live batch with nothing hidden succeeded")
	}

	// A restart in the middle: the grace period goes on from the catalog.
	if _, err := te.RemoveEntry("ws", b.ID, e, "f", false); err != nil {
		t.Fatal(err)
	}
	te.close()
	clk.Add(40 * time.Second)
	te2, err := setup.openErr()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(te2.close)
	if st, _ := statusView(te2.Engine, b.ID); st.Removing != "removal in progress (1 entry hidden)" {
		t.Fatalf("after a restart: %q; want the removal still in progress", st.Removing)
	}
	te2.undoExpiredRemovals()
	if len(hiddenPaths(t, te2.Engine, b.ID)) != 1 {
		t.Fatal("the restart undid the removal before its grace period ended")
	}
	clk.Add(21 * time.Second)
	te2.undoExpiredRemovals()
	if h := hiddenPaths(t, te2.Engine, b.ID); len(h) != 0 {
		t.Fatalf("hidden after the grace period that spanned a restart: %v", h)
	}

	// rm -r: every entry, then the batch directory: deleted with all of
	// them; undelete brings everything back.
	for _, r := range []struct {
		parent uint64
		name   string
		dir    bool
	}{{d, "g", false}, {e, "d", true}, {e, "f", false}, {0, "e", true}} {
		if _, err := te2.RemoveEntry("ws", b.ID, r.parent, r.name, r.dir); err != nil {
			t.Fatal(err)
		}
	}
	db, err := te2.RemoveEmptied("ws", b.ID)
	if err != nil || db.State != catalog.Deleted || db.Removal.Pending() {
		t.Fatalf("rmdir of the emptied batch directory: %+v %v", db, err)
	}
	if ev := removalEvents(t, te2.Engine, EvDeleted); len(ev) != 1 || !strings.Contains(ev[0], "after 4 entries") {
		t.Errorf("deleted events: %q", ev)
	}
	clk.Add(time.Hour)
	te2.undoExpiredRemovals()
	if st, _ := statusView(te2.Engine, b.ID); st.State != StateDeleted {
		t.Fatalf("a deleted batch came back by the grace loop: %s", st.State)
	}
	if ub, err := te2.Undelete(b.ID); err != nil || !ub.State.Live() {
		t.Fatalf("undelete: %+v %v", ub, err)
	}
	if h := hiddenPaths(t, te2.Engine, b.ID); len(h) != 0 {
		t.Fatalf("hidden after undelete of the deleted batch: %v", h)
	}
}
