package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// The wire format of the control API. These types belong to the API: the
// engine's records (and the catalog's behind them) may change without
// changing what a client of another version reads.

// State is the life-cycle state of a batch.
type State string

// Batch states.
const (
	Caching      State = "CACHING"
	Cached       State = "CACHED"
	Syncing      State = "SYNCING"
	CachedSynced State = "CACHED_SYNCED"
	Synced       State = "SYNCED"
	Failed       State = "FAILED"
	Deleted      State = "DELETED"
)

// Live reports whether a batch in this state is part of the holdings.
func (s State) Live() bool { return s != Deleted && s != "" }

// OnTape reports whether every copy the batch needs is on tape.
func (s State) OnTape() bool { return s == CachedSynced || s == Synced }

// Workspace is a tenant of the archive.
type Workspace struct {
	Name    string    `json:"name"`
	Quota   int64     `json:"quota"`   // bytes; 0 = unlimited
	Manager uint32    `json:"manager"` // uid that may put, rm, undelete
	Group   uint32    `json:"group"`   // gid whose members may list and get
	Used    int64     `json:"used"`    // bytes of live and soft-deleted batches
	Created time.Time `json:"created"`
	// Copies is the copies policy in force; CopiesMissing counts batches
	// on tape still short of it (their copies are being written).
	Copies        int `json:"copies"`
	CopiesMissing int `json:"copies_missing,omitempty"`
}

// Batch is a batch and its progress.
type Batch struct {
	ID         uint64    `json:"id"`
	Workspace  string    `json:"workspace"`
	Tag        string    `json:"tag,omitempty"`
	Entry      Name      `json:"entry"`
	Owner      uint32    `json:"owner"`
	State      State     `json:"state"`
	Created    time.Time `json:"created"`
	Sealed     time.Time `json:"sealed,omitzero"`
	Synced     time.Time `json:"synced,omitzero"`
	Deleted    time.Time `json:"deleted,omitzero"`
	PurgeAfter time.Time `json:"purge_after,omitzero"` // a deleted batch is restorable until then
	Prior      State     `json:"prior,omitempty"`
	Files      int64     `json:"files"`
	Bytes      int64     `json:"bytes"`
	OnTape     int64     `json:"on_tape"`
	Reason     string    `json:"reason,omitempty"`
	Attempts   int       `json:"attempts,omitempty"`
	Progress   float64   `json:"progress"` // bytes on tape (every copy, or being written now) / (bytes × copies), 0..1
	// Copies is how many tape copies each file gets; CopiesMissing is set
	// while some of them are being written after the batch reached tape.
	Copies        int  `json:"copies"`
	CopiesMissing bool `json:"copies_missing,omitempty"`
	// Migration says, while the batch is not on tape, what it waits for
	// and how fast it is being written.
	Migration *Migration `json:"migration,omitempty"`
	// Removing is "removal in progress (N entries hidden)" while an rm
	// inside the batch hid entries; they come back at RemovalUndo unless
	// the batch directory is removed first.
	Removing    string    `json:"removing,omitempty"`
	Removal     *Removal  `json:"removal,omitempty"`
	RemovalUndo time.Time `json:"removal_undo,omitzero"`
	// Recall: its files queued for recall, with estimates; absent when none.
	Recall *BatchRecall `json:"recall,omitempty"`
	// Kinds counts the entries apart (files above counts every entry);
	// absent for a batch registered before tapefs counted them.
	Kinds *Kinds `json:"kinds,omitempty"`
}

// Kinds is how many of a batch's entries are regular files, directories
// and symbolic links.
type Kinds struct {
	Files    int64 `json:"regular_files"`
	Dirs     int64 `json:"dirs"`
	Symlinks int64 `json:"symlinks"`
}

// Migration is how far a batch that is not on tape yet is on its way.
type Migration struct {
	// Phase: queued (for its workspace's flush), retry (after a failed
	// write), drive (waiting for a drive), behind (the drive writes other
	// batches first), writing.
	Phase    string    `json:"phase"`
	Note     string    `json:"note"`               // the phase in words
	StartsAt time.Time `json:"starts_at,omitzero"` // queued, retry: when writing should start
	Ahead    int64     `json:"ahead,omitempty"`    // bytes to be written before this batch's
	Drive    int       `json:"drive"`              // -1: none yet
	VOLSER   string    `json:"volser,omitempty"`   // the cartridge being written
	Written  int64     `json:"written"`            // bytes on tape or streamed to the drive
	Files    int64     `json:"files_written"`      // regular files (and hard links) written by this flush, every copy counted
	FilesAll int64     `json:"files_to_write"`     // regular files (and hard links) this flush writes, every copy counted
	Rate     float64   `json:"rate"`               // bytes/s over the last seconds
	ETA      time.Time `json:"eta,omitzero"`       // when the last byte should be written
}

// PutEntry is an entry of a workspace's put/ directory that is not a
// batch: pending (being written or settling), sealing, or refused —
// rejected (quota, file too big, unsupported file type) or write-failed —
// and then staying in put/ until someone acts.
type PutEntry struct {
	Workspace string    `json:"workspace"`
	Name      Name      `json:"name"`
	State     string    `json:"state"`            // pending, sealing, rejected, write-failed
	Reason    string    `json:"reason,omitempty"` // why it was refused
	Since     time.Time `json:"since,omitzero"`   // refused since
	Bytes     int64     `json:"bytes,omitempty"`  // refused: bytes of its regular files
	Hint      string    `json:"hint,omitempty"`   // refused: what to do
}

// Refused reports whether the entry waits for a person.
func (p PutEntry) Refused() bool { return p.State == "rejected" || p.State == "write-failed" }

// Removal is a removal in progress inside a live batch.
type Removal struct {
	Hidden  int64     `json:"hidden"`  // entries hidden
	Started time.Time `json:"started"` // first removal
	Last    time.Time `json:"last"`    // latest removal; the grace period runs from here
}

// FileType is the kind of a file of a batch: 'f', 'd' or 'l'.
type FileType byte

// File types.
const (
	TypeFile    FileType = 'f'
	TypeDir     FileType = 'd'
	TypeSymlink FileType = 'l'
)

// String is the type as a word: file, dir or symlink.
func (t FileType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	case TypeSymlink:
		return "symlink"
	}
	return fmt.Sprintf("type-%d", byte(t))
}

// MarshalJSON writes the type as a word: people and jq read "file", not
// the byte 102.
func (t FileType) MarshalJSON() ([]byte, error) { return json.Marshal(t.String()) }

// UnmarshalJSON reads a word, or the number older versions wrote.
func (t *FileType) UnmarshalJSON(data []byte) error {
	var n byte
	if json.Unmarshal(data, &n) == nil {
		*t = FileType(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("file type: %s is neither a word nor a number", data)
	}
	for _, c := range []FileType{TypeFile, TypeDir, TypeSymlink} {
		if c.String() == s {
			*t = c
			return nil
		}
	}
	return fmt.Errorf("file type %q: want file, dir or symlink", s)
}

// Copy locates one tape copy of a file.
type Copy struct {
	VOLSER   string `json:"volser"`
	TapeFile int    `json:"tape_file"`
	Offset   int64  `json:"offset"`
	Length   int64  `json:"length"`
}

// Event is one entry of the event log.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Workspace string    `json:"workspace,omitempty"`
	Batch     uint64    `json:"batch,omitempty"`
	VOLSER    string    `json:"volser,omitempty"`
	Kind      string    `json:"kind"`
	State     State     `json:"state,omitempty"`
	Message   string    `json:"message"`
}

// Drive is one tape drive.
type Drive struct {
	Index    int
	State    string
	VOLSER   string
	InUse    bool
	Counters Counters
}

// Cartridge is one cartridge of the library.
type Cartridge struct {
	VOLSER    string
	Capacity  int64
	Used      int64
	TapeFiles int
	State     string // root's state (read-only, disabled, lost) when set, else the library's (scratch, filling, full)
	Pool      string `json:",omitempty"` // "": in no pool
	Drive     int    // -1: in its slot
	// LastVerified is when every copy on the cartridge was last read back
	// (nil: never); VerifyDamaged how many of them were bad then.
	LastVerified  *time.Time `json:",omitempty"`
	VerifyDamaged int        `json:",omitempty"`
	// Dead is the bytes no copy refers to any more (purged batches,
	// replaced copies): what a repack gets back. Repacking is set while a
	// repack of the cartridge is queued or running; Generation counts the
	// labels the cartridge had (one more after each repack).
	Dead       int64 `json:",omitempty"`
	Repacking  bool  `json:",omitempty"`
	Generation int   `json:",omitempty"`
	// RepackProgress is the first tape file a running repack has not
	// copied yet; RepackWaits why it cannot finish yet ("": it is not
	// held up).
	RepackProgress int    `json:",omitempty"`
	RepackWaits    string `json:",omitempty"`
}

// RepackRequest asks for the repack of a cartridge.
type RepackRequest struct {
	VOLSER string `json:"volser"`
}

// Repack is a repack queued or running.
type Repack struct {
	VOLSER   string    `json:"volser"`
	Job      uint64    `json:"job"`
	Queued   time.Time `json:"queued"`
	Progress int       `json:"progress"` // first tape file not yet copied
}

// Counters accumulate what a drive (or the library) has done.
type Counters struct {
	Mounts       int64
	Unmounts     int64
	Locates      int64
	BytesRead    int64
	BytesWritten int64
	Filemarks    int64
	SimSeconds   float64
}

// Access is what a caller may do with a batch.
type Access struct {
	See    bool `json:"see"`    // list the batch and its files
	Read   bool `json:"read"`   // read the bytes of the file asked about
	Manage bool `json:"manage"` // put, seal and evict in its workspace
	Remove bool `json:"remove"` // rm and undelete the batch
}

// WorkspaceRequest creates a workspace.
type WorkspaceRequest struct {
	Name    string `json:"name"`
	Quota   int64  `json:"quota"`
	Manager uint32 `json:"manager"`
	Group   uint32 `json:"group"`
}

// CopiesRequest sets a workspace's copies policy (0: the daemon's default).
type CopiesRequest struct {
	Copies int `json:"copies"`
}

// CartridgeRequest changes a cartridge (root): nil leaves a field as it is.
type CartridgeRequest struct {
	State *string `json:"state,omitempty"` // read-only, disabled, lost, or ok (the library's own state)
	Pool  *string `json:"pool,omitempty"`
}

// CartridgeResponse is a cartridge after a change.
type CartridgeResponse struct {
	VOLSER string `json:"volser"`
	Pool   string `json:"pool"`
	State  string `json:"state"` // root's state, "" for none
	// Batches is how many batches get the copies the cartridge held
	// re-created (it was marked lost or disabled).
	Batches int `json:"batches"`
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
	LargestPath Name  `json:"largest_path,omitempty"`
	Largest     int64 `json:"largest,omitempty"`
}

// RemoveResponse says until when a removed batch can be undeleted.
type RemoveResponse struct {
	Batch      Batch     `json:"batch"`
	PurgeAfter time.Time `json:"purge_after"`
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
	ID     uint64   `json:"id"`
	Batch  uint64   `json:"batch"`
	Parent uint64   `json:"parent"`
	Name   string   `json:"name"`
	Path   string   `json:"path"` // slash-separated path inside the batch
	Type   FileType `json:"type"`
	Mode   uint32   `json:"mode"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	// Filled by the command line for people: the mode as ls -l writes it
	// (rwxr-xr-x), and the owner's user and group names.
	ModeText  string    `json:"mode_text,omitempty"`
	User      string    `json:"user,omitempty"`
	GroupName string    `json:"group,omitempty"`
	Mtime     time.Time `json:"mtime"`
	Size      int64     `json:"size"`
	MD5       string    `json:"md5,omitempty"`
	CRC32C    string    `json:"crc32c,omitempty"` // of the same bytes: what a recall checks
	Target    string    `json:"target,omitempty"`
	Link      uint64    `json:"link,omitempty"` // data owner of a hard link
	Nlink     uint32    `json:"nlink,omitempty"`
	Copies    []Copy    `json:"copies,omitempty"`
	// Removed: hidden from the batch tree by rm inside the batch.
	Removed bool `json:"removed,omitempty"`
	// State of a regular file's bytes: online, offline or staging.
	State string `json:"state"`
	// Recall: its place in the recall queue and the estimated seconds
	// until its bytes are in the cache; absent unless a recall was asked.
	Recall *FileRecall `json:"recall,omitempty"`
}

// FileRecall is a file's queued recall.
type FileRecall struct {
	Position int `json:"position"` // in the order the queued recalls are expected to finish, from 1
	Of       int `json:"of"`       // recalls queued
	// ETASeconds is the estimated time until the bytes are in the cache
	// (from the queue and the library's timing model); absent when Held.
	ETASeconds *float64 `json:"eta_seconds,omitempty"`
	// Held: the workspace has its cap of recalled bytes nobody read yet
	// (--recall-workspace-bytes); it starts when readers catch up.
	Held bool `json:"held,omitempty"`
}

// BatchRecall is a batch's files queued for recall.
type BatchRecall struct {
	Files        int     `json:"files"`
	Bytes        int64   `json:"bytes"`
	Held         int     `json:"held,omitempty"`
	FirstSeconds float64 `json:"first_seconds"` // until the first of them is expected in the cache
	ETASeconds   float64 `json:"eta_seconds"`   // until the last (held ones not counted)
}

// LibraryStatus is the library as the dashboard and `library status` show it.
type LibraryStatus struct {
	Drives     []Drive     `json:"drives"`
	Cartridges []Cartridge `json:"cartridges"`
	Counters   Counters    `json:"counters"`
	Hosts      []Host      `json:"hosts,omitempty"`
}

// Host is one tapefs daemon sharing the catalog.
type Host struct {
	ID             string      `json:"id"`
	Self           bool        `json:"self,omitempty"` // the daemon answering
	State          string      `json:"state"`          // up, stopped, lapsed
	Heartbeat      time.Time   `json:"heartbeat"`
	AgeSeconds     float64     `json:"age_seconds"` // of the heartbeat, by the catalog's clock
	Drives         []HostDrive `json:"drives,omitempty"`
	Waiting        int         `json:"waiting"` // batches not yet on tape with data only in its cache
	CacheReachable bool        `json:"cache_reachable"`
	// Listening: the host hears of the other hosts' changes at once
	// (PostgreSQL LISTEN up); false while it polls instead.
	Listening bool     `json:"listening"`
	Roles     []string `json:"roles,omitempty"` // once-per-archive loops it runs: snapshot, journal, purge, …
	Note      string   `json:"note,omitempty"`
}

// HostDrive is a drive of a host as its heartbeat reported it.
type HostDrive struct {
	Index  int    `json:"index"`
	State  string `json:"state"`
	VOLSER string `json:"volser,omitempty"`
}

// ErrorResponse is the body of every error: the message, and the kind of
// errkind.Table that decided its status (and the command line's exit).
type ErrorResponse struct {
	Error string `json:"error"`
	Kind  string `json:"kind,omitempty"`
}
