package archive

import (
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// Config is everything the engine needs. Zero values take the defaults of
// DefaultConfig.
type Config struct {
	Catalog *catalog.Catalog
	Cache   *cache.Cache
	Library tape.Library
	Log     zerolog.Logger
	Clock   Clock // nil: the real clock

	// Settle is how long an entry of put/ must be quiet (no open handle, no
	// change) before it is sealed; default 30 s.
	Settle time.Duration

	MaxFileSize int64         // a larger file rejects its entry; default 500 GB
	Retention   time.Duration // soft-deleted batches are purged after this; default 7 days
	// RemoveGrace is how long entries removed inside a live batch stay
	// hidden, counted from the last removal, waiting for the batch
	// directory itself to be removed; then they come back. Default 1 minute.
	RemoveGrace time.Duration

	// A migration flush of a workspace starts when its sealed, unsynced
	// batches pass any of these.
	FlushBytes int64         // default 1 GiB
	FlushFiles int           // default 10,000
	FlushAge   time.Duration // default 1 minute
	// AggregateTarget is the size at which an aggregate is closed and a new
	// tape file begun; a larger file gets a tape file of its own.
	AggregateTarget int64 // default 4 GiB

	MaxAttempts int           // migration attempts before FAILED; default 5
	Backoff     time.Duration // first retry delay, doubled each time; default 10 s

	// RecallLinger is the quiet moment the recall scheduler waits for
	// (no new request) before it mounts a cartridge, at most 10 times
	// that; how long a pass keeps its drive in case more requests for the
	// cartridge come; and the time unit of traversal detection (3 files of a
	// batch opened within 15 lingers; stopped after 15 lingers without an
	// open). Default (0) 2 s; negative: none.
	RecallLinger time.Duration
	// RecallWorkspaceDrives limits how many drives recalls of one workspace
	// may hold at once (0: no limit), so that one workspace's recall storm
	// (an indexer, a grep -r) leaves drives to the others even when they
	// ask later. Reads and staging ahead count alike.
	RecallWorkspaceDrives int
	// RecallWorkspaceBytes limits the bytes one workspace's recalls may
	// have staged into the cache that nobody has read yet (0: no limit):
	// a user.tapefs.recall of a huge batch, a get's bulk request or
	// staging ahead stop there until reads catch up. A recall a reader
	// waits for is never held back (its bytes are read as they land, and
	// holding it behind unread recalls could wait forever); a workspace
	// with nothing staged unread may always start one file, however big.
	RecallWorkspaceBytes int64
	Prefetch             bool // stage the other members of the batch in the same aggregate during a recall
	// FCFS serves recalls one by one in arrival order (for comparison in
	// benchmarks only).
	FCFS bool
	// RecallMD5 makes a recall hold a file's last bytes until its md5
	// matches, as for files sealed without a CRC32C, instead of until its
	// CRC32C matches (recallcheck.go).
	RecallMD5 bool
	// HashWorkers is the number of files hashed at once at sealing (and by
	// VerifyCache); default GOMAXPROCS.
	HashWorkers int
	// ScrubRate is how many bytes per second the background scrub re-reads
	// cached objects at, to find damaged ones; default 16 MiB/s; negative:
	// no scrub.
	ScrubRate int64
	// ScrubInterval is the least time between the starts of two scrub
	// passes over the whole cache; default 24 h. A pass that takes longer
	// is followed at once by the next.
	ScrubInterval time.Duration
	// VerifyPeriod is how often the tape scrub reads every cartridge back
	// (verifytape.go); default 180 days; negative: no tape scrub.
	VerifyPeriod time.Duration

	// Copies is the copies policy of a workspace without one of its own
	// (catalog.Workspace.Copies 0); default 1.
	Copies int
	// RepackBelow queues the repack of a cartridge whose live share of
	// written bytes falls below it (0.5: half of it is purged data); 0:
	// only by hand (Engine.Repack).
	RepackBelow float64

	// SnapshotEvery is how often the catalog is copied to SnapshotDir and
	// to tape (0: never).
	SnapshotEvery time.Duration
	SnapshotDir   string
	// HashRate limits the background hashing of sealed batches to this
	// many bytes per second (0: no limit). For tests, which need a batch
	// to stay SEALING long enough to look at it.
	HashRate int64

	// Host is this daemon's ID among the hosts sharing a catalog
	// (hosts.go); "" keeps no heartbeat. Lease is how long its heartbeat
	// lasts unrenewed (default 30 s). Shared turns on the work sharing:
	// cartridge leases, job claims and fencing; the Library must then be
	// a tape.FencedLibrary. CacheDir is where this host's cache is, for
	// another host to adopt when this one dies.
	Host     string
	Lease    time.Duration
	Shared   bool
	CacheDir string
}

// Clock is the engine's source of time, so tests can drive it.
type Clock interface{ Now() time.Time }
