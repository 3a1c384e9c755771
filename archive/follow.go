package archive

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// Following the other hosts of a shared catalog. On PostgreSQL several
// daemons commit to one catalog; the catalog wakes every watcher when any
// of them appends events (catalog/watch.go). The follower then reads the
// events after the last one it saw — the log is gap-free in commit order,
// so nothing is missed — and publishes the changes they announce exactly
// as if this process had made them: the mount drops the kernel's cached
// entries, `status --wait` and the page wake up.
//
// The mount keeps workspace and batch directories in the kernel's caches
// for a long time only while it is told of every change: while the
// listener is down, ChangesFollowed is false and the mount hands out short
// timeouts; the follower polls the log meanwhile, and when the listener is
// back it reads everything it may have missed before saying so again.

const (
	// followPollDown is how often the log is read while the listener is
	// down.
	followPollDown = time.Second
	// followPollUp is how often it is read anyway while the listener is
	// up: a notification lost in a way the listener did not notice costs
	// at most this much delay.
	followPollUp = 30 * time.Second
	// followPage is how many events one read takes.
	followPage = 1000
)

// follower is the state of following a shared catalog.
type follower struct {
	shared   bool
	followed atomic.Bool // the listener is up and the log was read since it came up

	mu     sync.Mutex
	cursor uint64 // the last event read
}

func newFollower(cat *catalog.Catalog) *follower {
	return &follower{shared: cat.Shared()}
}

// ChangesFollowed reports whether every change to the catalog reaches the
// engine's subscribers at once: always on a catalog of this process alone,
// and on a shared one while its listener is up. The mount lets the kernel
// cache directories long only then.
func (e *Engine) ChangesFollowed() bool {
	return !e.follow.shared || e.follow.followed.Load()
}

// followLoop reads and publishes the other hosts' changes until the engine
// closes.
func (e *Engine) followLoop() {
	f := e.follow
	if !f.shared {
		return
	}
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		f.cursor, err = tx.LastEvent()
		return err
	}); err != nil {
		// Start from the beginning of what is left: a replay only drops
		// kernel entries that are already fresh.
		e.log.Warn().Err(err).Msg("reading the event log's end failed; following from its start")
	}
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	var up atomic.Bool
	// listens counts the listener's ups and downs: the log read after an
	// up covers everything only if no other came during the read.
	var listens atomic.Uint64
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lost := false // said so in the log; the callbacks run one at a time
		e.cat.Watch(ctx, func(err error) {
			switch {
			case err == nil:
				e.log.Info().Bool("again", lost).Msg("listening for other hosts' catalog changes")
				lost = false
			case !lost:
				// Once per loss, not at every reconnection attempt.
				e.log.Warn().Err(err).Msg("lost the catalog's change notifications: the mount caches directories briefly and the log is polled until they are back")
				lost = true
			}
			up.Store(err == nil)
			listens.Add(1)
			f.followed.Store(false)
			poke() // catch up (or start polling) now
		}, func(seq uint64) {
			f.mu.Lock()
			behind := seq == 0 || seq > f.cursor
			f.mu.Unlock()
			if behind {
				poke()
			}
		})
	}()
	defer func() { cancel(); <-done }()
	for {
		period := followPollUp
		if !up.Load() {
			period = followPollDown
		}
		t := time.NewTimer(period)
		select {
		case <-e.ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
		gen, wasUp := listens.Load(), up.Load()
		if err := e.readBack(); err != nil {
			f.followed.Store(false)
			e.log.Warn().Err(err).Msg("reading other hosts' catalog changes failed; trying again")
			continue
		}
		// Everything committed before the listener came up has been read:
		// from now on every commit wakes us.
		if wasUp && listens.Load() == gen {
			f.followed.Store(true)
		}
	}
}

// readBack reads the events after the cursor and publishes the changes of
// those this process did not record itself (their Origin is another's):
// its own it published when it committed them.
func (e *Engine) readBack() error {
	f := e.follow
	for {
		f.mu.Lock()
		after := f.cursor
		f.mu.Unlock()
		var evs []catalog.Event
		if err := e.cat.View(func(tx *catalog.Tx) error {
			var err error
			evs, err = tx.Events(after, followPage, "")
			return err
		}); err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		var cs []Change
		carts := false
		f.mu.Lock()
		for _, ev := range evs {
			f.cursor = max(f.cursor, ev.Seq)
			if ev.Origin == e.cat.Origin() {
				continue
			}
			carts = carts || ev.Kind == EvCartridge
			if c, ok := remoteChange(ev); ok {
				cs = append(cs, c)
			}
		}
		f.mu.Unlock()
		if carts {
			// Root changed a cartridge's state or pool on another host:
			// reads and copies here must honour it too.
			e.reloadCartRecords()
		}
		if len(cs) > 0 {
			for _, c := range cs {
				e.log.Debug().Str("workspace", c.Workspace).Uint64("batch", c.Batch).Str("change", string(c.Kind)).Msg("change by another host")
			}
			e.changes.publish(cs...)
		}
		e.notify() // status --wait, the page
		if len(evs) < followPage {
			return nil
		}
	}
}

// remoteChange is the change an event committed by another host announces.
// A seal there is a new batch here; its put/ entry was in the other host's
// put/, so there is no entry to drop.
func remoteChange(ev catalog.Event) (Change, bool) {
	if ev.Batch != 0 && ev.Kind == EvSealed {
		return Change{Kind: ChangeSealed, Workspace: ev.Workspace, Batch: ev.Batch, State: ev.State}, true
	}
	return changeOf(ev)
}
