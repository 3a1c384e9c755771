package catalog

import "context"

// Watching a shared catalog. On bbolt the catalog belongs to one process
// (the file is locked), so the archive learns of every change from its own
// commits. On PostgreSQL other hosts commit too; the engine tells its
// watchers when any process has appended events, and the archive reads
// them (Events after its cursor: the log is gap-free in commit order, so
// a reader that re-reads after a wake misses nothing).

// Watcher is implemented by engines that other processes write as well.
type Watcher interface {
	// Watch runs until ctx is done. It calls up(nil) once it is listening
	// and up(err) when the channel is lost (it reconnects by itself, and
	// calls up(nil) again); a watcher must re-read everything it may have
	// missed after each up(nil). wake(seq) follows every commit, by any
	// process including this one, that appended events up to seq.
	Watch(ctx context.Context, up func(err error), wake func(seq uint64))
}

// Shared reports whether other processes may change the catalog behind
// this one's back (an engine that is a Watcher: PostgreSQL).
func (c *Catalog) Shared() bool {
	_, ok := c.eng.(Watcher)
	return ok
}

// Watch follows the commits of every process on a shared catalog (see
// Watcher) until ctx is done. On a catalog that is not shared it returns
// false at once: this process's own commits are all there is.
func (c *Catalog) Watch(ctx context.Context, up func(err error), wake func(seq uint64)) bool {
	w, ok := c.eng.(Watcher)
	if !ok {
		return false
	}
	w.Watch(ctx, up, wake)
	return true
}
