package archive

// Several hosts on one catalog (a PostgreSQL catalog and a tape library
// every host reaches, Config.Shared): each daemon is a host with a
// heartbeat in the catalog, judged by the catalog's clock. What a host
// works on — a cartridge (lease.go), a migrate job — it holds under an
// epoch while its heartbeat lasts; a host whose heartbeat lapsed holds
// nothing, and others take its work over. With one host (the default)
// the heartbeat is kept for the status page and nothing else changes.

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// hostState is this host's view of its own heartbeat and claims.
type hostState struct {
	mu         sync.Mutex
	validUntil time.Time // local clock: the catalog's heartbeat is fresh until then at the latest
	failing    bool      // the last renewal failed (logged once)
	// claimed maps a job this host claimed, and is working on, to the
	// claim: commits of the job's work check it (catalog.Fence). The
	// claims end with the flush or copy they were made for (endClaims).
	claimed map[uint64]claim
	lapses  int64 // heartbeats found lapsed at renewal
	fences  int64 // commits or writes refused because a lease was lost
}

// claim is one job claimed by this host.
type claim struct{ epoch, batch uint64 }

// hostID is this host's name in the catalog.
func (e *Engine) hostID() string { return e.cfg.Host }

// shared reports whether several hosts may work on this catalog.
func (e *Engine) shared() bool { return e.cfg.Shared }

// lease is how long a heartbeat lasts unrenewed.
func (e *Engine) lease() time.Duration { return e.cfg.Lease }

// holding reports whether this host may take work: its heartbeat was
// renewed less than a lease ago (by the local clock, counted from before
// the renewal was sent, so never later than the catalog thinks).
func (e *Engine) holding() bool {
	if !e.shared() {
		return true
	}
	e.host.mu.Lock()
	defer e.host.mu.Unlock()
	return time.Now().Before(e.host.validUntil)
}

// errHostBusy: another daemon with this host ID has a live heartbeat.
type errHostBusy struct {
	id      string
	pid     int
	expires time.Time
}

func (e errHostBusy) Error() string {
	return fmt.Sprintf("host ID %q has a live heartbeat until %s (pid %d): another daemon runs with this --host-id, or this host's last run died less than a lease ago",
		e.id, e.expires.Format(time.RFC3339Nano), e.pid)
}

// registerHost writes this run's heartbeat. On a shared catalog a live
// heartbeat of the same ID is waited out (a killed run's lapses within a
// lease); with one host the catalog's own lock already keeps a second
// daemon out.
func (e *Engine) registerHost() error {
	if e.hostID() == "" {
		return nil
	}
	deadline := time.Now().Add(3*e.lease() + 10*time.Second)
	logged := false
	for {
		t0 := time.Now()
		err := e.cat.Update(func(tx *catalog.Tx) error {
			now, err := tx.Now()
			if err != nil {
				return err
			}
			old, err := tx.Host(e.hostID())
			if err != nil && !errors.Is(err, catalog.ErrNotFound) {
				return err
			}
			if e.shared() && err == nil && old.Alive(now) {
				return errHostBusy{id: old.ID, pid: old.PID, expires: old.Expires}
			}
			return tx.PutHost(catalog.Host{ID: e.hostID(), Started: now, Heartbeat: now, Expires: now.Add(e.lease()),
				CacheDir: e.cfg.CacheDir, PID: os.Getpid(), Drives: e.driveRecords()})
		})
		var busy errHostBusy
		if errors.As(err, &busy) && time.Now().Before(deadline) {
			if !logged {
				e.log.Warn().Str("host", e.hostID()).Int("pid", busy.pid).Time("expires", busy.expires).
					Msg("this host ID has a live heartbeat in the catalog (a run killed less than a lease ago, or another daemon with the same --host-id); waiting for it to lapse")
				logged = true
			}
			if !e.sleep(min(e.lease()/4, time.Second)) {
				return e.ctx.Err()
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("host %s: heartbeat: %w", e.hostID(), err)
		}
		e.host.mu.Lock()
		e.host.validUntil = t0.Add(e.lease())
		e.host.mu.Unlock()
		e.log.Info().Str("host", e.hostID()).Stringer("lease", e.lease()).Bool("shared", e.shared()).Msg("host registered in the catalog")
		return nil
	}
}

// driveRecords is what the heartbeat says of this host's drives.
func (e *Engine) driveRecords() []catalog.HostDrive {
	var out []catalog.HostDrive
	for _, d := range e.lib.Drives() {
		out = append(out, catalog.HostDrive{Index: d.Index, State: string(d.State), VOLSER: d.VOLSER})
	}
	return out
}

// heartbeatLoop renews the heartbeat three times per lease.
func (e *Engine) heartbeatLoop() {
	if e.hostID() == "" {
		return
	}
	period := max(e.lease()/3, 10*time.Millisecond)
	for e.sleep(period) {
		e.renewHeartbeat()
		e.releaseUnworkable()
	}
}

// renewHeartbeat renews this host's heartbeat. A renewal that finds the
// heartbeat already lapsed says so: whatever the host held may have been
// taken over meanwhile, and its commits of that work will be refused
// (the fence). A renewal that fails stops the host taking work until one
// succeeds.
func (e *Engine) renewHeartbeat() {
	t0 := time.Now()
	var lapsed time.Duration
	err := e.cat.Update(func(tx *catalog.Tx) error {
		lapsed = 0
		now, err := tx.Now()
		if err != nil {
			return err
		}
		h, err := tx.Host(e.hostID())
		if errors.Is(err, catalog.ErrNotFound) {
			h = catalog.Host{ID: e.hostID(), Started: now, CacheDir: e.cfg.CacheDir, PID: os.Getpid()}
		} else if err != nil {
			return err
		}
		if !h.Expires.IsZero() && now.After(h.Expires) {
			lapsed = now.Sub(h.Heartbeat)
		}
		h.Heartbeat, h.Expires, h.Stopped, h.PID, h.CacheDir = now, now.Add(e.lease()), false, os.Getpid(), e.cfg.CacheDir
		h.Drives = e.driveRecords()
		h.Listening = e.ChangesFollowed()
		return tx.PutHost(h)
	})
	e.host.mu.Lock()
	wasFailing := e.host.failing
	e.host.failing = err != nil
	if err == nil {
		e.host.validUntil = t0.Add(e.lease())
	}
	e.host.mu.Unlock()
	switch {
	case err != nil && !wasFailing:
		e.log.Error().Err(err).Str("host", e.hostID()).Msg("cannot renew this host's heartbeat in the catalog: taking no new work until it can (other hosts take over its cartridges and jobs once the lease lapses)")
	case err == nil && wasFailing:
		e.log.Info().Str("host", e.hostID()).Msg("heartbeat renewed again: taking work")
	}
	if err == nil && lapsed > 0 && e.shared() {
		e.log.Warn().Str("host", e.hostID()).Stringer("silent", lapsed.Round(time.Millisecond)).Stringer("lease", e.lease()).
			Msg("this host's heartbeat had lapsed (paused or cut off): cartridges and jobs it held may have been taken over; commits of that work are refused")
		e.host.mu.Lock()
		e.host.lapses++
		e.host.mu.Unlock()
	}
}

// retireHost marks the heartbeat stopped at a clean stop, so that the
// others take over at once instead of after the lease.
func (e *Engine) retireHost() {
	if e.hostID() == "" {
		return
	}
	err := e.cat.Update(func(tx *catalog.Tx) error {
		h, err := tx.Host(e.hostID())
		if err != nil {
			return err
		}
		if h.PID != os.Getpid() {
			return nil // another run of this host ID took over
		}
		h.Stopped = true
		h.Drives = nil
		return tx.PutHost(h)
	})
	if err != nil {
		e.log.Warn().Err(err).Str("host", e.hostID()).Msg("could not mark this host stopped in the catalog; the others take its work over when its lease lapses")
	}
}

// hostView is the hosts as one transaction saw them.
type hostView struct {
	now   time.Time
	hosts map[string]catalog.Host
}

func (e *Engine) readHosts(tx *catalog.Tx) (hostView, error) {
	v := hostView{hosts: map[string]catalog.Host{}}
	now, err := tx.Now()
	if err != nil {
		return v, err
	}
	v.now = now
	hs, err := tx.Hosts()
	for _, h := range hs {
		v.hosts[h.ID] = h
	}
	return v, err
}

func (v hostView) alive(id string) bool {
	h, ok := v.hosts[id]
	return ok && h.Alive(v.now)
}

// mine reports whether a batch's data is in this host's cache (always,
// with one host; a batch of no host is an old single host's).
func (e *Engine) mine(b catalog.Batch) bool {
	return !e.shared() || b.Host == "" || b.Host == e.hostID()
}

// adoptable says where this host reads the data of a batch of another
// host: that host is dead (its heartbeat lapsed or it stopped) and its
// cache directory is reachable from here ("" otherwise: the batch waits
// for its host). continuing is for a migration this host claimed while
// that host was dead: it goes on reading the cache even if the host is
// back (the objects of a batch not on tape never change or go away), so
// that neither host waits for the other.
func (e *Engine) adoptable(v hostView, b catalog.Batch, continuing bool) (string, bool) {
	if e.mine(b) {
		return "", true
	}
	h, ok := v.hosts[b.Host]
	if !ok || (!continuing && h.Alive(v.now)) || h.CacheDir == "" || !cache.Reachable(h.CacheDir) {
		return "", false
	}
	return h.CacheDir, true
}

// claimable reports whether this host may take migrate or seal job j of batch b:
// the job is free, its own, or its owner's heartbeat lapsed; and the
// batch's data is here or adoptable.
//
// A copy or repack job reads tape copies, not a cache: any host may take
// it that no live host holds.
func (e *Engine) claimable(v hostView, j catalog.Job, b catalog.Batch) bool {
	if !e.shared() {
		return true
	}
	if j.Owner != "" && j.Owner != e.hostID() && v.alive(j.Owner) {
		return false
	}
	if j.Kind != catalog.JobMigrate && j.Kind != catalog.JobSeal {
		return true // copy, repack and repair jobs read tape, not a host's cache
	}
	_, ok := e.adoptable(v, b, j.Owner == e.hostID())
	return ok
}

// releaseUnworkable gives up this host's claims of migrate jobs it can no
// longer do — another host's batch whose cache is out of reach from here —
// so that their host (or another) can take them. Skipped while a flush
// runs: its jobs are in use.
func (e *Engine) releaseUnworkable() {
	if !e.shared() || !e.migrateMu.TryLock() {
		return
	}
	defer e.migrateMu.Unlock()
	var released []string
	err := e.cat.Update(func(tx *catalog.Tx) error {
		released = released[:0]
		v, err := e.readHosts(tx)
		if err != nil {
			return err
		}
		jobs, err := tx.Jobs(catalog.JobMigrate)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Owner != e.hostID() {
				continue
			}
			b, err := tx.Batch(j.Batch)
			if err != nil {
				continue
			}
			if _, ok := e.adoptable(v, b, true); ok {
				continue
			}
			j.Owner = ""
			if err := tx.PutJob(j); err != nil {
				return err
			}
			released = append(released, fmt.Sprintf("job %d (batch %d of host %s)", j.ID, b.ID, b.Host))
		}
		return nil
	})
	if err != nil {
		e.log.Warn().Err(err).Str("host", e.hostID()).Msg("could not give up migrate jobs this host cannot do")
	}
	for _, r := range released {
		e.log.Warn().Str("host", e.hostID()).Msg("gave up " + r + ": its cache is out of reach from here")
	}
}

// claimJobs claims jobs for this host in one transaction (the engine's
// serializable Update is what SELECT … FOR UPDATE SKIP LOCKED is to a
// scheduler on SQL: a job another host claimed first is skipped). Each
// claim bumps the job's epoch; the claims are remembered for the fence of
// the commits. With one host every job is returned as it is.
func (e *Engine) claimJobs(jobs []catalog.Job) []catalog.Job {
	if !e.shared() || len(jobs) == 0 {
		return jobs
	}
	if !e.holding() {
		return nil
	}
	var got []catalog.Job
	var taken []string // "job N of host H" taken over, for the log
	err := e.cat.Update(func(tx *catalog.Tx) error {
		got, taken = got[:0], taken[:0]
		v, err := e.readHosts(tx)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			cur, err := tx.Job(j.ID)
			if errors.Is(err, catalog.ErrNotFound) {
				continue // done meanwhile
			}
			if err != nil {
				return err
			}
			// Repack jobs belong to a cartridge, not to a batch.
			var b catalog.Batch
			if cur.Batch != 0 {
				if b, err = tx.Batch(cur.Batch); errors.Is(err, catalog.ErrNotFound) {
					continue // purged meanwhile
				} else if err != nil {
					return err
				}
			}
			if !e.claimable(v, cur, b) {
				continue
			}
			if cur.Owner != "" && cur.Owner != e.hostID() {
				taken = append(taken, fmt.Sprintf("job %d (batch %d) of host %s", cur.ID, cur.Batch, cur.Owner))
			}
			cur.Owner, cur.Epoch, cur.Lease = e.hostID(), cur.Epoch+1, v.now.Add(e.lease())
			if err := tx.PutJob(cur); err != nil {
				return err
			}
			got = append(got, cur)
		}
		return nil
	})
	if err != nil {
		e.log.Error().Err(err).Str("host", e.hostID()).Msg("migration: cannot claim jobs")
		return nil
	}
	e.host.mu.Lock()
	if e.host.claimed == nil {
		e.host.claimed = map[uint64]claim{}
	}
	for _, j := range got {
		e.host.claimed[j.ID] = claim{epoch: j.Epoch, batch: j.Batch}
	}
	e.host.mu.Unlock()
	for _, t := range taken {
		e.log.Warn().Str("host", e.hostID()).Msg("took over " + t + ": its heartbeat lapsed")
	}
	return got
}

// fenceFor is what a commit of an aggregate on volser holding batches
// must still hold: the cartridge lease this host writes it under, and its
// claims of the jobs it works on for those batches — by the claim, not by
// what the catalog holds now, so a job another host took over and
// finished (deleted) refuses the commit too. Zero with one host.
func (e *Engine) fenceFor(volser string, batches map[uint64]int64) catalog.Fence {
	if !e.shared() {
		return catalog.Fence{}
	}
	f := catalog.Fence{Host: e.hostID(), VOLSER: volser, Jobs: map[uint64]uint64{}}
	if ll, ok := e.lib.(*leasedLibrary); ok {
		f.Epoch = ll.heldEpoch(volser)
	}
	e.host.mu.Lock()
	defer e.host.mu.Unlock()
	for id, c := range e.host.claimed {
		if _, in := batches[c.batch]; in {
			f.Jobs[id] = c.epoch
		}
	}
	return f
}

// endClaims forgets the claims of jobs whose flush or copy is over (done,
// failed or given up): a later commit for their batches is other work.
func (e *Engine) endClaims(jobs []catalog.Job) {
	e.host.mu.Lock()
	for _, j := range jobs {
		delete(e.host.claimed, j.ID)
	}
	e.host.mu.Unlock()
}

// fenced reports whether a migration of jobs that failed with err lost
// its lease: err says so, or another host has claimed one of the jobs
// since (its late tape write then failed on a tape file the other host
// discarded). The work is the other host's now, and is neither retried
// nor failed here.
func (e *Engine) fenced(err error, jobs []catalog.Job) bool {
	if err == nil || !e.shared() {
		return false
	}
	lost := errors.Is(err, catalog.ErrFenced) || errors.Is(err, tape.ErrFenced)
	if !lost {
		_ = e.cat.View(func(tx *catalog.Tx) error {
			for _, j := range jobs {
				cur, err := tx.Job(j.ID)
				switch {
				case errors.Is(err, catalog.ErrNotFound):
					lost = true // done by the host that took it over
				case err == nil && (cur.Owner != e.hostID() || cur.Epoch != j.Epoch):
					lost = true
				}
			}
			return nil
		})
	}
	if !lost {
		return false
	}
	e.log.Warn().Err(err).Str("host", e.hostID()).Msg("lease lost while working: nothing of this work is recorded; the host that took over does it")
	e.host.mu.Lock()
	e.host.fences++
	e.host.mu.Unlock()
	return true
}

// openMigrant opens the cache object of a member to write: in this
// host's cache, or in the cache of the dead host whose batch this host
// adopted.
//
// A batch already on tape is being copied or repaired, not migrated: its
// objects were recalled into this host's cache, whichever host sealed it.
func (e *Engine) openMigrant(m migrant) (*cache.Handle, error) {
	b := m.batch
	if e.mine(*b) || b.State.OnTape() || (b.State == catalog.Deleted && b.Prior.OnTape()) {
		return e.cache.Open(m.file.ID)
	}
	var dir string
	var ok bool
	err := e.cat.View(func(tx *catalog.Tx) error {
		v, err := e.readHosts(tx)
		dir, ok = e.adoptable(v, *m.batch, true) // this host claimed its job
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("batch %d: its data is in the cache of host %s, which is alive again or out of reach: %w", m.batch.ID, m.batch.Host, catalog.ErrFenced)
	}
	return cache.OpenForeign(dir, m.file.ID)
}

// jobOwner is the owner a job created here gets: this host when several
// share the catalog (so that recover on another host leaves it alone).
func (e *Engine) jobOwner() string {
	if !e.shared() {
		return ""
	}
	return e.hostID()
}

// ownJob reports whether recover may touch job j: this host's, no host's,
// or a host's whose heartbeat lapsed.
func (e *Engine) ownJob(v hostView, j catalog.Job) bool {
	return !e.shared() || j.Owner == "" || j.Owner == e.hostID() || !v.alive(j.Owner)
}

// HostView is one host sharing the catalog, as the page and `tapefs
// library status` show it.
type HostView struct {
	ID        string
	Self      bool   // the host answering
	State     string // "up", "stopped", "lapsed" (heartbeat older than its lease)
	Heartbeat time.Time
	Age       time.Duration // of the heartbeat, by the catalog's clock
	Drives    []catalog.HostDrive
	// Waiting counts the batches not yet on tape whose data is only in
	// this host's cache; CacheReachable says whether another host can
	// adopt them while this one is down (else they wait for it).
	Waiting        int
	CacheReachable bool
	// Listening says whether the host hears of the other hosts' changes
	// at once (the follower's LISTEN connection is up, follow.go): live
	// for this host, as of its last heartbeat for the others. Without it
	// its mount caches directories briefly and polls the catalog.
	Listening bool
	// Roles are the once-per-archive loops it runs (roles.go).
	Roles []string
}

// Hosts lists the hosts that share the catalog, by ID.
func (e *Engine) Hosts() ([]HostView, error) {
	if e.hostID() == "" || !e.shared() {
		return nil, nil // one host: its drives are the library's
	}
	var out []HostView
	err := e.cat.View(func(tx *catalog.Tx) error {
		out = out[:0]
		v, err := e.readHosts(tx)
		if err != nil {
			return err
		}
		waiting := map[string]int{}
		bs, err := tx.Batches(catalog.ListOptions{States: []catalog.State{catalog.Caching, catalog.Sealing, catalog.Cached, catalog.Syncing, catalog.Failed}})
		if err != nil {
			return err
		}
		for _, b := range bs {
			waiting[b.Host]++
		}
		roles := map[string][]string{}
		rs, err := tx.Roles()
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Holder != "" {
				roles[r.Holder] = append(roles[r.Holder], r.Name)
			}
		}
		for _, h := range v.hosts {
			hv := HostView{ID: h.ID, Self: h.ID == e.hostID(), Heartbeat: h.Heartbeat, Age: v.now.Sub(h.Heartbeat),
				Drives: h.Drives, Waiting: waiting[h.ID], CacheReachable: h.ID == e.hostID() || cache.Reachable(h.CacheDir),
				Listening: h.Listening, Roles: roles[h.ID]}
			if hv.Self {
				hv.Listening = e.ChangesFollowed()
			}
			switch {
			case h.Stopped:
				hv.State = "stopped"
			case h.Alive(v.now):
				hv.State = "up"
			default:
				hv.State = "lapsed"
			}
			if hv.State != "up" {
				hv.Drives, hv.Listening, hv.Roles = nil, false, nil // what it last said is history; its roles go to the next host that asks
			}
			out = append(out, hv)
		}
		return nil
	})
	sortHosts(out)
	return out, err
}

func sortHosts(hs []HostView) {
	for i := 1; i < len(hs); i++ {
		for j := i; j > 0 && hs[j].ID < hs[j-1].ID; j-- {
			hs[j], hs[j-1] = hs[j-1], hs[j]
		}
	}
}

// Note says in words what a host's state means for its work.
func (h HostView) Note() string {
	switch {
	case h.State == "up":
		return ""
	case h.Waiting == 0:
		return "no work of its own waits"
	case h.CacheReachable:
		return fmt.Sprintf("%d batch(es) not yet on tape: adopted from its cache by the other hosts", h.Waiting)
	default:
		return fmt.Sprintf("%d batch(es) not yet on tape wait for it: its cache is out of reach of this host", h.Waiting)
	}
}

// adoptedElsewhere is the batches whose migrate jobs a live other host
// holds: this host's batches another host adopted while it was down, and
// is writing now. A restart leaves them to it.
func (e *Engine) adoptedElsewhere(tx *catalog.Tx) (map[uint64]bool, error) {
	if !e.shared() {
		return nil, nil
	}
	v, err := e.readHosts(tx)
	if err != nil {
		return nil, err
	}
	jobs, err := tx.Jobs(catalog.JobMigrate)
	out := map[uint64]bool{}
	for _, j := range jobs {
		if j.Owner != "" && j.Owner != e.hostID() && v.alive(j.Owner) {
			out[j.Batch] = true
		}
	}
	return out, err
}

// claimDue claims the first due job of a kind that belongs to no batch's
// cache (repair, repack) and that no other live host works on; nil when
// there is none, another host claimed it first, or this host may take no
// work. The caller ends the claim (endClaims).
func (e *Engine) claimDue(kind catalog.JobKind) []catalog.Job {
	var due *catalog.Job
	now := e.now()
	_ = e.cat.View(func(tx *catalog.Tx) error {
		jobs, err := tx.Jobs(kind)
		var hv hostView
		if err == nil && e.shared() {
			hv, err = e.readHosts(tx)
		}
		for _, j := range jobs {
			if !j.NotBefore.After(now) && e.claimable(hv, j, catalog.Batch{}) {
				due = &j
				break
			}
		}
		return err
	})
	if due == nil || !e.holding() {
		return nil
	}
	claimed := e.claimJobs([]catalog.Job{*due})
	if len(claimed) != 1 {
		return nil
	}
	return claimed
}

// jobFence is what the commit of one claimed job's write on volser must
// still hold: the cartridge lease it is written under and the job's claim
// (the claim alone for volser ""). Zero with one host.
func (e *Engine) jobFence(volser string, j catalog.Job) catalog.Fence {
	if !e.shared() {
		return catalog.Fence{}
	}
	f := catalog.Fence{Host: e.hostID(), VOLSER: volser, Jobs: map[uint64]uint64{j.ID: j.Epoch}}
	if ll, ok := e.lib.(*leasedLibrary); ok && volser != "" {
		f.Epoch = ll.heldEpoch(volser)
	}
	return f
}

// takeoverTick is how often a loop that only polls now and then (every d)
// looks for work: with several hosts at least twice per lease, so that the
// jobs of a host that died are taken over within about 1.5 leases of its
// last heartbeat, not after d.
func (e *Engine) takeoverTick(d time.Duration) time.Duration {
	if !e.shared() {
		return d
	}
	return min(d, max(e.lease()/2, 50*time.Millisecond))
}
