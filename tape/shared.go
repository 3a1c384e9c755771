package tape

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// AcquireFenced implements FencedLibrary (see there). In a library of one
// host it is Acquire.
func (l *library) AcquireFenced(ctx context.Context, volser string, epoch uint64) (Drive, error) {
	dr, err := l.Acquire(ctx, volser)
	if err != nil || !l.shared {
		return dr, err
	}
	h := dr.(*handle)
	h.epoch = epoch
	if err := l.claimEpoch(h); err != nil {
		l.Release(h)
		return nil, err
	}
	return h, nil
}

// claimEpoch reads h's cartridge afresh (another host may have written it
// since this one last did) and, under a newer epoch than the cartridge's,
// discards what the last holder left unfinished and writes INDEX.<epoch>,
// from which on every write of an older epoch is ignored by readers.
func (l *library) claimEpoch(h *handle) error {
	c := h.d.cart
	l.mu.Lock()
	capacity := c.idx.Capacity
	l.mu.Unlock()
	idx, gen, problem, err := loadCartridge(c.dir, c.volser, capacity, true)
	if err != nil {
		return fmt.Errorf("acquire %s: %w", c.volser, err)
	}
	l.mu.Lock()
	c.idx, c.problem = idx, problem
	if problem == "" {
		c.gen = gen
	}
	l.mu.Unlock()
	if problem != "" {
		return fmt.Errorf("acquire %s: cartridge is in error state (%s)", c.volser, problem)
	}
	switch {
	case idx.Epoch > h.epoch:
		return fmt.Errorf("acquire %s: %w (epoch %d is on the cartridge, the lease is at %d)", c.volser, ErrFenced, idx.Epoch, h.epoch)
	case idx.Epoch == h.epoch:
		return nil // held since the last claim: nothing to discard
	}
	// An erase a host left half done is finished (its new label put in
	// place); then INDEX.<epoch>, then the strays: a late writer of an
	// older epoch that commits in between is ignored either way.
	if _, err := finishRelabel(c.dir, &idx); err != nil {
		return fmt.Errorf("acquire %s: finish an interrupted erase: %w", c.volser, err)
	}
	if err := h.setIndex(c, idx); err != nil {
		return fmt.Errorf("acquire %s: %w", c.volser, err)
	}
	l.mu.Lock()
	idx = c.idx
	l.mu.Unlock()
	if err := removeStrays(c.dir, idx); err != nil {
		return fmt.Errorf("acquire %s: discard what the last holder left in %s: %w", c.volser, filepath.Base(c.dir), err)
	}
	return nil
}

// refreshEvery is how stale a shared library's view of the cartridges
// other hosts write may get before Cartridges reads their indexes again.
const refreshEvery = 2 * time.Second

// refresh reads again the index of every cartridge no drive of this host
// holds in use, at most every refreshEvery, so that the cartridges other
// hosts filled show as they are (for choosing where to append, and for the
// status). A held cartridge was read afresh when it was acquired.
func (l *library) refresh() {
	if !l.shared {
		return
	}
	l.mu.Lock()
	if time.Since(l.refreshed) < refreshEvery {
		l.mu.Unlock()
		return
	}
	l.refreshed = time.Now()
	var idle []*cartridge
	for _, v := range l.volsers {
		c := l.carts[v]
		if c.drive < 0 || !l.drives[c.drive].inUse {
			idle = append(idle, c)
		}
	}
	l.mu.Unlock()
	for _, c := range idle {
		l.mu.Lock()
		capacity := c.idx.Capacity
		l.mu.Unlock()
		idx, gen, problem, err := loadCartridge(c.dir, c.volser, capacity, true)
		if err != nil || problem != "" {
			// Kept as it was: a host may be rewriting it this moment; the
			// next acquire reads it again and says what is wrong.
			continue
		}
		l.mu.Lock()
		if c.drive < 0 || !l.drives[c.drive].inUse {
			c.idx, c.gen = idx, gen
		}
		l.mu.Unlock()
	}
}
