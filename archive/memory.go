package archive

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// bigStep is the number of files from which sealing or migrating a batch
// gives its memory back to the system when it ends.
const bigStep = 10_000

// releaseMappedEvery is how often the catalog's mapped pages are handed
// back to the kernel's page cache (catalog.ReleaseMapped).
const releaseMappedEvery = 10 * time.Second

// returnMemory hands the heap that a step over files files used back to
// the system at once. Sealing and migrating hold a record per file while
// they run (a migration of 100,000 small files peaks at a few hundred MB);
// Go's runtime returns freed pages only gradually, so without this the
// daemon's resident size would stay near that peak for minutes after the
// work is done. Costs one garbage collection, only after large steps. The
// catalog pages the step read or wrote are unmapped too.
func (e *Engine) returnMemory(files int) {
	if files >= bigStep {
		debug.FreeOSMemory()
		e.releaseMapped()
	}
}

// releaseMapped unmaps the catalog file's pages from the daemon (they
// stay in the page cache): bbolt maps the whole file, and every page a
// listing or a migration touched would otherwise count in the daemon's
// resident size, which would grow with the catalog.
func (e *Engine) releaseMapped() {
	if err := e.cat.ReleaseMapped(); err != nil {
		e.log.Warn().Err(err).Msg("the catalog's mapped pages could not be released")
	}
}

// retainedFree is how much unused heap the runtime may keep from the
// system once the daemon is quiet before memoryLoop hands it back; quiet
// is less than that allocated in one tick.
const retainedFree = 16 << 20

// memoryLoop releases the catalog's mapped pages every releaseMappedEvery,
// and, once the daemon is quiet, the heap the runtime keeps unused: Go
// collects when the heap doubles its live size and returns freed pages
// over minutes, so after a listing or a migration the daemon sat at twice
// its live heap (measured: 74–78 MB held for 32 MB live at 1,000,000
// cached objects). One collection, once per quiet spell.
func (e *Engine) memoryLoop() {
	t := time.NewTicker(releaseMappedEvery)
	defer t.Stop()
	var h heapUse
	h.read()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.releaseMapped()
			h.releaseIfQuiet()
		}
	}
}

// heapUse is what the runtime says of the heap.
type heapUse struct {
	allocs  uint64 // allocated since start
	free    uint64 // free spans not yet returned to the system
	objects uint64 // in objects, live or not yet collected
	live    uint64 // live after the last collection
}

func (h *heapUse) read() {
	s := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	h.allocs, h.free, h.objects, h.live = v(0), v(1), v(2), v(3)
}

// releaseIfQuiet reads the heap again and, when less than retainedFree
// was allocated since the last read and more than that is unused, hands
// the unused heap back to the system; it reports whether it did.
func (h *heapUse) releaseIfQuiet() bool {
	allocated := h.allocs
	h.read()
	if h.allocs-allocated >= retainedFree || h.unused() <= retainedFree {
		return false
	}
	debug.FreeOSMemory()
	h.read()
	return true
}

// unused is the heap held that holds nothing live: free spans and
// garbage not yet collected.
func (h *heapUse) unused() uint64 {
	garbage := uint64(0)
	if h.objects > h.live {
		garbage = h.objects - h.live
	}
	return h.free + garbage
}
