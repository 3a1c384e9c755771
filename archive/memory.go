package archive

import "runtime/debug"

// bigStep is the number of files from which sealing or migrating a batch
// gives its memory back to the system when it ends.
const bigStep = 10_000

// returnMemory hands the heap that a step over files files used back to
// the system at once. Sealing and migrating hold a record per file while
// they run (a migration of 100,000 small files peaks at a few hundred MB);
// Go's runtime returns freed pages only gradually, so without this the
// daemon's resident size would stay near that peak for minutes after the
// work is done. Costs one garbage collection, only after large steps.
func returnMemory(files int) {
	if files >= bigStep {
		debug.FreeOSMemory()
	}
}
