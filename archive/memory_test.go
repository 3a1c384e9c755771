package archive

import (
	"runtime"
	"runtime/debug"
	"testing"
)

var sink [][]byte

// TestHeapReleasedWhenQuiet: heap left unused after a burst of work (a
// listing's or a migration's garbage) is handed back once the daemon is
// quiet, and not while it keeps allocating.
func TestHeapReleasedWhenQuiet(t *testing.T) {
	// The heap is the process's: a collection or a release started by
	// anything else in the test binary (another test's engine) may hand
	// the burst back before it is measured. Collections are held off
	// while the burst is dropped, and the burst is made again if
	// something released it anyway.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	var h heapUse
	for attempt := 1; ; attempt++ {
		runtime.GC()
		h.read()
		// A burst: 64 MB allocated and dropped while "busy".
		for i := 0; i < 64; i++ {
			sink = append(sink, make([]byte, 1<<20))
		}
		sink = nil
		if h.releaseIfQuiet() {
			t.Fatal("released right after 64 MB were allocated: not quiet")
		}
		if h.unused() > retainedFree {
			break
		}
		if attempt == 3 {
			t.Fatalf("after dropping 64 MB: %d B unused, want more than %d (the test would prove nothing)", h.unused(), retainedFree)
		}
	}
	// Quiet since: the next tick hands the heap back.
	if !h.releaseIfQuiet() {
		t.Fatalf("not released while quiet with %d B unused", h.unused())
	}
	if h.unused() > retainedFree {
		t.Errorf("after the release %d B are still unused, want ≤ %d", h.unused(), retainedFree)
	}
	if h.releaseIfQuiet() {
		t.Error("released again with nothing unused")
	}
}
