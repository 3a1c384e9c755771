package archive

// Lock order across packages, outermost first. A lock may be taken while
// holding only those above it in its chain; none of them is held across a
// catalog transaction except where said.
//
//	fs.openFiles.mu      -> Engine.mu          (EntryOpened/EntryClosed from the mount's handle tracker)
//	Engine.migrateMu     -> Engine.mu          (held for a whole flush, catalog transactions included)
//	Engine.mu            -> recallQueue.mu
//	recallQueue.mu       -> cartState.mu       (readCopy; a leaf, whose first use reads the catalog)
//	recallQueue.mu       -> cache.Cache.mu     (cache.Lookup while collecting requests)
//	recallQueue.mu       -> tape library mu    (Drives, Where: the recall estimate, eta.go; the library's is a leaf)
//	Reader.mu            -> cache.Cache.mu     (opening and checking the object a read waits for)
//	cache.Cache.mu       -> evictWatch.mu      (cache.OnEvict reports an eviction; nothing else above it)
//	catalog transaction  -> sealWork.mu        (a batch is marked as being adopted before its registration commits)
//	evictWatch.mu, sealWork.mu and notifier.mu are leaves: nothing is called while one is held.
//	Otherwise catalog transactions take no lock of archive, cache or fs: the
//	views they build read the recall estimate lock-free (eta.go).

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"

	"github.com/tapefs/tapefs/internal/ident"
)

// Engine is the running archive.
type Engine struct {
	cfg   Config
	cat   *catalog.Catalog
	cache *cache.Cache
	lib   tape.Library
	log   zerolog.Logger

	ctx    context.Context // cancelled by Close: workers stop at a safe point
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	entries map[entryKey]*entryActivity // put/ entries being written or sealed
	// removing maps a batch with a removal in progress to its last
	// removal, for the grace loop; the catalog's Batch.Removal is the truth.
	removing map[uint64]time.Time
	changed  chan struct{} // closed and replaced on every batch state change

	migrateWake chan struct{}
	migrateMu   sync.Mutex // held by the one flush in progress
	liveMu      sync.Mutex
	live        *flushLive // the flush in progress, for live progress (migrateprogress.go)
	recalls     *recallQueue
	stats       engineStats
	integrity   integrity     // damaged objects kept (see integrity.go)
	tapeVerify  tapeVerify    // the tape scrub's state (see verifytape.go)
	progress    progressBoard // long work a command waits for (progress.go)
	carts       cartState     // pools and root's states of cartridges (copies.go)
	copyMu      sync.Mutex    // held by the one copy job in progress
	copyWake    chan struct{}

	// repacking holds the cartridges with a repack queued or running
	// (guarded by mu): nothing new is written to them.
	repacking  map[string]bool
	repackWake chan struct{}
	repairWake chan struct{}

	changes *notifier     // changes of batches, for the mount's kernel caches
	sealer  *sealWork     // adoption and background hashing of sealed batches
	evicted *evictWatch   // objects the cache evicted by itself
	host    hostState     // heartbeat and claims (hosts.go)
	follow  *follower     // other hosts' changes on a shared catalog (follow.go)
	roles   roleState     // once-per-archive loops this host runs (roles.go)
	md5Q    chan md5Check // recalls verified by CRC32C, for their md5 (recallcheck.go)

	// commitGate, set by tests only, holds verified recalls back from the
	// cache's committer until it is closed: a slow disk, or a crash between
	// a reader getting the bytes and the commit.
	commitGate chan struct{}
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// DefaultConfig returns the defaults that New applies to zero fields.
func DefaultConfig() Config {
	return Config{
		Settle:          30 * time.Second,
		MaxFileSize:     500_000_000_000,
		Retention:       7 * 24 * time.Hour,
		RemoveGrace:     time.Minute,
		FlushBytes:      1 << 30,
		FlushFiles:      10_000,
		FlushAge:        time.Minute,
		AggregateTarget: 4 << 30,
		MaxAttempts:     5,
		Backoff:         10 * time.Second,
		RecallLinger:    2 * time.Second,
		HashWorkers:     runtime.GOMAXPROCS(0),
		ScrubRate:       16 << 20,
		ScrubInterval:   24 * time.Hour,
		VerifyPeriod:    180 * 24 * time.Hour,
		Lease:           30 * time.Second,
	}
}

func (c *Config) applyDefaults() {
	d := DefaultConfig()
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	orDefault(&c.Settle, d.Settle)
	orDefault(&c.MaxFileSize, d.MaxFileSize)
	orDefault(&c.Retention, d.Retention)
	orDefault(&c.RemoveGrace, d.RemoveGrace)
	orDefault(&c.FlushBytes, d.FlushBytes)
	orDefault(&c.FlushFiles, d.FlushFiles)
	orDefault(&c.FlushAge, d.FlushAge)
	orDefault(&c.AggregateTarget, d.AggregateTarget)
	orDefault(&c.MaxAttempts, d.MaxAttempts)
	orDefault(&c.Backoff, d.Backoff)
	// 0 is "the default" (what the --recall-linger flag documents); a
	// negative linger asks for none.
	orDefault(&c.RecallLinger, d.RecallLinger)
	c.RecallLinger = max(c.RecallLinger, 0)
	if c.HashWorkers <= 0 {
		c.HashWorkers = d.HashWorkers
	}
	c.Copies = min(max(c.Copies, 1), catalog.MaxCopies)
	orDefault(&c.ScrubRate, d.ScrubRate)
	orDefault(&c.ScrubInterval, d.ScrubInterval)
	orDefault(&c.Lease, d.Lease)
}

// orDefault sets *v to d when *v is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// New opens the engine on its catalog, cache and library and recovers what
// a previous run left: half-sealed entries, migrations and recalls in flight.
// Workers start with Start.
func New(cfg Config) (*Engine, error) {
	if cfg.Catalog == nil || cfg.Cache == nil || cfg.Library == nil {
		return nil, errors.New("archive: catalog, cache and library are required")
	}
	cfg.applyDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg:         cfg,
		cat:         cfg.Catalog,
		cache:       cfg.Cache,
		lib:         cfg.Library,
		log:         cfg.Log,
		ctx:         ctx,
		cancel:      cancel,
		entries:     map[entryKey]*entryActivity{},
		removing:    map[uint64]time.Time{},
		changed:     make(chan struct{}),
		migrateWake: make(chan struct{}, 1),
		copyWake:    make(chan struct{}, 1),
		repacking:   map[string]bool{},
		repackWake:  make(chan struct{}, 1),
		repairWake:  make(chan struct{}, 1),
		md5Q:        make(chan md5Check, md5QueueLen),
	}
	e.recalls = newRecallQueue()
	e.changes, e.sealer, e.evicted = newNotifier(), newSealWork(), newEvictWatch()
	e.follow = newFollower(cfg.Catalog)
	e.cache.OnEvict(e.objectEvicted)
	e.tapeVerify.started = e.now()
	if cfg.Shared {
		fl, ok := cfg.Library.(tape.FencedLibrary)
		if !ok {
			cancel()
			return nil, errNotFenced
		}
		e.lib = newLeasedLibrary(e, fl)
	}
	recs, err := e.readCartRecords()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("archive: cartridge records: %w", err)
	}
	e.carts.recs = recs
	if err := e.registerHost(); err != nil {
		cancel()
		return nil, fmt.Errorf("archive: %w", err)
	}
	if err := e.recover(); err != nil {
		cancel()
		return nil, fmt.Errorf("archive: recover: %w", err)
	}
	if err := e.loadRemovals(); err != nil {
		cancel()
		return nil, fmt.Errorf("archive: removals in progress: %w", err)
	}
	if err := e.loadRepacks(); err != nil {
		cancel()
		return nil, fmt.Errorf("archive: repacks in progress: %w", err)
	}
	return e, nil
}

// Start runs the background workers (settle, migration, recall, retention,
// removal grace) until Close.
func (e *Engine) Start() {
	e.spawn(e.followLoop)
	e.spawn(e.settleLoop)
	e.spawn(e.migrateLoop)
	e.spawn(e.copyLoop)
	e.spawn(e.recallLoop)
	e.spawn(e.planLoop)
	e.spawn(e.retentionLoop)
	e.spawn(e.scrubLoop)
	e.spawn(e.journalLoop)
	if e.cfg.SnapshotEvery > 0 {
		e.spawn(e.snapshotLoop)
	}
	e.spawn(e.removalLoop)
	e.spawn(e.sealLoop)
	e.spawn(e.sealTakeoverLoop)
	e.spawn(e.evictLoop)
	e.spawn(e.reconcileCachedSynced)
	e.spawn(e.heartbeatLoop)
	if e.cfg.VerifyPeriod > 0 {
		e.spawn(e.tapeScrubLoop)
	}
	e.spawn(e.repackLoop)
	e.spawn(e.repairLoop)
	e.spawn(e.memoryLoop)
	// As many md5 checkers as hashers: several drives recall at once,
	// and one core's md5 is slower than two drives.
	for range e.cfg.HashWorkers {
		e.spawn(e.md5Loop)
	}
}

func (e *Engine) spawn(fn func()) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
}

// Close stops the workers at a safe point and waits for them. Work that
// was not finished is resumed by the next New from the catalog.
func (e *Engine) Close() error {
	e.cancel()
	e.recalls.close()
	e.wg.Wait()
	e.retireHost()
	return nil
}

func (e *Engine) now() time.Time { return e.cfg.Clock.Now() }

// StagingDir is where entries of put/ for a workspace are written.
func (e *Engine) StagingDir(workspace string) string { return e.cache.StagingDir(workspace) }

// CreateWorkspace adds a workspace (its staging directory too).
func (e *Engine) CreateWorkspace(w catalog.Workspace) error {
	if err := ValidWorkspaceName(w.Name); err != nil {
		return err
	}
	if w.Created.IsZero() {
		w.Created = e.now()
	}
	err := e.cat.Update(func(tx *catalog.Tx) error {
		if _, err := tx.Workspace(w.Name); err == nil {
			return fmt.Errorf("workspace %q: %w", w.Name, catalog.ErrExists)
		}
		if err := tx.PutWorkspace(w); err != nil {
			return err
		}
		_, err := tx.AppendEvent(catalog.Event{Time: w.Created, Workspace: w.Name, Kind: EvWorkspace,
			Message: fmt.Sprintf("workspace %s created (manager %s, group %s, %s)", w.Name, ident.UserText(w.Manager), ident.GroupText(w.Group), quotaText(w.Quota))})
		return err
	})
	if err != nil {
		return err
	}
	e.cache.StagingDir(w.Name)
	e.log.Info().Str("workspace", w.Name).Uint32("manager", w.Manager).Int64("quota", w.Quota).Msg("workspace created")
	return nil
}

// ValidWorkspaceName checks a workspace name: it becomes a directory name
// in the mount and in the cache.
func ValidWorkspaceName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("workspace name %q: must be 1 to 64 characters", name)
	}
	for i, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '-' || r == '.' || (i > 0 && r >= '0' && r <= '9')
		if !ok || name == "put" || name == "." || name == ".." {
			return fmt.Errorf("workspace name %q: use letters, digits (not first), '-', '_' and '.'; not \"put\"", name)
		}
	}
	return nil
}

// notify wakes everyone waiting for a batch state change.
func (e *Engine) notify() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

func (e *Engine) changedChan() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *Engine) wakeMigration() {
	select {
	case e.migrateWake <- struct{}{}:
	default:
	}
}

// sleep waits d or until the engine closes; false when closing.
func (e *Engine) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.ctx.Done():
		return false
	}
}
