package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/tape"
)

// leasedLibrary is the tape library of a host sharing its cartridges with
// others: Acquire takes the cartridge's lease in the catalog (one host at
// a time, a new epoch at every take) before the drive, and the drive
// writes under that epoch (tape.FencedLibrary); Release gives the lease
// back. A cartridge another live host holds is waited for; one held by a
// host whose heartbeat lapsed is taken over — its half-written tape file
// is discarded by the take.
type leasedLibrary struct {
	tape.Library
	fl tape.FencedLibrary
	e  *Engine

	mu    sync.Mutex
	held  map[string]uint64        // cartridge -> epoch of this host's lease on it
	local map[string]chan struct{} // cartridge -> closed when this host's user of it is done
	// elsewhere is the cartridges live other hosts held when last read
	// (at seen), for choosing a cartridge nobody else is writing.
	elsewhere map[string]bool
	seen      time.Time
}

// leasedElsewhere reports whether another live host holds volser's lease,
// as read from the catalog at most a quarter lease ago.
func (l *leasedLibrary) leasedElsewhere(volser string) bool {
	l.mu.Lock()
	fresh := time.Since(l.seen) < min(l.e.lease()/4, 500*time.Millisecond)
	l.mu.Unlock()
	if !fresh {
		busy := map[string]bool{}
		err := l.e.cat.View(func(tx *catalog.Tx) error {
			v, err := l.e.readHosts(tx)
			if err != nil {
				return err
			}
			leases, err := tx.CartridgeLeases()
			for _, ls := range leases {
				if ls.Holder != "" && ls.Holder != l.e.hostID() && v.alive(ls.Holder) {
					busy[ls.VOLSER] = true
				}
			}
			return err
		})
		l.mu.Lock()
		if err == nil {
			l.elsewhere, l.seen = busy, time.Now()
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.elsewhere[volser]
}

// leasedElsewhere: see leasedLibrary; false with one host.
func (e *Engine) leasedElsewhere(volser string) bool {
	ll, ok := e.lib.(*leasedLibrary)
	return ok && ll.leasedElsewhere(volser)
}

func newLeasedLibrary(e *Engine, fl tape.FencedLibrary) *leasedLibrary {
	return &leasedLibrary{Library: fl, fl: fl, e: e, held: map[string]uint64{}, local: map[string]chan struct{}{}}
}

// leasedDrive is a drive under a cartridge lease.
type leasedDrive struct {
	tape.Drive
	volser string
	epoch  uint64
}

// ReadFrom keeps the in-kernel copy of member data (see tape's handle).
func (d *leasedDrive) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := d.Drive.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{d.Drive}, r)
}

// heldEpoch is the epoch of this host's lease on volser (0: none).
func (l *leasedLibrary) heldEpoch(volser string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[volser]
}

func (l *leasedLibrary) Acquire(ctx context.Context, volser string) (tape.Drive, error) {
	// One user of a cartridge on this host at a time: a second take would
	// bump the epoch under the first.
	for {
		l.mu.Lock()
		busy, ok := l.local[volser]
		if !ok {
			l.local[volser] = make(chan struct{})
			l.mu.Unlock()
			break
		}
		l.mu.Unlock()
		select {
		case <-busy:
		case <-ctx.Done():
			return nil, fmt.Errorf("acquire %s: %w", volser, ctx.Err())
		}
	}
	d, err := l.acquire(ctx, volser)
	if err != nil {
		l.doneLocal(volser)
	}
	return d, err
}

func (l *leasedLibrary) doneLocal(volser string) {
	l.mu.Lock()
	if c, ok := l.local[volser]; ok {
		close(c)
		delete(l.local, volser)
	}
	l.mu.Unlock()
}

func (l *leasedLibrary) acquire(ctx context.Context, volser string) (tape.Drive, error) {
	e := l.e
	waited := false
	for {
		if !e.holding() {
			return nil, fmt.Errorf("acquire %s: host %s: %w (its heartbeat is not renewed; it takes no cartridge)", volser, e.hostID(), catalog.ErrFenced)
		}
		epoch, holder, err := e.takeCartridge(volser)
		if err != nil {
			return nil, fmt.Errorf("acquire %s: lease: %w", volser, err)
		}
		if epoch == 0 {
			if !waited {
				e.log.Info().Str("volser", volser).Str("holder", holder).Str("host", e.hostID()).Msg("cartridge is in use by another host: waiting for it")
				waited = true
			}
			t := time.NewTimer(min(e.lease()/4, 500*time.Millisecond))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("acquire %s: %w", volser, ctx.Err())
			}
			continue
		}
		l.mu.Lock()
		l.held[volser] = epoch
		l.mu.Unlock()
		d, err := l.fl.AcquireFenced(ctx, volser, epoch)
		if err != nil {
			l.giveBack(volser, epoch)
			return nil, err
		}
		return &leasedDrive{Drive: d, volser: volser, epoch: epoch}, nil
	}
}

func (l *leasedLibrary) Release(dr tape.Drive) {
	d, ok := dr.(*leasedDrive)
	if !ok {
		l.fl.Release(dr) // not ours: the library says so
		return
	}
	l.fl.Release(d.Drive)
	l.giveBack(d.volser, d.epoch)
	l.doneLocal(d.volser)
}

// giveBack releases this host's lease on volser, if it still holds it at
// epoch (the epoch stays: the next take bumps it).
func (l *leasedLibrary) giveBack(volser string, epoch uint64) {
	l.mu.Lock()
	if l.held[volser] == epoch {
		delete(l.held, volser)
	}
	l.mu.Unlock()
	e := l.e
	err := e.cat.Update(func(tx *catalog.Tx) error {
		lease, err := tx.CartridgeLease(volser)
		if err != nil || lease.Holder != e.hostID() || lease.Epoch != epoch {
			return err
		}
		lease.Holder = ""
		return tx.PutCartridgeLease(lease)
	})
	if err != nil {
		// Harmless but slow: the others wait for the lease to lapse.
		e.log.Warn().Err(err).Str("volser", volser).Str("host", e.hostID()).Msg("cartridge lease could not be given back; other hosts wait until this host's lease lapses")
	}
}

// takeCartridge takes volser's lease for this host under a new epoch, or
// returns epoch 0 and the live host holding it.
func (e *Engine) takeCartridge(volser string) (epoch uint64, holder string, err error) {
	var taken string
	err = e.cat.Update(func(tx *catalog.Tx) error {
		epoch, holder, taken = 0, "", ""
		lease, err := tx.CartridgeLease(volser)
		if err != nil {
			return err
		}
		now, err := tx.Now()
		if err != nil {
			return err
		}
		if lease.Holder != "" && lease.Holder != e.hostID() {
			alive, err := tx.HolderAlive(lease.Holder, now)
			if err != nil {
				return err
			}
			if alive {
				holder = lease.Holder
				return nil
			}
			taken = lease.Holder
		}
		lease.Holder, lease.Epoch, lease.Since = e.hostID(), lease.Epoch+1, now
		epoch = lease.Epoch
		return tx.PutCartridgeLease(lease)
	})
	if err == nil && taken != "" {
		e.log.Warn().Str("volser", volser).Str("from", taken).Str("host", e.hostID()).Uint64("epoch", epoch).
			Msg("took over the cartridge of a host whose heartbeat lapsed; a tape file it left half-written is discarded")
	}
	return epoch, holder, err
}

// errNotFenced: a shared catalog needs a library that fences writes.
var errNotFenced = errors.New("archive: a library shared by several hosts must fence its writes (tape.FencedLibrary)")
