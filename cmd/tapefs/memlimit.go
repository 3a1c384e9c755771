package main

import (
	"os"
	"runtime/debug"

	"github.com/rs/zerolog"
)

// defaultMemoryLimit is the daemon's soft limit on the memory the Go
// runtime holds, unless GOMEMLIMIT sets another. Go's collector lets the
// heap grow to twice its live size before collecting: a migration of
// 100,000 files (some 100 MB live for a moment) would take the daemon to
// several hundred MB, held until the runtime gives pages back. Under the
// limit the collector runs earlier instead. It is soft: a daemon whose
// live heap needs more (a batch of several hundred thousand files in one
// migration) gets it, at the price of more frequent collection (Go caps
// that at half the CPU); raise GOMEMLIMIT for such batches.
const defaultMemoryLimit = 256 << 20

// setMemoryLimit applies defaultMemoryLimit when GOMEMLIMIT is unset (the
// runtime has read GOMEMLIMIT itself when it is).
func setMemoryLimit(log zerolog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		log.Info().Int64("limit", debug.SetMemoryLimit(-1)).Msg("memory limit from GOMEMLIMIT")
		return
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
}
