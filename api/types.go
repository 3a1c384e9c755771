package api

import (
	"time"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// WorkspaceRequest creates a workspace.
type WorkspaceRequest struct {
	Name    string `json:"name"`
	Quota   int64  `json:"quota"`
	Manager uint32 `json:"manager"`
	Group   uint32 `json:"group"`
}

// QuotaRequest sets a workspace's quota (0 = unlimited).
type QuotaRequest struct {
	Quota int64 `json:"quota"`
}

// PutRequest reserves a batch for a CLI put.
type PutRequest struct {
	Workspace string `json:"workspace"`
	Tag       string `json:"tag,omitempty"`
	Files     int64  `json:"files"` // entries the tar stream will hold
	Bytes     int64  `json:"bytes"` // regular file bytes it will hold
	// The largest file and its size: one over the daemon's maximum file
	// size refuses the put before a batch exists.
	LargestPath string `json:"largest_path,omitempty"`
	Largest     int64  `json:"largest,omitempty"`
}

// RemoveResponse says until when a removed batch can be undeleted.
type RemoveResponse struct {
	Batch      archive.Status `json:"batch"`
	PurgeAfter time.Time      `json:"purge_after"`
}

// PathsRequest asks which paths are already archived in live batches.
type PathsRequest struct {
	Workspace string `json:"workspace"`
	Paths     []Name `json:"paths"` // batch paths (no leading slash)
}

// PathsResponse lists the archived paths with the live batch holding each.
// It is a list, not an object keyed by path: a JSON key is a string and
// cannot carry a path that is not UTF-8.
type PathsResponse struct {
	Archived []ArchivedPath `json:"archived"`
}

// ArchivedPath is a path of a live batch.
type ArchivedPath struct {
	Path  Name   `json:"path"`
	Batch uint64 `json:"batch"`
}

// RecallRequest queues recalls.
type RecallRequest struct {
	Files []uint64 `json:"files,omitempty"`
	Batch uint64   `json:"batch,omitempty"`
}

// SealRequest seals an entry of put/ now: by workspace and entry, or by a
// path inside the mount.
type SealRequest struct {
	Workspace string `json:"workspace,omitempty"`
	Entry     Name   `json:"entry,omitempty"`
	Path      Name   `json:"path,omitempty"`
	Tag       string `json:"tag,omitempty"`
}

// EvictRequest drops cached objects of a batch on tape (0 = all batches).
type EvictRequest struct {
	Batch uint64 `json:"batch"`
}

// EvictResponse says how much was freed.
type EvictResponse struct {
	Freed int64 `json:"freed"`
}

// FileInfo is a file of a batch as listed.
type FileInfo struct {
	catalog.File
	State archive.FileState `json:"state"`
}

// LibraryStatus is the library as the dashboard and `library status` show it.
type LibraryStatus struct {
	Drives     []tape.DriveInfo     `json:"drives"`
	Cartridges []tape.CartridgeInfo `json:"cartridges"`
	Counters   tape.Counters        `json:"counters"`
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error string `json:"error"`
}
