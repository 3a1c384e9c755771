package tape

// Locking: the library has one mutex, library.mu. It guards what several
// goroutines share: which drive holds which cartridge, drive states and
// counters, and every cartridge's index. Work that takes time — simulated
// sleeps, tape file I/O, fsync — is done without it by the goroutine that
// holds the drive, so a slow drive never stalls Acquire, Drives or
// Cartridges on another. There is no second lock, hence no lock order.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of a new library (Config zero values).
const (
	defaultDrives     = 2
	defaultCartridges = 20
	defaultCapacity   = 18_000_000_000_000 // LTO-9 native
	defaultPrefix     = "TF"
	maxCartridges     = 9999 // VOLSERs carry 4 digits
)

// errLibraryClosed is returned by Acquire and by drive operations after
// Close.
var errLibraryClosed = errors.New("tape library is closed")

// library is the virtual library. See cartridge.go for its layout on disk.
type library struct {
	dir    string
	timing Timing
	scale  float64
	// idleHold is the real time a released cartridge keeps its drive before
	// it may be unloaded for another: Config.IdleUnload scaled like every
	// other simulated duration, so with TimeScale 0 it never holds.
	idleHold time.Duration
	now      func() time.Time // wall clock for idle holds; tests drive it
	lock     *os.File         // flock'ed Dir/LOCK: one process per library (shared lock when shared)
	shared   bool             // several hosts use the directory (Config.Shared)
	// refreshed is when refresh last read the indexes (shared; guarded by mu)
	refreshed time.Time
	closed    atomic.Bool

	mu sync.Mutex
	// changed is closed (and replaced) whenever a drive is released or a
	// cartridge returns to its slot: Acquire waits on it with a select, which
	// a sync.Cond cannot combine with ctx.Done.
	changed chan struct{}
	drives  []*drive
	carts   map[string]*cartridge
	volsers []string // in slot order
	total   Counters
}

// cartridge is one cartridge of the library.
type cartridge struct {
	volser string
	dir    string

	// guarded by library.mu; idx is replaced whole, never modified in place,
	// and only by the goroutine holding the drive that holds the cartridge.
	idx     cartridgeIndex
	gen     int    // the label's generation (volumeLabel.Generation)
	problem string // why the cartridge is in the error state; "" when fine
	drive   int    // index of the drive holding (or mounting) it; -1 in its slot
}

// drive is one drive of the library.
type drive struct {
	index int

	// guarded by library.mu
	cart       *cartridge // loaded, or being mounted
	state      DriveState
	inUse      bool
	releasedAt time.Time
	counters   Counters

	// Owned by the goroutine that holds the drive (Acquire to Release); the
	// mutex hand-over in Acquire/Release orders them between holders.
	pos    position
	rd     *os.File // open committed tape file rdFile, for Read
	rdFile int
	wr     *os.File // the .partial tape file wrFile being written
	wrFile int
	wrBase int64 // bytes on tape before wrFile
	wrSize int64
	debt   time.Duration // real sleep owed but not yet slept (see pace)
	// streamed is when the last streaming step (a read or a write)
	// was paced; zero after any other step.
	streamed time.Time
}

// position is a place on a tape: byte off of tape file file.
type position struct {
	file int
	off  int64
}

func openVirtual(cfg Config) (Library, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open tape library: no directory configured")
	}
	if cfg.Drives < 0 || cfg.Cartridges < 0 || cfg.Capacity < 0 || cfg.TimeScale < 0 || cfg.IdleUnload < 0 {
		return nil, fmt.Errorf("open tape library %s: negative drives, cartridges, capacity, time scale or idle unload", cfg.Dir)
	}
	if cfg.Cartridges > maxCartridges {
		return nil, fmt.Errorf("open tape library %s: %d cartridges, at most %d (VOLSERs have 4 digits)", cfg.Dir, cfg.Cartridges, maxCartridges)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("open tape library: %w", err)
	}
	lock, err := lockLibrary(cfg.Dir, cfg.Shared)
	if err != nil {
		return nil, err
	}
	l, err := openLocked(cfg, lock)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("open tape library %s: %w", cfg.Dir, err)
	}
	return l, nil
}

// lockLibrary takes an exclusive flock on Dir/LOCK, so that two daemons
// started on the same home do not write the same cartridges. The kernel
// drops the lock when the process dies, so a crash leaves nothing to clean.
//
// A shared library takes the lock shared: hosts sharing it keep each other
// company, and keep out a daemon that would open it as its own.
func lockLibrary(dir string, shared bool) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open tape library: %w", err)
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) && shared {
			return nil, fmt.Errorf("open tape library %s: in use by a tapefs that does not share it (lock %s is held exclusively); start every host with the shared library setting", dir, path)
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open tape library %s: in use by another tapefs (lock %s is held); stop the other daemon first, or share the library between hosts (PostgreSQL catalog and --shared-library)", dir, path)
		}
		return nil, fmt.Errorf("open tape library %s: lock %s: %w", dir, path, err)
	}
	return f, nil
}

func openLocked(cfg Config, lock *os.File) (*library, error) {
	l := &library{
		dir:     cfg.Dir,
		timing:  cfg.Timing,
		scale:   cfg.TimeScale,
		now:     time.Now,
		lock:    lock,
		shared:  cfg.Shared,
		changed: make(chan struct{}),
		carts:   make(map[string]*cartridge),
	}
	if l.timing == (Timing{}) {
		l.timing = LTO9()
	}
	l.idleHold = time.Duration(float64(cfg.IdleUnload) * cfg.TimeScale)

	meta, existed, err := loadMeta(cfg)
	if err != nil {
		return nil, err
	}
	oldCartridges := 0
	if existed {
		oldCartridges = meta.Cartridges
	}
	// An existing library only grows: zero or smaller counts keep it as it
	// is, so a daemon started without flags never shrinks or reshapes it.
	grown := !existed
	if cfg.Drives > meta.Drives {
		meta.Drives, grown = cfg.Drives, true
	}
	if cfg.Cartridges > meta.Cartridges {
		meta.Cartridges, grown = cfg.Cartridges, true
	}

	// Label new cartridges before library.json names them, so that a crash
	// in between leaves at worst labelled cartridges nobody lists yet.
	now := l.now()
	for i := oldCartridges + 1; i <= meta.Cartridges; i++ {
		volser := fmt.Sprintf("%s%04d", meta.Prefix, i)
		if err := labelCartridge(filepath.Join(l.dir, volser), volser, meta.Capacity, now); err != nil {
			return nil, fmt.Errorf("label %s: %w", volser, err)
		}
	}
	if grown {
		if err := writeJSONAtomic(filepath.Join(l.dir, libraryFile), meta); err != nil {
			return nil, err
		}
	}

	for i := 1; i <= meta.Cartridges; i++ {
		volser := fmt.Sprintf("%s%04d", meta.Prefix, i)
		c := &cartridge{volser: volser, dir: filepath.Join(l.dir, volser), drive: -1}
		idx, gen, problem, err := loadCartridge(c.dir, volser, meta.Capacity, l.shared)
		if err != nil {
			return nil, fmt.Errorf("cartridge %s: %w", volser, err)
		}
		c.idx, c.gen, c.problem = idx, gen, problem
		l.carts[volser] = c
		l.volsers = append(l.volsers, volser)
	}
	drives := meta.Drives
	if cfg.Shared && cfg.Drives > 0 {
		drives = cfg.Drives // each host drives its own
	}
	for i := 0; i < drives; i++ {
		l.drives = append(l.drives, &drive{index: i, state: DriveEmpty})
	}
	return l, nil
}

// loadMeta reads library.json, or makes the description of a new library
// from cfg and the defaults.
func loadMeta(cfg Config) (meta libraryMeta, existed bool, err error) {
	data, err := os.ReadFile(filepath.Join(cfg.Dir, libraryFile))
	if errors.Is(err, os.ErrNotExist) {
		meta = libraryMeta{
			Format:     formatVersion,
			Prefix:     cfg.Prefix,
			Capacity:   cfg.Capacity,
			Drives:     cfg.Drives,
			Cartridges: cfg.Cartridges,
		}
		if meta.Prefix == "" {
			meta.Prefix = defaultPrefix
		}
		if meta.Capacity == 0 {
			meta.Capacity = defaultCapacity
		}
		if meta.Drives == 0 {
			meta.Drives = defaultDrives
		}
		if meta.Cartridges == 0 {
			meta.Cartridges = defaultCartridges
		}
		if err := checkPrefix(meta.Prefix); err != nil {
			return meta, false, err
		}
		return meta, false, nil
	}
	if err != nil {
		return meta, false, err
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return meta, true, fmt.Errorf("%s: %w", libraryFile, err)
	}
	if meta.Format != formatVersion {
		return meta, true, fmt.Errorf("%s: format %d, this tapefs reads format %d; use the tapefs that wrote it", libraryFile, meta.Format, formatVersion)
	}
	if err := checkPrefix(meta.Prefix); err != nil {
		return meta, true, fmt.Errorf("%s: %w", libraryFile, err)
	}
	if meta.Capacity <= 0 || meta.Drives <= 0 || meta.Cartridges < 0 || meta.Cartridges > maxCartridges {
		return meta, true, fmt.Errorf("%s: capacity %d, %d drives, %d cartridges make no library", libraryFile, meta.Capacity, meta.Drives, meta.Cartridges)
	}
	return meta, true, nil
}

// checkPrefix accepts what a barcode label carries: upper-case letters and
// digits. It also keeps VOLSERs safe as directory names.
func checkPrefix(p string) error {
	if p == "" || len(p) > 4 {
		return fmt.Errorf("VOLSER prefix %q: want 1 to 4 characters", p)
	}
	for _, r := range p {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return fmt.Errorf("VOLSER prefix %q: only A-Z and 0-9", p)
		}
	}
	return nil
}

// broadcast wakes every Acquire waiting for a change. Callers hold l.mu.
func (l *library) broadcast() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *library) Acquire(ctx context.Context, volser string) (Drive, error) {
	l.mu.Lock()
	c := l.carts[volser]
	if c == nil {
		l.mu.Unlock()
		return nil, fmt.Errorf("acquire %s: %w", volser, ErrNoCartridge)
	}
	var d *drive
	for {
		if l.closed.Load() {
			l.mu.Unlock()
			return nil, fmt.Errorf("acquire %s: %w", volser, errLibraryClosed)
		}
		if c.problem != "" {
			l.mu.Unlock()
			return nil, fmt.Errorf("acquire %s: cartridge is in error state (%s); its copies must be read from another cartridge", volser, c.problem)
		}
		if err := ctx.Err(); err != nil {
			l.mu.Unlock()
			return nil, fmt.Errorf("acquire %s: %w", volser, err)
		}
		var wait time.Duration
		d, wait = l.pickDrive(c)
		if d != nil {
			break
		}
		changed := l.changed
		l.mu.Unlock()
		var timer *time.Timer
		var expired <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			expired = timer.C
		}
		select {
		case <-changed:
		case <-expired:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		l.mu.Lock()
	}

	d.inUse = true
	h := &handle{lib: l, d: d}
	if d.cart == c {
		d.state = DriveIdle
		l.mu.Unlock()
		return h, nil
	}
	// Claim the cartridge before letting go of the lock, so that a second
	// Acquire for it waits for this mount instead of starting its own.
	old := d.cart
	c.drive = d.index
	if old != nil {
		d.state = DriveUnloading
	} else {
		d.cart, d.state = c, DriveMounting
	}
	l.mu.Unlock()
	l.mount(d, old, c)
	return h, nil
}

// pickDrive chooses the drive for c, or says how long to wait before a held
// cartridge may be unloaded (0: until something changes). Callers hold l.mu.
func (l *library) pickDrive(c *cartridge) (*drive, time.Duration) {
	if c.drive >= 0 {
		if d := l.drives[c.drive]; !d.inUse {
			return d, 0
		}
		return nil, 0 // in a drive someone holds (or mid-mount): wait for it
	}
	var victim *drive
	var wait time.Duration
	now := l.now()
	for _, d := range l.drives {
		if d.inUse {
			continue
		}
		if d.cart == nil {
			return d, 0
		}
		if hold := l.idleHold - now.Sub(d.releasedAt); hold > 0 {
			if wait == 0 || hold < wait {
				wait = hold
			}
			continue
		}
		if victim == nil || d.releasedAt.Before(victim.releasedAt) {
			victim = d // least recently used
		}
	}
	if victim != nil {
		return victim, 0
	}
	return nil, wait
}

// mount unloads old (if any) from d and loads c. The robot cannot be
// stopped halfway, so it ignores the caller's context.
func (l *library) mount(d *drive, old, c *cartridge) {
	t := l.timing
	if old != nil {
		l.step(d, DriveUnloading, (t.Unload + t.RobotMove).Seconds(), Counters{Unmounts: 1})
		l.mu.Lock()
		old.drive = -1
		d.cart, d.state = c, DriveMounting
		l.broadcast() // old is back in its slot
		l.mu.Unlock()
	}
	l.step(d, DriveMounting, (t.RobotMove + t.Load).Seconds(), Counters{Mounts: 1})
	d.pos = position{file: 1} // the load reads the label
	l.mu.Lock()
	d.state = DriveIdle
	l.mu.Unlock()
}

// Release panics when given a Drive that did not come from this library's
// Acquire: that is a bug in the caller, not a condition to handle.
func (l *library) Release(dr Drive) {
	h, ok := dr.(*handle)
	if !ok || h.lib != l {
		panic("tape: Release of a drive not acquired from this library")
	}
	if h.released.Swap(true) {
		return
	}
	d := h.d
	// An uncommitted tape file is lost, as on a real drive unloaded without
	// a filemark. After Close the files belong to whoever opens the library
	// next, so only the handles are let go.
	d.abandonWrite(!l.closed.Load())
	d.closeReader()
	l.mu.Lock()
	d.inUse = false
	if d.cart != nil {
		d.state = DriveIdle
	}
	d.releasedAt = l.now()
	l.broadcast()
	l.mu.Unlock()
}

func (l *library) Cartridges() []CartridgeInfo {
	l.refresh()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]CartridgeInfo, 0, len(l.volsers))
	for _, v := range l.volsers {
		out = append(out, l.carts[v].info())
	}
	return out
}

func (l *library) Cartridge(volser string) (CartridgeInfo, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.carts[volser]
	if c == nil {
		return CartridgeInfo{}, fmt.Errorf("cartridge %s: %w", volser, ErrNoCartridge)
	}
	return c.info(), nil
}

// info reports c. Callers hold library.mu.
func (c *cartridge) info() CartridgeInfo {
	ci := CartridgeInfo{
		VOLSER:     c.volser,
		Capacity:   c.idx.Capacity,
		Used:       c.idx.used(len(c.idx.Files)),
		TapeFiles:  len(c.idx.Files),
		Drive:      c.drive,
		Generation: c.gen,
	}
	switch {
	case c.problem != "":
		ci.State = CartridgeError
	case c.idx.Full:
		ci.State = CartridgeFull
	case len(c.idx.Files) <= 1:
		ci.State = CartridgeScratch
	default:
		ci.State = CartridgeFilling
	}
	return ci
}

// used is the number of bytes taken by tape files before file n, i.e. the
// absolute position of the start of tape file n.
func (idx cartridgeIndex) used(n int) int64 {
	var sum int64
	for _, f := range idx.Files[:n] {
		sum += f.Size
	}
	return sum
}

func (l *library) Drives() []DriveInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]DriveInfo, 0, len(l.drives))
	for _, d := range l.drives {
		di := DriveInfo{Index: d.index, State: d.state, InUse: d.inUse, Counters: d.counters}
		if d.cart != nil {
			di.VOLSER = d.cart.volser
			if !d.inUse && d.state == DriveIdle {
				// The last holder wrote pos before Release took mu.
				di.HeadFile, di.HeadOffset = d.pos.file, d.pos.off
			}
		}
		out = append(out, di)
	}
	return out
}

func (l *library) Timing() Timing { return l.timing }

func (l *library) Model() Model { return Model{Timing: l.timing, TimeScale: l.scale} }

func (l *library) Where(volser string, n int, off int64) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.carts[volser]
	if c == nil {
		return 0, 0, fmt.Errorf("cartridge %s: %w", volser, ErrNoCartridge)
	}
	n = max(0, min(n, len(c.idx.Files)))
	return c.idx.used(n) + off, c.idx.Capacity, nil
}

func (l *library) Counters() Counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Close lets go of the library. Drives still held at Close are abandoned as
// a crash would abandon them: their uncommitted tape files stay on disk
// until the next Open deletes them, and every operation on them fails.
func (l *library) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.mu.Lock()
	l.broadcast() // waiting Acquires fail
	l.mu.Unlock()
	return l.lock.Close() // drops the flock
}

// step accounts for one step of drive d — its new state, counters and
// simulated seconds — and then really sleeps TimeScale × that time.
func (l *library) step(d *drive, state DriveState, secs float64, delta Counters) {
	delta.SimSeconds = secs
	l.mu.Lock()
	d.state = state
	d.counters = d.counters.Add(delta)
	l.total = l.total.Add(delta)
	l.mu.Unlock()
	l.pace(d, state == DriveReading || state == DriveWriting, secs)
}

// minSleep batches the tiny sleeps of many small reads and writes: a timer
// cannot sleep a few microseconds, so owed time is collected until it is
// worth a sleep, and oversleeping is paid back from the next steps.
const minSleep = 2 * time.Millisecond

// A drive streams through its buffer on its own while the host deals with
// the previous block (a recall writes it to the cache, migration reads the
// next member): the host's time since the previous streaming step counts
// towards this one, up to what this step costs. Without that credit a
// reader would pay the drive's time plus its own, and could never stream
// at the drive's rate. No credit is banked beyond one step: a host slower
// than the drive gains nothing later (a real drive would stop and
// reposition).
func (l *library) pace(d *drive, streaming bool, secs float64) {
	if !streaming {
		// Any other step (a locate, a filemark, even one that costs
		// nothing in this timing) stops the stream: the next read earns
		// no credit for the host's time before it.
		d.streamed = time.Time{}
	}
	if l.scale <= 0 || secs <= 0 {
		return
	}
	owed := time.Duration(secs * l.scale * float64(time.Second))
	if streaming && !d.streamed.IsZero() {
		owed -= min(time.Since(d.streamed), owed)
	}
	d.debt += owed
	if d.debt >= minSleep {
		start := time.Now()
		time.Sleep(d.debt)
		d.debt -= time.Since(start)
	}
	if streaming {
		d.streamed = time.Now()
	} else {
		d.streamed = time.Time{}
	}
}
