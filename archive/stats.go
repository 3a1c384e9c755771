package archive

import (
	"sync"
	"time"
)

// RecallBuckets are the upper bounds (seconds) of the recall latency
// histogram: from a cache hit to a robot-and-locate recall of a large
// file.
var RecallBuckets = []float64{0.01, 0.1, 1, 10, 30, 60, 120, 300, 600, 1800, 3600}

// engineStats counts what the engine did, for metrics and benchmarks.
type engineStats struct {
	mu            sync.Mutex
	migratedBytes int64
	migratedFiles int64
	recallQueued  int64
	recallDone    int64
	recalledBytes int64
	recalledFiles int64
	aheadFiles    int64
	aheadBytes    int64
	passes        int64
	backward      int64
	latency       Histogram
}

// Histogram is a cumulative histogram of durations in seconds, shaped for
// Prometheus (Counts[i] counts observations ≤ Buckets[i]).
type Histogram struct {
	Buckets []float64
	Counts  []uint64
	Count   uint64
	Sum     float64
}

func (h *Histogram) observe(v float64) {
	if h.Buckets == nil {
		h.Buckets = RecallBuckets
		h.Counts = make([]uint64, len(RecallBuckets))
	}
	for i, b := range h.Buckets {
		if v <= b {
			h.Counts[i]++
		}
	}
	h.Count++
	h.Sum += v
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	MigratedBytes int64 // bytes written to tape since start
	MigratedFiles int64 // aggregates' members written since start
	RecallQueue   int64 // recall requests not finished
	RecalledFiles int64
	RecalledBytes int64
	RecallLatency Histogram // request to staged, seconds (reads and Recall calls)
	// Staged ahead of traversals (counted in RecalledFiles/Bytes too).
	StagedAheadFiles int64
	StagedAheadBytes int64
	RecallPasses     int64 // cartridge passes (each at most one mount)
	// BackwardLocates counts requests of a pass that lay behind the head:
	// the elevator had to wrap, because they arrived after it passed.
	BackwardLocates int64
	EntriesPending  int // entries of put/ being written or waiting to settle
	EntriesRefused  int // entries of put/ rejected or write-failed: they wait for a person
}

func (s *engineStats) addMigrated(bytes int64, files int) {
	s.mu.Lock()
	s.migratedBytes += bytes
	s.migratedFiles += int64(files)
	s.mu.Unlock()
}

func (s *engineStats) addQueued(n int) {
	s.mu.Lock()
	s.recallQueued += int64(n)
	s.mu.Unlock()
}

func (s *engineStats) addDone() {
	s.mu.Lock()
	s.recallDone++
	s.mu.Unlock()
}

func (s *engineStats) addRecalled(n int64, latency time.Duration, ahead bool) {
	s.mu.Lock()
	s.recalledBytes += n
	s.recalledFiles++
	if ahead {
		s.aheadFiles++
		s.aheadBytes += n
	} else {
		s.latency.observe(latency.Seconds())
	}
	s.mu.Unlock()
}

func (s *engineStats) addPass(backward int) {
	s.mu.Lock()
	s.passes++
	s.backward += int64(backward)
	s.mu.Unlock()
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	s.mu.Lock()
	h := s.latency
	h.Counts = append([]uint64(nil), h.Counts...)
	if h.Buckets == nil {
		h.Buckets, h.Counts = RecallBuckets, make([]uint64, len(RecallBuckets))
	}
	st := Stats{
		MigratedBytes: s.migratedBytes,
		MigratedFiles: s.migratedFiles,
		RecallQueue:   s.recallQueued - s.recallDone,
		RecalledFiles: s.recalledFiles,
		RecalledBytes: s.recalledBytes,
		RecallLatency: h,

		StagedAheadFiles: s.aheadFiles,
		StagedAheadBytes: s.aheadBytes,
		RecallPasses:     s.passes,
		BackwardLocates:  s.backward,
	}
	s.mu.Unlock()
	e.mu.Lock()
	for _, a := range e.entries {
		if a.rejected != "" || len(a.failed) > 0 {
			st.EntriesRefused++ // not settling: waiting for a person
		} else {
			st.EntriesPending++
		}
	}
	e.mu.Unlock()
	return st
}
