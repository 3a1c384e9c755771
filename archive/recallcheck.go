package archive

import (
	"fmt"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
)

// The md5 of a recall checked by its CRC32C. A recall releases the last
// bytes of a file to its readers once the bytes that came off tape match
// the CRC32C recorded with the md5 at sealing (stage); the md5 is then
// computed from the object read back, by HashWorkers goroutines (one
// core's md5 is slower than two drives) that take the recalls in the
// order they were verified, and only an object whose md5 matches is
// committed to the cache. So:
//
//   - a reader waits for the tape, the disk and a CRC32C (memory speed),
//     not for md5, which on one core runs slower than a copy from disk to
//     disk;
//   - every object committed to the cache has had its md5 checked; one
//     verified but not yet checked stays partial, and a crash deletes it
//     (the next read recalls the file again);
//   - bytes that match their CRC32C and not their md5 (damage that the
//     CRC32C misses, one chance in four billion, or a catalog that
//     disagrees with itself) are an md5-mismatch event and a dropped
//     object, and the file's CRC32C is no longer trusted: its next recalls
//     are checked by md5 before any reader gets the last bytes.

// md5QueueLen is how many verified recalls may wait for their md5 check.
// A recall that would pass it waits (the md5 then sets the pace of the
// recalls, as when it was computed in line), which happens only when the
// CPU cannot keep up with the drive at all.
const md5QueueLen = 64

// md5Check is a verified recall waiting for its md5 check.
type md5Check struct {
	p *cache.Partial
	f catalog.File
	c catalog.Copy
}

// checkMD5Later queues a recall verified by its CRC32C for md5Loop.
func (e *Engine) checkMD5Later(p *cache.Partial, f catalog.File, c catalog.Copy) {
	select {
	case e.md5Q <- md5Check{p: p, f: f, c: c}:
	case <-e.ctx.Done():
		// Closing: the object stays partial and goes with the cache.
	}
}

// md5Loop checks the md5 of recalls verified by their CRC32C, in the
// order they come.
func (e *Engine) md5Loop() {
	for {
		select {
		case <-e.ctx.Done():
			return
		case j := <-e.md5Q:
			e.checkRecalledMD5(j)
		}
	}
}

// checkRecalledMD5 hashes a verified recall read back from the cache and
// commits it, or drops it if its md5 is not the file's.
func (e *Engine) checkRecalledMD5(j md5Check) {
	sum, err := hashFile(j.p, j.f.Size, nil)
	if err != nil {
		// Aborted meanwhile (eviction of a partial cannot happen; a
		// closing cache can), or the disk failed: not committed, so the
		// next read recalls the file again.
		j.p.Abort(fmt.Errorf("recall %s: read back for its md5: %w", j.f.Path, err))
		return
	}
	if sum == j.f.MD5 {
		e.commitLater(j.p, j.f, j.c)
		return
	}
	err = e.recordMismatch(j.f, j.c, fmt.Sprintf("md5 mismatch for %s (batch %d) from %s file %d after its CRC32C %s matched: tape gave %s, sealed %s; its CRC32C is no longer trusted",
		j.f.Path, j.f.Batch, j.c.VOLSER, j.c.TapeFile, j.f.CRC32C, sum, j.f.MD5))
	e.log.Error().Err(err).Uint64("batch", j.f.Batch).Str("volser", j.c.VOLSER).Str("path", j.f.Path).
		Msg("a recalled file matched its CRC32C and not its md5: dropped from the cache")
	// The CRC32C goes before the object: a reader that asks again once
	// the object is gone gets a recall checked by md5.
	if uerr := e.cat.Update(func(tx *catalog.Tx) error {
		f, err := tx.File(j.f.ID)
		if err != nil {
			return err
		}
		if f.CRC32C != j.f.CRC32C {
			return nil
		}
		f.CRC32C = ""
		return tx.PutFile(f)
	}); uerr != nil {
		e.log.Error().Err(uerr).Uint64("batch", j.f.Batch).Str("path", j.f.Path).Msg("the CRC32C of a file that failed its md5 could not be cleared")
	}
	j.p.Abort(err)
}
