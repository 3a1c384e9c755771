// Package cache owns the disk tier: the staging area where put entries are
// written (put/<workspace>/...), the sealing area, and the objects that hold
// sealed and recalled file contents by file ID, with their space accounting
// and eviction.
//
// Layout under the cache directory:
//
//	put/<workspace>/<entry>...   entries being written (the put/ drop zone)
//	sealing/<token>/<entry>...   entries being sealed, until adopted
//	objects/<xx>/<id>            complete objects (xx = low byte of id, hex)
//	objects/<xx>/<id>.partial    a recall in progress
//	trash/<n>                    objects being unlinked outside the lock
//
// Eviction takes least-recently-used objects that are synced, unpinned, not
// open and not being recalled, and never anything unsynced. The cache does not
// know the catalog: the archive tells it which objects are synced (SetSynced)
// and which must stay (Pin), again after every restart, since those flags live
// in memory only.
//
// The cache does not judge contents either: the archive checks them and
// reads them for that with OpenQuiet (not a use: no LRU touch, no hold on
// eviction), and drops a copy proven wrong with RemoveDamaged, which
// leaves alone an object replaced meanwhile.
//
// A recall is written under its partial name and becomes an object by a
// commit: fdatasync, rename, directory fsync, in that order. The archive
// hands verified recalls to a committer that works in the background and
// commits the objects waiting together as one batch, with one sync per
// fan-out directory (commit.go); until then the object reads to the end but
// stays partial.
//
// The index is rebuilt from objects/ at Open; a partial object left by a crash
// is deleted, so its recall starts again. Least-recently-used order survives a
// restart only as the files' modification times, which is when each object
// was adopted or recalled.
package cache
