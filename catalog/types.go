package catalog

import (
	"errors"
	"time"
)

// Errors callers tell apart with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrNewerSchema: the catalog was written by a newer tapefs.
	ErrNewerSchema = errors.New("catalog written by a newer tapefs")
)

// SchemaVersion is the version of the key schema and record encoding this
// code writes. A catalog with a larger version is refused; one with a
// smaller version is upgraded when opened.
//
//	1  the first
//	2  a file's md5 and copies apart from its record, and its type in its
//	   directory entry (filestore.go)
const SchemaVersion = 2

// State is the life-cycle state of a batch (DESIGN.md §2).
type State string

const (
	Caching      State = "CACHING"       // CLI put: bytes still arriving
	Sealing      State = "SEALING"       // registered and readable; checksums still being computed
	Cached       State = "CACHED"        // sealed, only in the cache
	Syncing      State = "SYNCING"       // being written to tape
	CachedSynced State = "CACHED_SYNCED" // on tape and in the cache
	Synced       State = "SYNCED"        // on tape only (evicted)
	Failed       State = "FAILED"        // see Batch.Reason; data kept
	Deleted      State = "DELETED"       // soft-deleted; see Batch.Deleted
)

// Live reports whether a batch in this state is part of the holdings.
func (s State) Live() bool { return s != Deleted && s != "" }

// OnTape reports whether every copy a batch needs is on tape.
func (s State) OnTape() bool { return s == CachedSynced || s == Synced }

// Workspace is a tenant of the archive.
type Workspace struct {
	Name    string    `json:"name"`
	Quota   int64     `json:"quota"`   // bytes; 0 = unlimited
	Manager uint32    `json:"manager"` // uid that may put, rm, undelete
	Group   uint32    `json:"group"`   // gid whose members may list and get
	Used    int64     `json:"used"`    // bytes of live and soft-deleted batches
	Created time.Time `json:"created"`
	// Copies is how many tape copies each file of the workspace gets
	// (1..MaxCopies); 0, as in records written before copies existed,
	// means the daemon's default.
	Copies int `json:"copies,omitempty"`
}

// MaxCopies is the most tape copies a workspace may ask for.
const MaxCopies = 3

// CopiesOr is the workspace's copies policy, def when it has none of its own.
func (w Workspace) CopiesOr(def int) int {
	if w.Copies > 0 {
		return w.Copies
	}
	return max(def, 1)
}

// Batch is one sealed put: a ticket with a number.
type Batch struct {
	ID        uint64    `json:"id"`
	Workspace string    `json:"workspace"`
	Tag       string    `json:"tag,omitempty"`
	Entry     string    `json:"entry"` // name of the top-level entry put ("" for a CLI put of many paths)
	Owner     uint32    `json:"owner"`
	State     State     `json:"state"`
	Created   time.Time `json:"created"`
	Sealed    time.Time `json:"sealed,omitzero"`
	Synced    time.Time `json:"synced,omitzero"`
	Deleted   time.Time `json:"deleted,omitzero"` // soft delete time
	Prior     State     `json:"prior,omitempty"`  // state before deletion (for undelete)
	Files     int64     `json:"files"`            // entries of every type
	// Dirs and Symlinks count the directories and symbolic links among
	// Files, set at registration (Kinds); a batch registered by a tapefs
	// before they were counted has Kinds false.
	Dirs      int64  `json:"dirs,omitempty"`
	Symlinks  int64  `json:"symlinks,omitempty"`
	Kinds     bool   `json:"kinds,omitempty"`
	Bytes     int64  `json:"bytes"`              // sum of regular file sizes
	OnTape    int64  `json:"on_tape"`            // bytes recorded on tape
	Reason    string `json:"reason,omitempty"`   // why FAILED
	Attempts  int    `json:"attempts,omitempty"` // migration attempts so far
	Sealing   string `json:"sealing,omitempty"`  // cache dir the entry was sealed from, until its objects are adopted
	FirstFile uint64 `json:"first_file"`         // file IDs of a batch are FirstFile … FirstFile+Files-1
	// Copies is how many tape copies of each file the batch is being (or
	// was) written with: set from its workspace's policy when it is queued
	// for migration and when that policy is raised. 0 (older records) is 1.
	Copies int `json:"copies,omitempty"`
	// Host is the host whose cache holds the batch's data until it is on
	// tape ("": the only host). Its migration waits for that host, or for
	// a host that can reach its cache once it is gone.
	Host string `json:"host,omitempty"`
	// Removal is set while entries of a live batch are hidden by rm inside
	// its tree: provisional until the batch directory itself is removed.
	Removal Removal `json:"removal,omitzero"`
}

// Want is how many tape copies each of the batch's files needs.
func (b Batch) Want() int { return max(b.Copies, 1) }

// Removal records the provisional removals inside a live batch. rm (or
// mv out, or rsync --delete) of entries in a batch tree only hides them
// (File.Removed); they take effect when the batch directory itself is
// removed (the batch is soft-deleted), and are undone when that does not
// follow within the grace period counted from Last, or by undelete. It is
// part of the batch record, so a restart finds it.
type Removal struct {
	Hidden  int64     `json:"hidden"`  // entries hidden so far
	Started time.Time `json:"started"` // first removal of this round
	Last    time.Time `json:"last"`    // latest removal; the grace period runs from here
}

// Pending reports whether entries of the batch are provisionally hidden.
func (r Removal) Pending() bool { return r.Hidden > 0 }

// FileType is the kind of a catalog file.
type FileType byte

const (
	TypeFile    FileType = 'f'
	TypeDir     FileType = 'd'
	TypeSymlink FileType = 'l'
)

// Copy locates one tape copy of a file: the member's data is Length bytes at
// byte Offset of tape file TapeFile on cartridge VOLSER.
type Copy struct {
	VOLSER   string `json:"volser"`
	TapeFile int    `json:"tape_file"`
	Offset   int64  `json:"offset"`
	Length   int64  `json:"length"`
}

// File is one entry of a batch tree. IDs are unique in the whole catalog.
type File struct {
	ID     uint64    `json:"id"`
	Batch  uint64    `json:"batch"`
	Parent uint64    `json:"parent"` // file ID of the directory; 0 for the batch's top level
	Name   string    `json:"name"`
	Path   string    `json:"path"` // slash-separated path inside the batch
	Type   FileType  `json:"type"`
	Mode   uint32    `json:"mode"` // permission bits
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	Mtime  time.Time `json:"mtime"`
	Size   int64     `json:"size"`
	MD5    string    `json:"md5,omitempty"`
	// CRC32C is the CRC32C of the same bytes (8 hex digits), computed with
	// the md5 and written on tape with it: what a recall and a tape
	// verification check (internal/checksum). Empty for files sealed
	// before tapefs recorded it.
	CRC32C string `json:"crc32c,omitempty"`
	Target string `json:"target,omitempty"` // symlink target
	// Link is the ID of the file whose data this one shares (hard link):
	// 0 for a file that owns its data. Only the owner has an object and
	// tape copies.
	Link   uint64 `json:"link,omitempty"`
	Nlink  uint32 `json:"nlink,omitempty"` // links in the batch (≥1 for regular files)
	Copies []Copy `json:"copies,omitempty"`
	// Removed hides the entry from its batch tree (rm inside a batch,
	// counted in Batch.Removal while the batch is live); the end of the
	// grace period and Undelete clear it.
	Removed bool `json:"removed,omitempty"`
}

// GoodCopies returns the copies of f on cartridges that count (bad reports
// the VOLSERs that do not: disabled or lost), in recorded order.
func (f *File) GoodCopies(bad func(volser string) bool) []Copy {
	out := make([]Copy, 0, len(f.Copies))
	for _, c := range f.Copies {
		if bad == nil || !bad(c.VOLSER) {
			out = append(out, c)
		}
	}
	return out
}

// DataID is the ID whose object and tape copies hold this file's bytes.
func (f *File) DataID() uint64 {
	if f.Link != 0 {
		return f.Link
	}
	return f.ID
}

// Cartridge states. The library computes scratch, filling and full from
// what the cartridge holds (CartridgeRecord.State); read-only, disabled and
// lost are set by root (CartridgeRecord.Admin) and win over it.
const (
	CartridgeScratch  = "scratch"   // labelled, no data
	CartridgeFilling  = "filling"   // has data, room left
	CartridgeFull     = "full"      // end of tape was reached
	CartridgeReadOnly = "read-only" // readable, never written again
	CartridgeDisabled = "disabled"  // neither read nor written; its copies are re-created elsewhere
	CartridgeLost     = "lost"      // gone; its copies are re-created elsewhere
)

// AdminState reports whether s is a state root may set (or "" to clear it).
func AdminState(s string) bool {
	return s == "" || s == CartridgeReadOnly || s == CartridgeDisabled || s == CartridgeLost
}

// CartridgeRecord mirrors a cartridge of the library in the catalog.
type CartridgeRecord struct {
	VOLSER    string `json:"volser"`
	Capacity  int64  `json:"capacity"`
	Used      int64  `json:"used"`
	State     string `json:"state"` // as the library computes it: scratch, filling, full (or error)
	TapeFiles int    `json:"tape_files"`
	// Pool groups cartridges so that the copies of a file land in
	// different pools ("" = in none). Admin is root's override of State:
	// read-only, disabled or lost ("" = none). PutCartridge keeps both:
	// the records written as tape files are committed do not know them.
	Pool  string `json:"pool,omitempty"`
	Admin string `json:"admin,omitempty"`
	// Verified is when every copy on the cartridge was last read back and
	// matched its md5 (zero: never). PutCartridge keeps it: the records
	// written as tape files are committed do not know it.
	Verified      time.Time `json:"verified,omitempty"`
	VerifyDamaged int       `json:"verify_damaged,omitempty"` // copies found bad then
	// Generation of the cartridge's label when this record was written
	// (tape.CartridgeInfo.Generation): copies recorded by a catalog that
	// knew another generation are gone (the cartridge was erased since).
	Generation int `json:"generation,omitempty"`
	// Dead is how many bytes of file data on the cartridge no copy refers
	// to any more (purged batches, copies replaced): what a repack gets
	// back. PutCartridge keeps it; an erase sets it to 0.
	Dead int64 `json:"dead,omitempty"`
}

// LiveFraction is the share of the cartridge's written bytes (label
// excluded) that still holds data someone can read: 1 for an empty one.
func (c CartridgeRecord) LiveFraction(label int64) float64 {
	written := c.Used - label
	if written <= 0 {
		return 1
	}
	return max(0, float64(written-c.Dead)/float64(written))
}

// Status is the state shown for the cartridge: root's override, else the
// library's.
func (c CartridgeRecord) Status() string {
	if c.Admin != "" {
		return c.Admin
	}
	return c.State
}

// Readable reports whether copies on the cartridge count: not disabled or lost.
func (c CartridgeRecord) Readable() bool {
	return c.Admin != CartridgeDisabled && c.Admin != CartridgeLost
}

// Writable reports whether migration may append to the cartridge as far as
// root is concerned (the library still decides whether it has room).
func (c CartridgeRecord) Writable() bool { return c.Admin == "" }

// JobKind is what a job does.
type JobKind string

const (
	JobSeal    JobKind = "seal"    // finish adopting a sealed entry's objects
	JobMigrate JobKind = "migrate" // write a batch to tape
	JobRecall  JobKind = "recall"  // stage a file from tape into the cache
	// JobCopy writes the copies a batch already on tape is missing (its
	// workspace's copies were raised, or a cartridge holding some was
	// marked lost or disabled). The batch keeps its state meanwhile.
	JobCopy JobKind = "copy"
	// JobRepack moves the live copies off cartridge Job.VOLSER and erases
	// it (archive/repack.go); Job.Progress is the first of its tape files
	// not yet copied, Job.Generation the label generation it started on.
	JobRepack JobKind = "repack"
	// JobRepair rewrites a bad copy (Job.Copy) of file Job.File elsewhere
	// from good bytes and replaces the catalog's reference to it.
	JobRepair JobKind = "repair"
)

// Job is queued work that survives a restart.
type Job struct {
	ID        uint64    `json:"id"`
	Kind      JobKind   `json:"kind"`
	Batch     uint64    `json:"batch"`
	File      uint64    `json:"file,omitempty"` // recall: the file (data owner) to stage
	Created   time.Time `json:"created"`
	NotBefore time.Time `json:"not_before,omitzero"` // retry backoff
	Attempts  int       `json:"attempts,omitempty"`
	// Repack: the cartridge, the first tape file not yet copied and the
	// label generation the repack began on.
	VOLSER     string `json:"volser,omitempty"`
	Progress   int    `json:"progress,omitempty"`
	Generation int    `json:"generation,omitempty"`
	// Repair: the bad copy.
	Copy Copy `json:"copy,omitzero"`
	// Note says why the job waits, for people (a repack whose bad copies
	// wait for their repair, a repair with no good copy to repair from);
	// "" while it is not held up.
	Note string `json:"note,omitempty"`
	// Owner is the host working on the job ("": anyone, e.g. one host);
	// Epoch grows with every claim, so a commit checks it still holds the
	// claim it worked under (Fence). A claim is renewed by its owner's
	// heartbeat (one write per host, not one per job) and lapses with it;
	// Lease is the expiry the claim was made with, for people reading the
	// job.
	Owner string    `json:"owner,omitempty"`
	Epoch uint64    `json:"epoch,omitempty"`
	Lease time.Time `json:"lease,omitzero"`
}

// Event is one entry of the append-only event log.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Workspace string    `json:"workspace,omitempty"`
	Batch     uint64    `json:"batch,omitempty"`
	VOLSER    string    `json:"volser,omitempty"`
	Kind      string    `json:"kind"` // e.g. "sealed", "state", "failed", "md5-mismatch", "deleted"
	State     State     `json:"state,omitempty"`
	Message   string    `json:"message"`
	// Origin is the Catalog.Origin of the process that recorded it: on a
	// shared catalog a process reads back the log and must tell its own
	// events, which it has acted on already, from other hosts'.
	Origin string `json:"origin,omitempty"`
}
