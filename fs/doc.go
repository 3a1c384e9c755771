// Package fs owns the FUSE nodes of the tapefs mount:
//
//	MOUNT/                 rootDir: one directory per workspace
//	  <workspace>/         wsDir: put/ and one directory per live batch
//	    put/               putNode: a loopback onto the cache staging directory
//	    <id>/              batchDir: a sealed batch, read-only
//	      <entry>/...      entryNode: the batch tree, from the archive
//
// fs is thin. It reaches the archive only through its surface
// (archive.Surface, the Engine of this package): listings and attributes
// are read from it (as root: the kernel caches entries for every user and
// checks each one's permission itself from the attributes), opening a
// file's bytes and removal are asked of it as the request's caller, and
// put/ is the staging directory itself. fs holds no state the catalog or the cache does not hold, with
// one exception it cannot avoid: which put/ entry each open handle belongs
// to (openFiles), so the engine hears exactly one close per open.
//
// Cached batch files are read by the kernel itself (passthrough); put/
// files never are, so that every failed write reaches the daemon, and are
// opened direct I/O without FLUSH to keep that path cheap (putOpenFlags).
//
// fs must not decide anything about batches: sealing, removal, recall and
// who may do what (archive/access.go, which the modes of the directories
// tapefs makes up spell for the kernel) are the engine's; fs only reports what happens in put/ and forwards
// requests. Files are one per family of operations: node_*.go for the
// read-only tree, put_*.go for put/, assert.go lists what each node type
// implements.
package fs
