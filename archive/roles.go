package archive

import (
	"sync"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// Roles: background loops that must run once per archive, not once per
// host. With several hosts on one catalog each such loop asks leads()
// before it works; one host holds the role (catalog.Role) under an epoch
// while its heartbeat lasts, and another takes it when that lapses.
//
// Per loop of Start:
//
//	snapshot      one runner: every host would write its own snapshot
//	              tape file of the same catalog
//	journal       one runner: hosts would write the same removals to
//	              tape twice and move the cursor back and forth
//	purge         one runner: a batch purged twice is an error and two
//	              events (the other hosts' cache objects of a purged batch
//	              are evictable, and dropped at their next start)
//	tape-verify   one runner: the schedule is the archive's, not a
//	              host's; two hosts would read the same cartridge back
//	removal-grace one runner for removals begun through a host that died
//	              (read from the catalog); each host still ends those
//	              begun through its own mount: the undo re-reads the
//	              batch in its transaction, so two hosts never undo twice
//
// Every host runs the loops that work on its own cache or queues (settle,
// seal, scrub of the cache, eviction, recalls and their plan, the
// follower, the heartbeat) and the job loops, which claim job by job
// (migrate, copy, repack, repair).
//
// The roles' work needs no fence: a host that lost a role while paused
// may finish one round late, and each of these rounds is harmless twice
// (a second snapshot or journal tape file, a purge that finds the batch
// gone, a cartridge read back again).
const (
	roleSnapshot     = "snapshot"
	roleJournal      = "journal"
	rolePurge        = "purge"
	roleTapeVerify   = "tape-verify"
	roleRemovalGrace = "removal-grace"
)

// roleState is this host's view of the roles it holds.
type roleState struct {
	mu      sync.Mutex
	held    map[string]uint64    // role -> epoch this host holds it at
	checked map[string]time.Time // role -> when the catalog last confirmed it (local clock)
	took    int64                // roles taken over from a host whose heartbeat lapsed
}

// leads reports whether this host runs role now, taking it when nobody
// live holds it. Always true with one host. The catalog is asked at most
// every quarter lease while the role is held (a host that held it stays
// holding it while its heartbeat lasts), and at every call otherwise.
func (e *Engine) leads(role string) bool {
	if !e.shared() {
		return true
	}
	r := &e.roles
	if !e.holding() {
		r.mu.Lock()
		delete(r.held, role)
		r.mu.Unlock()
		return false
	}
	r.mu.Lock()
	epoch, held := r.held[role]
	fresh := time.Since(r.checked[role]) < e.lease()/4
	r.mu.Unlock()
	if fresh {
		return held // not held: a live host held it a moment ago
	}
	t0 := time.Now()
	var got uint64
	var from string
	err := e.cat.Update(func(tx *catalog.Tx) error {
		got, from = 0, ""
		cur, err := tx.Role(role)
		if err != nil {
			return err
		}
		if cur.Holder == e.hostID() && held && cur.Epoch == epoch {
			got = epoch
			return nil
		}
		now, err := tx.Now()
		if err != nil {
			return err
		}
		if cur.Holder != "" && cur.Holder != e.hostID() {
			alive, err := tx.HolderAlive(cur.Holder, now)
			if err != nil || alive {
				return err
			}
			from = cur.Holder
		}
		cur.Holder, cur.Epoch, cur.Since = e.hostID(), cur.Epoch+1, now
		got = cur.Epoch
		return tx.PutRole(cur)
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held, r.checked = map[string]uint64{}, map[string]time.Time{}
	}
	if err != nil || got == 0 {
		delete(r.held, role)
		r.checked[role] = t0
		if err != nil {
			e.log.Warn().Err(err).Str("host", e.hostID()).Str("role", role).Msg("cannot read who runs this role; not running it meanwhile")
		}
		return false
	}
	if !held || got != epoch {
		if from != "" {
			r.took++
			e.log.Warn().Str("host", e.hostID()).Str("role", role).Str("from", from).Uint64("epoch", got).Msg("took over a role of a host whose heartbeat lapsed")
		} else {
			e.log.Info().Str("host", e.hostID()).Str("role", role).Uint64("epoch", got).Msg("this host runs this role for every host")
		}
	}
	r.held[role], r.checked[role] = got, t0
	return true
}

// roleDone records that this host finished a round of role's work now
// (its cadence survives a takeover).
func (e *Engine) roleDone(role string) {
	if !e.shared() {
		return
	}
	err := e.cat.Update(func(tx *catalog.Tx) error {
		cur, err := tx.Role(role)
		if err != nil || cur.Holder != e.hostID() {
			return err
		}
		cur.Last = e.now()
		return tx.PutRole(cur)
	})
	if err != nil {
		e.log.Warn().Err(err).Str("role", role).Msg("could not record the end of this round of the role's work")
	}
}

// roleLast is when role's work last finished on any host (zero: never,
// or one host).
func (e *Engine) roleLast(role string) time.Time {
	if !e.shared() {
		return time.Time{}
	}
	var last time.Time
	_ = e.cat.View(func(tx *catalog.Tx) error {
		r, err := tx.Role(role)
		last = r.Last
		return err
	})
	return last
}

// RoleView is who runs a once-per-archive loop, for the page and `tapefs
// library status`.
type RoleView struct {
	Name   string
	Holder string // "" nobody yet
	Alive  bool   // the holder's heartbeat lasts
}

// Roles lists the roles of a shared catalog by name (nil with one host).
func (e *Engine) Roles() ([]RoleView, error) {
	if !e.shared() {
		return nil, nil
	}
	var out []RoleView
	err := e.cat.View(func(tx *catalog.Tx) error {
		out = out[:0]
		v, err := e.readHosts(tx)
		if err != nil {
			return err
		}
		rs, err := tx.Roles()
		for _, r := range rs {
			out = append(out, RoleView{Name: r.Name, Holder: r.Holder, Alive: v.alive(r.Holder)})
		}
		return err
	})
	return out, err
}
