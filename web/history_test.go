package web

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// The history turns the engine's counters into rates per step, the queue
// and the mean latency of the recalls finished in each step, keeps its
// span, and the overview draws it.
func TestHistoryCharts(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var st archive.Stats
	h := newHistory(func() archive.Stats { return st }, func() time.Time { return now }, time.Minute, 5*time.Minute)
	h.sample() // the baseline: no point yet
	if h.charts() != nil {
		t.Fatal("charts before two points")
	}
	for i := 1; i <= 7; i++ {
		now = now.Add(time.Minute)
		st.MigratedBytes += 60 << 20 // 1 MiB/s
		st.RecallQueue = int64(i)
		if i%2 == 0 { // a recall of 2 s finishes every other minute
			st.RecalledBytes += 6 << 20
			st.RecallLatency.Count++
			st.RecallLatency.Sum += 2
		}
		h.sample()
	}
	if len(h.points) != 5 {
		t.Fatalf("%d points kept, want the span's 5", len(h.points))
	}
	last := h.points[len(h.points)-1]
	if last.migrateRate != 1<<20 || last.queue != 7 || !math.IsNaN(last.latency) {
		t.Errorf("last point %+v: want 1 MiB/s to tape, queue 7, no latency (no recall finished)", last)
	}
	if p := h.points[len(h.points)-2]; p.latency != 2 || p.recallBps != float64(6<<20)/60 {
		t.Errorf("point %+v: want latency 2 s and 0.1 MiB/s recalled", p)
	}

	te := newTestEnv(t, Options{})
	te.s.history = h
	page := te.mustGet("/")
	if n := strings.Count(page, `<svg class="chart"`); n != 4 {
		t.Fatalf("overview has %d charts, want 4 (to tape, recalled, queue, latency)", n)
	}
	for _, want := range []string{"to tape", "1.0 MiB/s", "recall queue", "recall latency", "peak 2s", "<polyline points="} {
		if !strings.Contains(page, want) {
			t.Errorf("overview charts lack %q", want)
		}
	}
	// The latency chart has gaps (minutes without a finished recall): dots, not one line.
	if !strings.Contains(page, "<circle ") {
		t.Errorf("the latency chart draws no isolated point for minutes between gaps")
	}
}

// The library table says when each cartridge was last read back whole.
func TestOverviewShowsLastReadBack(t *testing.T) {
	te := newTestEnv(t, Options{})
	b := te.put("gws", "e", "", map[string]string{"a": "alpha"})
	b = te.wait(b.ID)
	page := te.mustGet("/")
	if !strings.Contains(page, `<td class="verified"`) || !strings.Contains(page, ">never<") {
		t.Fatalf("the cartridge table has no read-back column saying never:\n%s", page[:min(len(page), 3000)])
	}
	var vol string
	for _, c := range te.lib.Cartridges() {
		if c.TapeFiles > 0 {
			if _, err := te.e.VerifyTape(context.Background(), archive.TapeScope{VOLSER: c.VOLSER}); err != nil {
				t.Fatal(err)
			}
			vol = c.VOLSER
		}
	}
	page = te.mustGet("/")
	if vol == "" || !strings.Contains(page, "s ago</td>") {
		t.Errorf("after reading back %s the overview does not say when:\n%s", vol, page[:min(len(page), 3000)])
	}
}
