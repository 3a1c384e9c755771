package web

import (
	"fmt"
	"html/template"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/internal/human"
)

// The overview's charts answer "is it moving?" at a glance: migration and
// recall throughput, the recall queue and the recall latency over the last
// hours. The engine keeps counters since start; history samples them every
// step and keeps what the charts span, in memory (a restart starts the
// charts again: the metrics are for long history). The charts are SVG
// drawn on the server: no script, no library from the network (the page
// must work on a cluster without internet, under a CSP without script).

const (
	historyStep = time.Minute
	historySpan = 6 * time.Hour
)

// historyPoint is one step: rates and the mean latency over the step, the
// queue at its end. NaN: nothing to say (no recall finished in the step).
type historyPoint struct {
	at                     time.Time
	migrateRate, recallBps float64 // bytes per second
	queue                  float64 // recall requests waiting
	latency                float64 // mean seconds of the recalls finished in the step
}

type history struct {
	stats func() archive.Stats
	now   func() time.Time
	step  time.Duration
	keep  int

	mu     sync.Mutex
	last   archive.Stats
	lastAt time.Time
	points []historyPoint // oldest first
}

func newHistory(stats func() archive.Stats, now func() time.Time, step, span time.Duration) *history {
	return &history{stats: stats, now: now, step: step, keep: int(span / step)}
}

// run samples every step until stop is closed.
func (h *history) run(stop <-chan struct{}) {
	t := time.NewTicker(h.step)
	defer t.Stop()
	h.sample()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			h.sample()
		}
	}
}

func (h *history) sample() {
	st, at := h.stats(), h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.lastAt.IsZero() {
		if dt := at.Sub(h.lastAt).Seconds(); dt > 0 {
			p := historyPoint{at: at, queue: float64(st.RecallQueue), latency: math.NaN(),
				migrateRate: float64(st.MigratedBytes-h.last.MigratedBytes) / dt,
				recallBps:   float64(st.RecalledBytes-h.last.RecalledBytes) / dt}
			if n := st.RecallLatency.Count - h.last.RecallLatency.Count; n > 0 {
				p.latency = (st.RecallLatency.Sum - h.last.RecallLatency.Sum) / float64(n)
			}
			h.add(p)
		}
	}
	h.last, h.lastAt = st, at
}

// add appends a point, dropping what falls out of the span. h.mu held.
func (h *history) add(p historyPoint) {
	h.points = append(h.points, p)
	if over := len(h.points) - h.keep; over > 0 {
		h.points = append(h.points[:0], h.points[over:]...)
	}
}

// chart is one small chart of the overview.
type chart struct {
	Title  string
	Latest string // the last value, in words
	Peak   string // the highest value shown
	SVG    template.HTML
}

// charts draws the history, or nil before there are two points.
func (h *history) charts() []chart {
	h.mu.Lock()
	pts := append([]historyPoint(nil), h.points...)
	h.mu.Unlock()
	if len(pts) < 2 {
		return nil
	}
	rate := func(v float64) string { return human.Size(int64(v)) + "/s" }
	count := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	secs := func(v float64) string {
		return time.Duration(v * float64(time.Second)).Round(10 * time.Millisecond).String()
	}
	series := []struct {
		title  string
		value  func(historyPoint) float64
		format func(float64) string
	}{
		{"to tape", func(p historyPoint) float64 { return p.migrateRate }, rate},
		{"recalled from tape", func(p historyPoint) float64 { return p.recallBps }, rate},
		{"recall queue", func(p historyPoint) float64 { return p.queue }, count},
		{"recall latency", func(p historyPoint) float64 { return p.latency }, secs},
	}
	span := pts[len(pts)-1].at.Sub(pts[0].at)
	out := make([]chart, 0, len(series))
	for _, s := range series {
		vals := make([]float64, len(pts))
		for i, p := range pts {
			vals[i] = s.value(p)
		}
		c := chart{Title: s.title, SVG: sparkline(pts, vals, span, s.title)}
		peak, latest := 0.0, math.NaN()
		for _, v := range vals {
			if !math.IsNaN(v) {
				peak, latest = max(peak, v), v
			}
		}
		c.Peak = s.format(peak)
		if math.IsNaN(latest) {
			c.Latest = "—"
		} else {
			c.Latest = s.format(latest)
		}
		out = append(out, c)
	}
	return out
}

// The drawing box of a chart (the SVG scales to its column).
const chartW, chartH = 300.0, 60.0

// sparkline draws vals over the span of pts as an SVG polyline (a gap
// where a value is NaN), scaled to its peak.
func sparkline(pts []historyPoint, vals []float64, span time.Duration, title string) template.HTML {
	peak := 0.0
	for _, v := range vals {
		if !math.IsNaN(v) {
			peak = max(peak, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" preserveAspectRatio="none" role="img" aria-label="%s over the last %s">`,
		chartW, chartH, template.HTMLEscapeString(title), span.Round(time.Minute))
	fmt.Fprintf(&b, `<line class="axis" x1="0" y1="%g" x2="%g" y2="%g"/>`, chartH-0.5, chartW, chartH-0.5)
	var run []string
	flush := func() {
		if len(run) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s"/>`, strings.Join(run, " "))
		} else if len(run) == 1 {
			x, y, _ := strings.Cut(run[0], ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="1.5"/>`, x, y)
		}
		run = run[:0]
	}
	t0 := pts[0].at
	for i, v := range vals {
		if math.IsNaN(v) {
			flush()
			continue
		}
		x := chartW * pts[i].at.Sub(t0).Seconds() / max(span.Seconds(), 1)
		y := chartH - 1
		if peak > 0 {
			y = chartH - 1 - (chartH-4)*v/peak
		}
		run = append(run, fmt.Sprintf("%.1f,%.1f", x, y))
	}
	flush()
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // numbers and an escaped title only
}
