package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/checksum"
	"github.com/tapefs/tapefs/internal/human"
)

// Sealing in two steps. Seal registers the batch (state SEALING) and moves
// its files into the cache by rename, and returns: the entry has left put/,
// the batch has its ID and its files can be read. The md5 of every file is
// then computed here, in the background, from the cache objects (which are
// unsynced, so never evicted); when all are recorded the batch becomes
// CACHED and is queued for migration. The seal job (catalog.JobSeal) stays
// until then, so a restart finishes the hashing.
//
// Until the objects are adopted a registered batch's files have nowhere
// to be read from: readers wait (waitAdopted) instead of failing.

// sealWork is the engine's background sealing: batches being adopted and
// batches waiting for or in hashing.
type sealWork struct {
	mu       sync.Mutex
	adopting map[uint64]bool          // registered, objects being moved into the cache
	queue    []uint64                 // batches to hash, in order
	progress map[uint64]*hashProgress // queued or hashing
	wake     chan struct{}
}

// hashProgress counts the bytes of a batch checksummed so far.
type hashProgress struct {
	done  atomic.Int64
	total int64
}

func newSealWork() *sealWork {
	return &sealWork{adopting: map[uint64]bool{}, progress: map[uint64]*hashProgress{}, wake: make(chan struct{}, 1)}
}

// beginAdopt marks a batch as being adopted, before its registration
// commits.
func (e *Engine) beginAdopt(id uint64) {
	e.sealer.mu.Lock()
	e.sealer.adopting[id] = true
	e.sealer.mu.Unlock()
}

// endAdopt unmarks it and wakes readers waiting for its objects.
func (e *Engine) endAdopt(id uint64) {
	e.sealer.mu.Lock()
	delete(e.sealer.adopting, id)
	e.sealer.mu.Unlock()
	e.notify()
}

func (e *Engine) isAdopting(id uint64) bool {
	e.sealer.mu.Lock()
	defer e.sealer.mu.Unlock()
	return e.sealer.adopting[id]
}

// waitAdopted waits, for a file that has neither a tape copy nor a cached
// object, while its batch's objects are being moved into the cache. It
// returns true when the caller should look again.
func (e *Engine) waitAdopted(ctx context.Context, f catalog.File) (bool, error) {
	waited := false
	for {
		ch := e.changedChan()
		if !e.isAdopting(f.Batch) {
			return waited, nil
		}
		if info, ok := e.cache.Lookup(f.ID); ok && !info.Partial {
			return true, nil
		}
		waited = true
		select {
		case <-ch:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
}

// queueHash queues a registered batch for checksumming.
func (e *Engine) queueHash(b catalog.Batch) {
	w := e.sealer
	w.mu.Lock()
	if w.progress[b.ID] == nil {
		w.progress[b.ID] = &hashProgress{total: b.Bytes}
		w.queue = append(w.queue, b.ID)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// hashed reports the bytes of a batch checksummed so far, and whether the
// batch is queued or being hashed.
func (e *Engine) hashed(id uint64) (int64, bool) {
	e.sealer.mu.Lock()
	p := e.sealer.progress[id]
	e.sealer.mu.Unlock()
	if p == nil {
		return 0, false
	}
	return p.done.Load(), true
}

// sealLoop hashes queued batches one at a time (the files of one batch
// HashWorkers at a time).
func (e *Engine) sealLoop() {
	w := e.sealer
	for {
		w.mu.Lock()
		var id uint64
		var p *hashProgress
		if len(w.queue) > 0 {
			id, w.queue = w.queue[0], w.queue[1:]
			p = w.progress[id]
		}
		w.mu.Unlock()
		if p == nil {
			select {
			case <-w.wake:
				continue
			case <-e.ctx.Done():
				return
			}
		}
		err := e.finishSeal(id, p)
		if e.ctx.Err() != nil {
			return // the seal job stays: the next start hashes the batch again
		}
		w.mu.Lock()
		delete(w.progress, id)
		w.mu.Unlock()
		e.notify() // Checksum waiters: the batch is no longer being hashed
		if err != nil {
			e.log.Error().Err(err).Uint64("batch", id).Msg("sealing: checksums not computed; retried at the next start")
		}
	}
}

// finishSeal computes and records the md5 of every file of a SEALING
// batch, makes its objects durable, and moves it on to CACHED with a
// migration job.
func (e *Engine) finishSeal(id uint64, p *hashProgress) error {
	var b catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(id)
		return err
	}); err != nil {
		if errors.Is(err, catalog.ErrNotFound) {
			return nil // purged
		}
		return err
	}
	var files []catalog.File
	if err := e.eachDataFile(b, func(f catalog.File) error {
		files = append(files, f)
		return nil
	}); err != nil {
		return err
	}
	n := len(files)
	defer func() { e.returnMemory(n) }()
	// A batch of a dead host whose seal this host took over is read in
	// that host's cache (sealtakeover.go).
	foreign, err := e.sealCacheDir(b)
	if err != nil {
		return err
	}
	t0 := time.Now()
	sums, err := e.hashObjects(e.ctx, files, p, foreign)
	if err != nil {
		if e.ctx.Err() != nil {
			return nil
		}
		e.failBatch(b, EvFailed, fmt.Sprintf("batch %d: the checksums of its files could not be computed: %v; its data is kept in the cache, and hashing is tried again at the next start", b.ID, err))
		return nil
	}
	// One syncfs for every object of the batch: from CACHED on, its data
	// survives a power loss.
	if err := e.syncSealed(foreign); err != nil {
		return fmt.Errorf("batch %d: flush the cache disk: %w", b.ID, err)
	}
	if err := e.recordSums(b.ID, sums); err != nil {
		return err
	}
	err = e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		cur, err := tx.Batch(id)
		if err != nil {
			return err
		}
		switch {
		case cur.State == catalog.Deleted && (cur.Prior == catalog.Sealing || cur.Prior == catalog.Failed):
			// Deleted while it was hashed: it still goes to tape (purge
			// waits for that), and comes back CACHED if undeleted.
			cur.Prior = catalog.Cached
		case cur.State == catalog.Sealing || cur.State == catalog.Failed:
			cur.State, cur.Reason = catalog.Cached, ""
		default:
			return nil
		}
		if err := tx.PutBatch(cur); err != nil {
			return err
		}
		jobs, err := tx.Jobs(catalog.JobSeal)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Batch == id {
				if err := tx.DeleteJob(j.ID); err != nil {
					return err
				}
			}
		}
		if _, err := tx.AddJob(catalog.Job{Kind: catalog.JobMigrate, Batch: id, Created: e.now()}); err != nil {
			return err
		}
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: cur.Workspace, Batch: id, Kind: EvState, State: catalog.Cached,
			Message: fmt.Sprintf("batch %d sealed: md5 of its %s recorded in %v; queued for tape", id, human.Size(b.Bytes), time.Since(t0).Round(time.Millisecond))})
	})
	if err != nil {
		return err
	}
	e.wakeMigration()
	return nil
}

// recordSums writes the checksums into the file records, a page at a time
// (a restart hashes again, so a partial write is harmless). Hard links get
// their data owner's.
func (e *Engine) recordSums(batch uint64, sums map[uint64]streamSums) error {
	const page = 10_000
	var after uint64
	for {
		n, last := 0, after
		// May run more than once (a retried transaction): after moves on
		// only once it committed.
		err := e.cat.Update(func(tx *catalog.Tx) error {
			files, err := tx.Files(batch, after, page)
			if err != nil {
				return err
			}
			n = len(files)
			for _, f := range files {
				last = f.ID
				if f.Type != catalog.TypeFile {
					continue
				}
				sum := sums[f.DataID()]
				if sum.md5 == "" || (f.MD5 == sum.md5 && f.CRC32C == sum.crc) {
					continue
				}
				f.MD5, f.CRC32C = sum.md5, sum.crc
				if err := tx.PutFile(f); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("batch %d: record checksums: %w", batch, err)
		}
		if n < page {
			return nil
		}
		after = last
	}
}

// hashObjects computes the checksums of the cache objects of files (data
// owners), HashWorkers at a time, largest first so that one big file does
// not start last.
func (e *Engine) hashObjects(ctx context.Context, files []catalog.File, p *hashProgress, foreign string) (map[uint64]streamSums, error) {
	order := make([]int, len(files))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return files[order[a]].Size > files[order[b]].Size })
	sums := make(map[uint64]streamSums, len(files))
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan int)
	limit := newRateLimit(e.cfg.HashRate)
	for w := 0; w < e.cfg.HashWorkers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for i := range jobs {
				f := files[i]
				sum, err := e.hashObject(ctx, f, buf, p, limit, foreign)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", f.Path, err)
					cancel()
				}
				sums[f.ID] = sum
				mu.Unlock()
			}
		}()
	}
	for _, i := range order {
		select {
		case jobs <- i:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return sums, firstErr
}

func (e *Engine) hashObject(ctx context.Context, f catalog.File, buf []byte, p *hashProgress, limit *rateLimit, foreign string) (streamSums, error) {
	h, err := e.openSealed(foreign, f.ID)
	if err != nil {
		return streamSums{}, err
	}
	defer h.Close()
	md := checksum.New(true)
	var off int64
	for {
		n, err := h.File().ReadAt(buf, off)
		md.Write(buf[:n])
		off += int64(n)
		p.done.Add(int64(n))
		if err == io.EOF {
			break
		}
		if err != nil {
			return streamSums{}, err
		}
		if err := limit.wait(ctx, n); err != nil {
			return streamSums{}, err
		}
	}
	if off != f.Size {
		return streamSums{}, fmt.Errorf("its cached copy is %d bytes, the entry had %d when it was sealed", off, f.Size)
	}
	return sumsOf(md), nil
}

// rateLimit paces hashing to a number of bytes per second (a testing knob,
// Config.HashRate: it makes the background hashing long enough to watch);
// nil when unlimited.
type rateLimit struct {
	rate  int64
	mu    sync.Mutex
	start time.Time
	bytes int64
}

func newRateLimit(rate int64) *rateLimit {
	if rate <= 0 {
		return nil
	}
	return &rateLimit{rate: rate, start: time.Now()}
}

func (l *rateLimit) wait(ctx context.Context, n int) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	l.bytes += int64(n)
	due := l.start.Add(time.Duration(float64(l.bytes) / float64(l.rate) * float64(time.Second)))
	l.mu.Unlock()
	t := time.NewTimer(time.Until(due))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checksumRead runs in Checksum after a read that found no md5, before
// it asks whether the batch is still being hashed (a hook for tests of
// that window).
var checksumRead = func() {}

// checksumFile reads a file's record, its data owner's for a hard link.
func (e *Engine) checksumFile(fileID uint64) (catalog.File, error) {
	var f catalog.File
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		f, err = tx.File(fileID)
		if err == nil && f.Link != 0 {
			f, err = tx.File(f.Link)
		}
		return err
	})
	return f, err
}

// Checksum returns the md5 of a regular file (its data owner's). For a file
// of a batch whose checksums are still being computed it waits (until ctx
// is done) for its batch to be hashed, so that user.tapefs.md5 right after
// a seal answers rather than says "no such attribute". "" means the file
// has no md5 and none is coming (its batch's hashing failed).
func (e *Engine) Checksum(ctx context.Context, fileID uint64) (string, error) {
	for {
		ch := e.changedChan()
		f, err := e.checksumFile(fileID)
		if err != nil {
			return "", err
		}
		if f.MD5 != "" || f.Type != catalog.TypeFile {
			return f.MD5, nil
		}
		checksumRead()
		// Whether md5s are still coming is asked after that read but
		// judged on a read made after it: the hasher records the sums
		// before it stops saying "hashing", so "not hashing" followed by
		// no md5 means none is coming. Judged on the first read alone,
		// the hashing could end in between and the answer be "".
		_, hashing := e.hashed(f.Batch)
		pending := hashing || e.isAdopting(f.Batch)
		if f, err = e.checksumFile(f.ID); err != nil {
			return "", err
		}
		if f.MD5 != "" {
			return f.MD5, nil
		}
		if !pending {
			return "", nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}
