// Package catalog owns the truth of the archive: workspaces, batches, files,
// cartridges, jobs and the event log, kept in one transactional key-value
// store (bbolt on disk, or memory for tests).
//
// Every state change is one transaction, committed before the side effect it
// announces is relied on, so a restarted daemon finds the truth. The logic
// sits on a small KV interface (get, put, delete, prefix scan, transaction)
// so another engine can stand under it without touching the logic.
//
// The key schema is written down in one place, keys.go. Engines: bbolt
// (OpenBoltEngine), which memory-maps the file and loads nothing at open,
// and memory (NewMemoryEngine) for fast tests; one test suite runs on both.
//
// catalog does no file I/O besides its database and knows nothing of tape
// drives, caches or FUSE.
package catalog
