// Package fs owns the FUSE nodes of the tapefs mount:
//
//	MOUNT/                 rootDir: one directory per workspace
//	  <workspace>/         wsDir: put/ and one directory per live batch
//	    put/               putNode: a loopback onto the cache staging directory
//	    <id>/              batchDir: a sealed batch, read-only
//	      <entry>/...      entryNode: the batch tree, from the catalog
//
// fs is thin. Listings and attributes come from the catalog, reads and
// recalls go to the archive engine, and put/ is the staging directory
// itself. fs holds no state the catalog or the cache does not hold, with
// one exception it cannot avoid: which put/ entry each open handle belongs
// to (openFiles), so the engine hears exactly one close per open.
//
// fs must not decide anything about batches: sealing, removal and recall
// are the engine's; fs only reports what happens in put/ and forwards
// requests. Files are one per family of operations: node_*.go for the
// read-only tree, put_*.go for put/, assert.go lists what each node type
// implements.
package fs
