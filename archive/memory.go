package archive

import (
	"runtime/debug"
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

// memoryLoop releases the catalog's mapped pages every releaseMappedEvery.
func (e *Engine) memoryLoop() {
	t := time.NewTicker(releaseMappedEvery)
	defer t.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
			e.releaseMapped()
		}
	}
}
