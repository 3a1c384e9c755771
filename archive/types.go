package archive

import "github.com/tapefs/tapefs/catalog"

// FileState is what the mount shows in user.tapefs.state of a file.
type FileState string

const (
	Online  FileState = "online"  // whole object in the cache
	Offline FileState = "offline" // on tape only
	Staging FileState = "staging" // a recall is filling it
)

// EntryState is the state of an entry in put/.
type EntryState string

const (
	EntryPending  EntryState = "pending"
	EntrySealing  EntryState = "sealing"
	EntryRejected EntryState = "rejected"
)

// Status is a batch and its progress.
type Status struct {
	catalog.Batch
	Progress float64 `json:"progress"`         // bytes on tape / bytes, 0..1 (1 for an empty batch on tape); SEALING: Hashed / bytes
	Hashed   int64   `json:"hashed,omitempty"` // SEALING: bytes checksummed so far
}
