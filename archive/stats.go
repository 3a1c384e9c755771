package archive

import (
	"sync"
	"time"
)

// engineStats counts what the engine did, for metrics and benchmarks.
type engineStats struct {
	mu            sync.Mutex
	migratedBytes int64
	recallQueued  int64
	recallDone    int64
	recalledBytes int64
	recalledFiles int64
	recallLatency []time.Duration // queue to staged, for a histogram; bounded
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	MigratedBytes int64
	RecallQueue   int64 // requests not finished
	RecalledFiles int64
	RecalledBytes int64
	// RecallLatencies are the last (up to 1,000) times from request to
	// staged.
	RecallLatencies []time.Duration
}

func (s *engineStats) addMigrated(n int64) {
	s.mu.Lock()
	s.migratedBytes += n
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

func (s *engineStats) addRecalled(n int64, latency, _ time.Duration) {
	s.mu.Lock()
	s.recalledBytes += n
	s.recalledFiles++
	if len(s.recallLatency) >= 1000 {
		s.recallLatency = s.recallLatency[1:]
	}
	s.recallLatency = append(s.recallLatency, latency)
	s.mu.Unlock()
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		MigratedBytes:   s.migratedBytes,
		RecallQueue:     s.recallQueued - s.recallDone,
		RecalledFiles:   s.recalledFiles,
		RecalledBytes:   s.recalledBytes,
		RecallLatencies: append([]time.Duration(nil), s.recallLatency...),
	}
}
