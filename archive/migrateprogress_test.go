package archive

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// TestFlushRateIsCurrent: the rate is that of the last seconds, not the
// average since the flush began: a drive that idled 30 s (mount, locate)
// and now streams 10 MiB/s shows 10 MiB/s.
func TestFlushRateIsCurrent(t *testing.T) {
	now := time.Now()
	f := &streamLive{samples: []rateSample{{t: now.Add(-40 * time.Second), n: 0}}}
	// 30 s of nothing, then 1 MiB every 100 ms for 10 s.
	var n int64
	for i := 1; i <= 100; i++ {
		n += 1 << 20
		f.samples = append(f.samples, rateSample{t: now.Add(-10*time.Second + time.Duration(i)*100*time.Millisecond), n: n})
	}
	got := f.rateLocked(now)
	if want := 10.0 * (1 << 20); got < 0.95*want || got > 1.05*want {
		t.Errorf("rate %.0f B/s, want about %.0f (the average since start would be %.0f)", got, want, float64(n)/40)
	}
	// Silence for longer than the window: not streaming.
	if got := f.rateLocked(now.Add(rateWindow + time.Second)); got != 0 {
		t.Errorf("rate %.0f after %v without a byte, want 0", got, rateWindow)
	}
	// Sparse samples (a slow drive, one chunk per 4 s): the chunk that
	// straddles the window's start counts for its part.
	g := &streamLive{samples: []rateSample{{t: now.Add(-8 * time.Second), n: 0}, {t: now.Add(-4 * time.Second), n: 4 << 20}, {t: now, n: 8 << 20}}}
	if got, want := g.rateLocked(now), float64(1<<20); got < 0.95*want || got > 1.05*want {
		t.Errorf("sparse: rate %.0f, want about %.0f", got, want)
	}
}

// TestMigrationProgressIsLive: while the drives write a batch, its view
// shows the bytes written so far (the catalog's on-tape count moves only
// at the filemark), the drives, a current rate and an ETA; before, that it
// is queued and when writing starts; after, 100 % and no migration. With
// two copies both streams count, each on its own drive.
func TestMigrationProgressIsLive(t *testing.T) {
	for _, copies := range []int{1, 2} {
		t.Run(fmt.Sprintf("copies=%d", copies), func(t *testing.T) { testMigrationProgress(t, copies) })
	}
}

func testMigrationProgress(t *testing.T, copies int) {
	// 1 MiB/s simulated at a scale of 0.05: 20 MiB/s real, so 48 MiB
	// take about 2.5 s to write.
	s := testSetup{Home: t.TempDir(), StreamRate: 1 << 20, TimeScale: 0.05, FlushAge: 5 * time.Second, Settle: time.Hour}
	te := s.open(t)
	if _, err := te.SetCopies("ws", copies); err != nil {
		t.Fatal(err)
	}
	const size = 48 << 20
	need := int64(size * copies)
	writeBigFile(t, filepath.Join(te.StagingDir("ws"), "entry", "data"), size, 7)
	b, err := te.Seal(context.Background(), "ws", "entry", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	view := func() Batch {
		t.Helper()
		var cb catalog.Batch
		if err := te.cat.View(func(tx *catalog.Tx) error { var err error; cb, err = tx.Batch(b.ID); return err }); err != nil {
			t.Fatal(err)
		}
		return te.batchView(cb)
	}
	deadline := time.Now().Add(time.Minute)
	sawQueued, sawWriting, sawBoth := false, false, false
	var last Batch
	for time.Now().Before(deadline) {
		v := view()
		last = v
		if v.State.OnTape() {
			break
		}
		m := v.Migration
		if v.State == StateCached && m != nil && m.Phase == PhaseQueued && !sawQueued {
			sawQueued = true
			if !strings.Contains(m.Note, "writing starts in ~") || m.StartsAt.IsZero() {
				t.Errorf("queued: note %q, starts at %v; want when writing starts", m.Note, m.StartsAt)
			}
		}
		if m != nil && m.Phase == PhaseWriting && m.Written > 0 && m.Written < need && m.Rate > 0 && v.OnTape == 0 {
			if !sawWriting {
				t.Logf("writing: %s (progress %.1f %%)", m.Note, 100*v.Progress)
			}
			sawWriting = true
			if v.Progress <= 0 || v.Progress >= 1 {
				t.Errorf("progress %.3f while %d of %d bytes are written", v.Progress, m.Written, need)
			}
			if m.Drive < 0 || m.VOLSER == "" || m.ETA.IsZero() || !strings.Contains(m.Note, "writing on drive") || !strings.Contains(m.Note, "left") {
				t.Errorf("writing: %+v lacks drive, cartridge, ETA or note", m)
			}
			if m.FilesAll != int64(copies) {
				t.Errorf("files to write %d, want %d (one file, %d copies)", m.FilesAll, copies, copies)
			}
			// 20 MiB/s real per drive: the current rate is within a
			// factor of it.
			if m.Rate < 1<<20 || m.Rate > 200<<20 {
				t.Errorf("rate %.0f B/s, want about %d × 20 MiB/s", m.Rate, copies)
			}
			if strings.Contains(m.Note, "drives 0") || strings.Contains(m.Note, "drives 1") {
				if !sawBoth {
					t.Logf("both copies: %s", m.Note)
				}
				sawBoth = true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawQueued {
		t.Error("never saw the batch queued with the time writing starts")
	}
	if !sawWriting {
		t.Error("never saw bytes written while the drive wrote the batch (0 % until the filemark)")
	}
	if copies == 2 && !sawBoth {
		t.Error("never saw both copies written at once, on two drives")
	}
	waitSynced(t, te.Engine, b.ID)
	if v := view(); v.Progress != 1 || v.Migration != nil {
		t.Errorf("on tape: progress %v, migration %+v; want 1 and none (last seen %+v)", v.Progress, v.Migration, last.Migration)
	}
}

// TestQueuedBehindRunningFlush: a batch sealed while a flush writes
// another one says it waits for that flush and how much it has left; the
// question never blocks the flush (it once took the flush's lock twice and
// hung the daemon).
func TestQueuedBehindRunningFlush(t *testing.T) {
	s := testSetup{Home: t.TempDir(), StreamRate: 1 << 20, TimeScale: 0.05, FlushAge: 200 * time.Millisecond, Settle: time.Hour}
	te := s.open(t)
	writeBigFile(t, filepath.Join(te.StagingDir("ws"), "first", "data"), 48<<20, 1)
	first, err := te.Seal(context.Background(), "ws", "first", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	view := func(id uint64) Batch {
		t.Helper()
		done := make(chan Batch, 1)
		go func() {
			var cb catalog.Batch
			_ = te.cat.View(func(tx *catalog.Tx) error { var err error; cb, err = tx.Batch(id); return err })
			done <- te.batchView(cb)
		}()
		select {
		case v := <-done:
			return v
		case <-time.After(10 * time.Second):
			t.Fatalf("the view of batch %d did not come back within 10 s (a lock taken twice?)", id)
		}
		return Batch{}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within a minute", what)
			}
		}
	}
	waitFor("writing of the first batch", func() bool {
		m := view(first.ID).Migration
		return m != nil && m.Phase == PhaseWriting
	})
	makeTree(t, te.StagingDir("ws"), []srcFile{{path: "second/f", typ: catalog.TypeFile, data: []byte("later"), mode: 0o644}})
	second, err := te.Seal(context.Background(), "ws", "second", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	var note string
	waitFor("the second batch queued behind the flush", func() bool {
		v := view(second.ID)
		if v.State.OnTape() {
			t.Fatalf("the second batch reached tape before it was seen queued behind the first")
		}
		if m := v.Migration; m != nil && m.Phase == PhaseQueued && strings.Contains(m.Note, "after the flush of workspace ws now writing") {
			note = m.Note
			return true
		}
		return false
	})
	t.Logf("second batch: %s", note)
	waitSynced(t, te.Engine, first.ID)
	waitSynced(t, te.Engine, second.ID)
}
