package archive

// Finishing the seal of a dead host's batch. A batch sealed on host A is
// registered (SEALING) with a seal job of A's, and its files are moved
// into A's cache; A then computes their checksums and queues the batch
// for tape. If A dies before that and its cache is reachable from here
// (shared storage, hosts.go), this host claims the seal job like any job
// of a dead host, moves what A had not yet moved into A's cache, computes
// the checksums from there and queues the batch: a migration then adopts
// it as any other batch of A's. If A's cache is out of reach the batch
// waits for A, and the host list says so. A that comes back leaves a seal
// another live host holds to it (recover.go).

import (
	"fmt"
	"os"
	"time"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
)

// sealCacheDir is where the objects of batch b are hashed from: "" for
// this host's cache, or the cache of the dead host whose seal this host
// took over.
func (e *Engine) sealCacheDir(b catalog.Batch) (string, error) {
	if e.mine(b) {
		return "", nil
	}
	var dir string
	var ok bool
	err := e.cat.View(func(tx *catalog.Tx) error {
		v, err := e.readHosts(tx)
		dir, ok = e.adoptable(v, b, true)
		return err
	})
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("batch %d: its files are in the cache of host %s, which is out of reach from here: its seal waits for that host", b.ID, b.Host)
	}
	return dir, nil
}

func (e *Engine) openSealed(foreign string, id uint64) (*cache.Handle, error) {
	if foreign == "" {
		return e.cache.Open(id)
	}
	return cache.OpenForeign(foreign, id)
}

func (e *Engine) syncSealed(foreign string) error {
	if foreign == "" {
		return e.cache.Sync()
	}
	return cache.SyncForeign(foreign)
}

// sealTakeoverLoop looks for seals of dead hosts twice per lease.
func (e *Engine) sealTakeoverLoop() {
	if !e.shared() {
		return
	}
	for e.sleep(e.takeoverTick(time.Minute)) {
		e.takeOverSeals()
	}
}

// takeOverSeals claims the seal jobs of dead hosts whose cache is
// reachable (and its own such claims not being worked on: a hashing that
// failed is tried again) and queues their batches for hashing here.
func (e *Engine) takeOverSeals() {
	if !e.holding() {
		return
	}
	var cands []catalog.Job
	err := e.cat.View(func(tx *catalog.Tx) error {
		cands = cands[:0]
		v, err := e.readHosts(tx)
		if err != nil {
			return err
		}
		jobs, err := tx.Jobs(catalog.JobSeal)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			b, err := tx.Batch(j.Batch)
			if err != nil || e.mine(b) {
				continue // this host's own seals are sealLoop's (and recover's)
			}
			if _, busy := e.hashed(b.ID); busy {
				continue
			}
			if e.claimable(v, j, b) {
				cands = append(cands, j)
			}
		}
		return nil
	})
	if err != nil {
		e.log.Warn().Err(err).Str("host", e.hostID()).Msg("cannot look for seals of hosts that died")
		return
	}
	got := e.claimJobs(cands)
	// The claim keeps other hosts (and the dead one, back) off the seal;
	// no commit of it is fenced, so it is not remembered for fences.
	e.endClaims(got)
	for _, j := range got {
		if err := e.takeOverSeal(j); err != nil {
			e.log.Error().Err(err).Uint64("batch", j.Batch).Str("host", e.hostID()).Msg("finishing the seal of a batch of a host that died failed; tried again")
		}
	}
}

// takeOverSeal finishes moving a dead host's batch into that host's cache
// and queues it for hashing here.
func (e *Engine) takeOverSeal(j catalog.Job) error {
	var b catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(j.Batch)
		return err
	}); err != nil {
		return err
	}
	dir, err := e.sealCacheDir(b)
	if err != nil {
		return err
	}
	if b.Sealing != "" {
		if err := e.adoptForeign(b, dir); err != nil {
			return err
		}
		b.Sealing = ""
	}
	e.log.Warn().Uint64("batch", b.ID).Str("workspace", b.Workspace).Str("from", b.Host).Str("host", e.hostID()).Str("cache", dir).
		Msg("finishing the seal of a batch of a host that died: its checksums are computed here from its cache, then it goes to tape")
	e.queueHash(b)
	return nil
}

// adoptForeign is adopt (seal.go) into the cache of the dead host that
// sealed b: its files move from b's sealing directory (in that cache)
// into that cache's objects.
func (e *Engine) adoptForeign(b catalog.Batch, dir string) error {
	if err := e.eachDataPage(b.ID, func(files []catalog.File) error {
		return cache.AdoptForeign(dir, sealingAdoptions(b, files))
	}); err != nil {
		return err
	}
	if err := e.cat.Update(func(tx *catalog.Tx) error {
		cur, err := tx.Batch(b.ID)
		if err != nil {
			return err
		}
		cur.Sealing = ""
		return tx.PutBatch(cur)
	}); err != nil {
		return err
	}
	if err := os.RemoveAll(b.Sealing); err != nil {
		e.log.Warn().Err(err).Uint64("batch", b.ID).Str("dir", b.Sealing).Msg("could not remove the sealing directory of a batch adopted from a host that died")
	}
	return nil
}
