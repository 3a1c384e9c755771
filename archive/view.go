package archive

import (
	"fmt"
	"time"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// The records the engine's Surface returns. They are the engine's own
// views, copied out of the catalog, so that the faces above (fs, api, web)
// depend on archive alone and the catalog's records can change (another
// catalog engine, several hosts) without touching them.

// BatchState is the life-cycle state of a batch.
type BatchState string

// Batch states (DESIGN.md §2).
const (
	StateCaching      BatchState = "CACHING"
	StateSealing      BatchState = "SEALING"
	StateCached       BatchState = "CACHED"
	StateSyncing      BatchState = "SYNCING"
	StateCachedSynced BatchState = "CACHED_SYNCED"
	StateSynced       BatchState = "SYNCED"
	StateFailed       BatchState = "FAILED"
	StateDeleted      BatchState = "DELETED"
)

// AllStates lists the batch states in life-cycle order.
var AllStates = []BatchState{StateCaching, StateSealing, StateCached, StateSyncing, StateCachedSynced, StateSynced, StateFailed, StateDeleted}

// LiveStates are the states of batches that are part of the holdings.
var LiveStates = AllStates[:6]

// Live reports whether a batch in this state is part of the holdings.
func (s BatchState) Live() bool { return catalog.State(s).Live() }

// OnTape reports whether every copy a batch needs is on tape.
func (s BatchState) OnTape() bool { return catalog.State(s).OnTape() }

// Workspace is a tenant of the archive.
type Workspace struct {
	Name    string
	Quota   int64 // bytes; 0 = unlimited
	Manager uint32
	Group   uint32
	Used    int64 // bytes of live and soft-deleted batches
	Created time.Time
	// Copies is the copies policy in force (the workspace's, else the
	// daemon's default); CopiesMissing counts its batches on tape that
	// have fewer copies than that while their copy jobs run.
	Copies        int
	CopiesMissing int
}

// Batch is a batch and its progress.
type Batch struct {
	ID         uint64
	Workspace  string
	Tag        string
	Entry      string
	Owner      uint32
	State      BatchState
	Created    time.Time
	Sealed     time.Time
	Synced     time.Time
	Deleted    time.Time
	PurgeAfter time.Time // a deleted batch is restorable until then
	Prior      BatchState
	Files      int64 // entries of every type
	// Dirs and Symlinks among Files; Kinds says they were counted (a
	// batch registered by an older tapefs has not).
	Dirs, Symlinks int64
	Kinds          bool
	Bytes          int64
	OnTape         int64
	Reason         string
	Attempts       int
	Progress       float64 // bytes on tape (every copy) / (bytes × copies), 0..1; SEALING: Hashed / bytes
	Hashed         int64   // SEALING: bytes checksummed so far
	// Copies is how many tape copies of each file the batch is written
	// with; CopiesMissing is set while some are being (re-)created.
	Copies        int
	CopiesMissing bool
	// Migration is, for a batch not on tape yet, what it waits for and
	// how the writing goes (live, between the catalog's commits); nil
	// otherwise. Progress counts its Written bytes.
	Migration *Migration
	// Removing is "removal in progress (N entries hidden)" while entries
	// of a live batch are hidden by rm inside it (remove.go); Removal is
	// that record, RemovalUndo when they come back unless the batch
	// directory is removed first.
	Removing    string
	Removal     Removal
	RemovalUndo time.Time
	// Recall is its files queued for recall and when they are expected
	// (eta.go); nil when none is.
	Recall *BatchRecall
}

// Removal is a removal in progress inside a live batch.
type Removal struct {
	Hidden  int64     // entries hidden
	Started time.Time // first removal
	Last    time.Time // latest removal; the grace period runs from here
}

// FileType is the kind of an entry of a batch tree.
type FileType byte

// File types.
const (
	TypeFile    FileType = FileType(catalog.TypeFile)
	TypeDir     FileType = FileType(catalog.TypeDir)
	TypeSymlink FileType = FileType(catalog.TypeSymlink)
)

// Copy locates one tape copy of a file.
type Copy struct {
	VOLSER   string
	TapeFile int
	Offset   int64
	Length   int64
}

// Name is an entry of a batch tree as a listing of names shows it.
type Name struct {
	Name    string
	ID      uint64
	DataID  uint64 // as File.DataID: the inode the entry shows
	Type    FileType
	Removed bool // as File.Removed
}

// File is one entry of a batch tree.
type File struct {
	ID     uint64
	Batch  uint64
	Parent uint64 // 0: the batch's top level
	Name   string
	Path   string
	Type   FileType
	Mode   uint32 // permission bits
	UID    uint32
	GID    uint32
	Mtime  time.Time
	Size   int64
	MD5    string
	CRC32C string // of the same bytes, what recalls check ("" if sealed before tapefs recorded one)
	Target string
	Link   uint64 // data owner of a hard link; 0 for the owner
	Nlink  uint32
	Copies []Copy
	// Removed: hidden from its batch tree by rm inside the batch (a
	// listing skips it; undelete brings it back).
	Removed bool
	// State of a regular file's bytes: online, offline, staging.
	State FileState
	// Recall is its place in the recall queue and when its bytes are
	// expected (eta.go); nil unless a recall was asked for.
	Recall *FileRecall
}

// DataID is the ID whose object and tape copies hold this file's bytes.
func (f *File) DataID() uint64 {
	if f.Link != 0 {
		return f.Link
	}
	return f.ID
}

// Event is one entry of the event log.
type Event struct {
	Seq       uint64
	Time      time.Time
	Workspace string
	Batch     uint64
	VOLSER    string
	Kind      string // one of the Ev* constants
	State     BatchState
	Message   string
}

// The library and cache as the engine reports them. These are the tape
// and cache packages' own report types: plain values with no behaviour.
type (
	DriveInfo      = tape.DriveInfo
	CartridgeInfo  = tape.CartridgeInfo
	TapeCounters   = tape.Counters
	DriveState     = tape.DriveState
	CartridgeState = tape.CartridgeState
	CacheStats     = cache.Stats
)

// Drive and cartridge states.
const (
	DriveEmpty     = tape.DriveEmpty
	DriveMounting  = tape.DriveMounting
	DriveIdle      = tape.DriveIdle
	DriveReading   = tape.DriveReading
	DriveWriting   = tape.DriveWriting
	DriveLocating  = tape.DriveLocating
	DriveUnloading = tape.DriveUnloading

	CartridgeScratch = tape.CartridgeScratch
	CartridgeFilling = tape.CartridgeFilling
	CartridgeFull    = tape.CartridgeFull
	CartridgeError   = tape.CartridgeError
)

// Library is the library as the page and `library status` show it.
type Library struct {
	Drives     []DriveInfo
	Cartridges []CartridgeInfo
	Counters   TapeCounters
	// Verified is when each cartridge was last read back whole (absent:
	// never); VerifyFailures counts the bad tape copies found since start.
	Verified       map[string]time.Time
	VerifyDamaged  map[string]int // bad copies found by that read-back
	VerifyFailures int64
	// Dead is the bytes on each cartridge no copy refers to any more
	// (absent: none); Repacking the cartridges with a repack queued.
	Dead      map[string]int64
	Repacking map[string]RepackStatus
	// Admin is what the catalog adds to the library's view of a cartridge:
	// its pool and root's state (absent: in no pool, no override).
	Admin map[string]Cartridge
	Hosts []HostView // the hosts sharing the catalog (hosts.go); nil with one host
}

// Cartridge is root's part of a cartridge: its pool and the state root
// set (read-only, disabled, lost; "": none, the library's state holds).
type Cartridge struct {
	VOLSER string
	Pool   string
	Admin  string
}

func workspaceView(w catalog.Workspace) Workspace {
	return Workspace{Name: w.Name, Quota: w.Quota, Manager: w.Manager, Group: w.Group, Used: w.Used, Created: w.Created}
}

func (e *Engine) batchView(b catalog.Batch) Batch { return e.batchViewIn(nil, b) }

// batchViewIn is batchView from inside the catalog transaction tx (nil:
// none is open): the migration queue is read through tx, never in a
// transaction of its own, which would hold a second pool connection for
// every lookup of a batch directory (catalog/nesting.go).
func (e *Engine) batchViewIn(tx *catalog.Tx, b catalog.Batch) Batch {
	s := e.statusOf(b)
	v := Batch{ID: b.ID, Workspace: b.Workspace, Tag: b.Tag, Entry: b.Entry, Owner: b.Owner, State: BatchState(b.State),
		Created: b.Created, Sealed: b.Sealed, Synced: b.Synced, Deleted: b.Deleted, Prior: BatchState(b.Prior),
		Files: b.Files, Dirs: b.Dirs, Symlinks: b.Symlinks, Kinds: b.Kinds, Bytes: b.Bytes, OnTape: b.OnTape, Reason: b.Reason, Attempts: b.Attempts, Progress: s.Progress, Hashed: s.Hashed,
		Copies: b.Want()}
	if m := e.migrationOf(tx, b); m != nil {
		v.Migration = m
		if need := b.Bytes * int64(b.Want()); need > 0 && m.Written > b.OnTape {
			v.Progress = min(float64(m.Written)/float64(need), 1)
		}
	}
	if b.State == catalog.Deleted {
		v.PurgeAfter = e.PurgeTime(b)
	}
	if b.State.Live() && b.Removal.Pending() {
		v.Removing = fmt.Sprintf("removal in progress (%s hidden)", entries(b.Removal.Hidden))
		v.Removal = Removal{Hidden: b.Removal.Hidden, Started: b.Removal.Started, Last: b.Removal.Last}
		v.RemovalUndo = b.Removal.Last.Add(e.cfg.RemoveGrace)
	}
	if br, ok := e.batchRecall(b.ID); ok {
		v.Recall = &br
	}
	return v
}

func (e *Engine) fileView(f *catalog.File) File {
	v := File{ID: f.ID, Batch: f.Batch, Parent: f.Parent, Name: f.Name, Path: f.Path, Type: FileType(f.Type),
		Mode: f.Mode, UID: f.UID, GID: f.GID, Mtime: f.Mtime, Size: f.Size, MD5: f.MD5, CRC32C: f.CRC32C, Target: f.Target,
		Link: f.Link, Nlink: f.Nlink, Removed: f.Removed}
	for _, c := range f.Copies {
		v.Copies = append(v.Copies, Copy{VOLSER: c.VOLSER, TapeFile: c.TapeFile, Offset: c.Offset, Length: c.Length})
	}
	if f.Type == catalog.TypeFile {
		v.State = e.FileState(f)
		if v.State == Staging {
			if fr, ok := e.fileRecall(f.DataID()); ok {
				v.Recall = &fr
			}
		}
	}
	return v
}

func eventView(ev catalog.Event) Event {
	return Event{Seq: ev.Seq, Time: ev.Time, Workspace: ev.Workspace, Batch: ev.Batch, VOLSER: ev.VOLSER,
		Kind: ev.Kind, State: BatchState(ev.State), Message: ev.Message}
}

func catalogStates(st []BatchState) []catalog.State {
	out := make([]catalog.State, len(st))
	for i, s := range st {
		out[i] = catalog.State(s)
	}
	return out
}
