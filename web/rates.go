package web

import (
	"github.com/tapefs/tapefs/archive"
	"sync"
	"time"
)

// rateSampler measures what each drive moves per second: it samples the
// drives' byte counters every tick and keeps a short window of samples,
// so the rate shown is the last few seconds', whenever a page asks.
type rateSampler struct {
	lib    func() []archive.DriveInfo
	now    func() time.Time
	window time.Duration

	mu      sync.Mutex
	samples []rateSample // oldest first, spanning about window
}

type rateSample struct {
	at    time.Time
	bytes map[int]int64 // drive index -> bytes read + written
}

func newRateSampler(lib func() []archive.DriveInfo, now func() time.Time) *rateSampler {
	return &rateSampler{lib: lib, now: now, window: 5 * time.Second}
}

// run samples every tick until stop is closed.
func (r *rateSampler) run(stop <-chan struct{}, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	r.sample()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			r.sample()
		}
	}
}

func (r *rateSampler) sample() {
	s := rateSample{at: r.now(), bytes: map[int]int64{}}
	for _, d := range r.lib() {
		s.bytes[d.Index] = d.Counters.BytesRead + d.Counters.BytesWritten
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples = append(r.samples, s)
	// Keep one sample older than the window, so the window is covered.
	for len(r.samples) > 2 && s.at.Sub(r.samples[1].at) >= r.window {
		r.samples = r.samples[1:]
	}
}

// rates returns bytes per second by drive over the last window, measured
// against the drives' counters now; nil before the first sample.
func (r *rateSampler) rates(drives []archive.DriveInfo) map[int]float64 {
	r.mu.Lock()
	if len(r.samples) == 0 {
		r.mu.Unlock()
		return nil
	}
	old := r.samples[0]
	r.mu.Unlock()
	dt := r.now().Sub(old.at).Seconds()
	if dt <= 0 {
		return nil
	}
	out := map[int]float64{}
	for _, d := range drives {
		was, ok := old.bytes[d.Index]
		if !ok {
			continue
		}
		out[d.Index] = float64(d.Counters.BytesRead+d.Counters.BytesWritten-was) / dt
	}
	return out
}
