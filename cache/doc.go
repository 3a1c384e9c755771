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
//
// Eviction takes least-recently-used objects that are synced, unpinned and
// not open, and never anything unsynced. The cache does not know the catalog:
// the archive tells it which objects are synced and checks it against the
// catalog on open.
package cache
