package web

import (
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
