package tape

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
)

// handle is the Drive a caller gets from Acquire. Each Acquire makes a new
// one, so a handle kept after Release fails loudly instead of driving a tape
// that now belongs to someone else.
type handle struct {
	lib      *library
	d        *drive
	released atomic.Bool
	epoch    uint64 // lease epoch the cartridge is written under (0: a library of one host)
}

func (h *handle) Index() int { return h.d.index }

func (h *handle) VOLSER() string {
	h.lib.mu.Lock()
	defer h.lib.mu.Unlock()
	return h.d.cart.volser
}

// check refuses operations on a released handle or a closed library.
func (h *handle) check(op string) error {
	if h.released.Load() {
		return fmt.Errorf("tape drive %d: %s after Release", h.d.index, op)
	}
	if h.lib.closed.Load() {
		return fmt.Errorf("tape drive %d: %s: %w", h.d.index, op, errLibraryClosed)
	}
	return nil
}

// snapshot returns the loaded cartridge and its index. The index is never
// modified in place, so it may be read after the lock is let go.
func (h *handle) snapshot() (*cartridge, cartridgeIndex) {
	h.lib.mu.Lock()
	defer h.lib.mu.Unlock()
	c := h.d.cart
	return c, c.idx
}

// setIndex makes idx the cartridge's index: durable first (INDEX replaced
// atomically), then visible to Cartridges.
//
// In a shared library the index goes to INDEX.<epoch>; one of a newer
// epoch means another host holds the cartridge now, and this host's
// writes are refused (ErrFenced). A newer one written just after this
// check still wins: readers take the index of the highest epoch.
func (h *handle) setIndex(c *cartridge, idx cartridgeIndex) error {
	idx.Epoch = h.epoch
	if h.lib.shared {
		if _, newest, err := newestIndex(c.dir); err == nil && newest > h.epoch {
			return fmt.Errorf("%s: %w (epoch %d is on the cartridge, this host writes under %d)", c.volser, ErrFenced, newest, h.epoch)
		}
	}
	if err := writeJSONAtomic(filepath.Join(c.dir, indexFileName(h.epoch)), idx); err != nil {
		return fmt.Errorf("%s: write INDEX: %w", c.volser, err)
	}
	h.lib.mu.Lock()
	c.idx = idx
	h.lib.mu.Unlock()
	return nil
}

func (h *handle) Locate(n int, off int64) error {
	if err := h.check("locate"); err != nil {
		return err
	}
	d := h.d
	c, idx := h.snapshot()
	count := len(idx.Files)
	switch {
	case n < 1 || n > count:
		return fmt.Errorf("locate %s file %d: %w (%d tape files after the label)", c.volser, n, ErrNoSuchFile, count-1)
	case n == count && off != 0:
		return fmt.Errorf("locate %s file %d offset %d: past end of data", c.volser, n, off)
	case n < count && (off < 0 || off > idx.Files[n].Size):
		return fmt.Errorf("locate %s file %d offset %d: outside the file (%d bytes)", c.volser, n, off, idx.Files[n].Size)
	}
	// Moving away from a tape file being written loses it: only a filemark
	// commits. This is also how a caller abandons an aggregate.
	d.abandonWrite(true)

	from := idx.used(d.pos.file) + d.pos.off
	to := idx.used(n) + off
	if from == to {
		d.pos = position{n, off}
		return nil
	}
	dist := to - from
	if dist < 0 {
		dist = -dist
	}
	t := h.lib.timing
	secs := t.LocateBase.Seconds() + t.LocateFull.Seconds()*float64(dist)/float64(idx.Capacity)
	h.lib.step(d, DriveLocating, secs, Counters{Locates: 1})
	d.pos = position{n, off}
	h.lib.mu.Lock()
	d.state = DriveIdle
	h.lib.mu.Unlock()
	return nil
}

func (h *handle) SeekEOD() (int, error) {
	if err := h.check("seek to end of data"); err != nil {
		return 0, err
	}
	_, idx := h.snapshot()
	n := len(idx.Files)
	return n, h.Locate(n, 0)
}

func (h *handle) Read(p []byte) (int, error) {
	if err := h.check("read"); err != nil {
		return 0, err
	}
	d := h.d
	c, idx := h.snapshot()
	if d.wr != nil {
		return 0, fmt.Errorf("read %s: drive is writing tape file %d; write a filemark or locate first", c.volser, d.wrFile)
	}
	if d.pos.file >= len(idx.Files) {
		return 0, io.EOF // end of data
	}
	size := idx.Files[d.pos.file].Size
	if d.pos.off >= size {
		return 0, io.EOF // the filemark
	}
	if len(p) == 0 {
		return 0, nil
	}
	if d.rd == nil || d.rdFile != d.pos.file {
		d.closeReader()
		f, err := os.Open(filepath.Join(c.dir, idx.Files[d.pos.file].name()))
		if err != nil {
			// The index says the tape file is there: its absence is
			// damage to the medium, not a name that does not exist.
			return 0, &MediumError{VOLSER: c.volser, TapeFile: d.pos.file, Err: err}
		}
		d.rd, d.rdFile = f, d.pos.file
	}
	if rest := size - d.pos.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := d.rd.ReadAt(p, d.pos.off)
	d.pos.off += int64(n)
	h.lib.step(d, DriveReading, h.streamSeconds(n), Counters{BytesRead: int64(n)})
	if n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // shorter on disk than INDEX says
		}
		return n, &MediumError{VOLSER: c.volser, TapeFile: d.pos.file, Err: fmt.Errorf("at byte %d: %w", d.pos.off, err)}
	}
	return n, nil
}

func (h *handle) streamSeconds(n int) float64 {
	if rate := h.lib.timing.StreamRate; rate > 0 {
		return float64(n) / float64(rate)
	}
	return 0
}

func (h *handle) Write(p []byte) (int, error) {
	n, err := h.append(int64(len(p)), func(f *os.File) (int64, error) {
		n, err := f.Write(p)
		return int64(n), err
	})
	return int(n), err
}

// ReadFrom appends what r gives, as Write does. When r is an
// io.LimitedReader over a file, the bytes go from file to tape file inside
// the kernel (copy_file_range), as a drive would DMA them: the aggregate
// writer passes member data this way.
func (h *handle) ReadFrom(r io.Reader) (int64, error) {
	lr, ok := r.(*io.LimitedReader)
	if !ok {
		return io.Copy(writeOnly{h}, r)
	}
	return h.append(lr.N, func(f *os.File) (int64, error) { return f.ReadFrom(lr) })
}

// append writes up to size bytes with write at the end of the tape file
// being written (starting one if needed), refusing past capacity.
func (h *handle) append(size int64, write func(*os.File) (int64, error)) (int64, error) {
	if err := h.check("write"); err != nil {
		return 0, err
	}
	d := h.d
	if d.wr == nil {
		if err := h.beginWrite(); err != nil {
			return 0, err
		}
	}
	c, idx := h.snapshot()
	if d.wrBase+d.wrSize+size > idx.Capacity {
		return 0, h.endOfTape(c, idx)
	}
	n, err := write(d.wr)
	d.wrSize += n
	d.pos.off = d.wrSize
	h.lib.step(d, DriveWriting, h.streamSeconds(int(n)), Counters{BytesWritten: n})
	if err != nil {
		return n, fmt.Errorf("write %s file %d: %w", c.volser, d.wrFile, err)
	}
	return n, nil
}

// writeOnly hides ReadFrom so io.Copy uses Write.
type writeOnly struct{ w io.Writer }

func (w writeOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// beginWrite starts a tape file at the current position: end of data, or
// the start of tape file n, which (as on real tape) destroys file n and
// every file after it.
func (h *handle) beginWrite() error {
	d := h.d
	c, idx := h.snapshot()
	count := len(idx.Files)
	n := d.pos.file
	if d.pos.off != 0 {
		return fmt.Errorf("write %s: positioned at offset %d inside tape file %d; a tape is written at end of data or at the start of a tape file", c.volser, d.pos.off, n)
	}
	if n == count && idx.Full {
		return ErrEndOfTape
	}
	d.closeReader()
	if n < count {
		// INDEX forgets the files first; the files themselves go after, so a
		// crash in between leaves strays that Open deletes, never an INDEX
		// naming a file that is gone.
		cut := idx
		cut.Files = slices.Clone(idx.Files[:n])
		cut.Full = false
		if err := h.setIndex(c, cut); err != nil {
			return fmt.Errorf("write %s: overwrite from tape file %d: %w", c.volser, n, err)
		}
		for i := n; i < count; i++ {
			if err := os.Remove(filepath.Join(c.dir, idx.Files[i].name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("write %s: overwrite from tape file %d: %w", c.volser, n, err)
			}
		}
	}
	if h.lib.shared {
		if _, newest, err := newestIndex(c.dir); err == nil && newest > h.epoch {
			return fmt.Errorf("write %s file %d: %w (epoch %d is on the cartridge, this host writes under %d)", c.volser, n, ErrFenced, newest, h.epoch)
		}
	}
	f, err := os.OpenFile(filepath.Join(c.dir, partialName(n, h.epoch)), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s file %d: %w", c.volser, n, err)
	}
	d.wr, d.wrFile, d.wrBase, d.wrSize = f, n, idx.used(n), 0
	return nil
}

// endOfTape handles a write past capacity: the tape file being written is
// lost and the cartridge is full from now on.
func (h *handle) endOfTape(c *cartridge, idx cartridgeIndex) error {
	h.d.abandonWrite(true)
	full := idx
	full.Full = true
	if err := h.setIndex(c, full); err != nil {
		return errors.Join(ErrEndOfTape, err)
	}
	return ErrEndOfTape
}

func (h *handle) WriteFilemark() error {
	if err := h.check("write filemark"); err != nil {
		return err
	}
	d := h.d
	if d.wr == nil {
		// A filemark with no data before it is an empty tape file, as on
		// real tape.
		if err := h.beginWrite(); err != nil {
			return err
		}
	}
	c, idx := h.snapshot()
	n, size := d.wrFile, d.wrSize
	partial := filepath.Join(c.dir, partialName(n, h.epoch))
	committed := filepath.Join(c.dir, tapeFileName(n, h.epoch))
	err := d.wr.Sync()
	if cerr := d.wr.Close(); err == nil {
		err = cerr
	}
	d.wr = nil
	if err == nil {
		err = os.Rename(partial, committed)
	}
	if err == nil {
		err = syncEntries(c.dir)
	}
	if err == nil {
		next := idx
		next.Files = append(slices.Clone(idx.Files), indexFile{N: n, Size: size, Epoch: h.epoch})
		err = h.setIndex(c, next)
	}
	if err != nil {
		os.Remove(partial)
		os.Remove(committed)
		d.pos = position{n, 0}
		return fmt.Errorf("write filemark %s file %d: %w", c.volser, n, err)
	}
	d.pos = position{n + 1, 0}
	h.lib.step(d, DriveWriting, h.lib.timing.Filemark.Seconds(), Counters{Filemarks: 1})
	return nil
}

func (h *handle) Position() (int, int64) { return h.d.pos.file, h.d.pos.off }

func (h *handle) Remaining() int64 {
	d := h.d
	_, idx := h.snapshot()
	count := len(idx.Files)
	var used int64
	switch {
	case d.wr != nil:
		used = d.wrBase + d.wrSize
	case d.pos.off == 0 && d.pos.file < count:
		used = idx.used(d.pos.file) // a write here destroys what follows
	case idx.Full:
		return 0
	default:
		used = idx.used(count)
	}
	if rest := idx.Capacity - used; rest > 0 {
		return rest
	}
	return 0
}

// abandonWrite drops the tape file being written, if any, and goes back to
// its start (end of data). remove is false after Close, when the file on
// disk is no longer this process's to delete.
func (d *drive) abandonWrite(remove bool) {
	if d.wr == nil {
		return
	}
	name := d.wr.Name()
	d.wr.Close()
	d.wr = nil
	if remove {
		os.Remove(name)
	}
	d.pos = position{d.wrFile, 0}
	d.wrSize = 0
}

func (d *drive) closeReader() {
	if d.rd != nil {
		d.rd.Close()
		d.rd = nil
	}
}

// Erase rewrites the cartridge from its label (see Drive.Erase). The
// steps, each durable before the next: the new label is written as tape
// file 0's .partial; INDEX is replaced by one listing only the new label,
// with Relabel set (the erase is now decided); the label is renamed in
// place; the tape files after it are removed; Relabel is cleared. Open
// finishes an erase a crash interrupted after the INDEX step
// (finishRelabel) and otherwise deletes the .partial as a stray.
func (h *handle) Erase() error {
	if err := h.check("erase"); err != nil {
		return err
	}
	d := h.d
	d.abandonWrite(true)
	d.closeReader()
	c, idx := h.snapshot()
	h.lib.mu.Lock()
	gen := c.gen + 1
	h.lib.mu.Unlock()
	label, err := labelBytes(c.volser, h.lib.now(), gen)
	if err != nil {
		return fmt.Errorf("erase %s: %w", c.volser, err)
	}
	partial := filepath.Join(c.dir, partialName(0, h.epoch))
	if err := writeFileAtomic(partial, label); err != nil {
		return fmt.Errorf("erase %s: write the new label: %w", c.volser, err)
	}
	erased := cartridgeIndex{Format: idx.Format, VOLSER: idx.VOLSER, Capacity: idx.Capacity,
		Files: []indexFile{{N: 0, Size: int64(len(label)), Epoch: h.epoch}}, Relabel: true, Epoch: h.epoch}
	if err := writeJSONAtomic(filepath.Join(c.dir, indexFileName(h.epoch)), erased); err != nil {
		os.Remove(partial)
		return fmt.Errorf("erase %s: write INDEX: %w", c.volser, err)
	}
	// From here on the erase has happened: what is left to do, Open does
	// too, so a failure below leaves the cartridge in the error state
	// until the library is opened again rather than half erased.
	fail := func(err error) error {
		h.lib.mu.Lock()
		c.problem = fmt.Sprintf("erase interrupted: %v (reopen the library to finish it)", err)
		h.lib.mu.Unlock()
		return fmt.Errorf("erase %s: %w", c.volser, err)
	}
	if err := os.Rename(partial, filepath.Join(c.dir, erased.Files[0].name())); err != nil {
		return fail(err)
	}
	if err := syncEntries(c.dir); err != nil {
		return fail(err)
	}
	for i := 1; i < len(idx.Files); i++ {
		if err := os.Remove(filepath.Join(c.dir, idx.Files[i].name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(err)
		}
	}
	if old := idx.Files[0].name(); old != erased.Files[0].name() {
		os.Remove(filepath.Join(c.dir, old)) // the old label of another epoch; a stray otherwise
	}
	erased.Relabel = false
	if err := h.setIndex(c, erased); err != nil {
		return fail(err)
	}
	h.lib.mu.Lock()
	c.gen = gen
	h.lib.mu.Unlock()
	// Rewind to the beginning of tape, write the label and its filemark.
	from := idx.used(d.pos.file) + d.pos.off
	t := h.lib.timing
	h.lib.step(d, DriveLocating, t.LocateBase.Seconds()+t.LocateFull.Seconds()*float64(from)/float64(max(idx.Capacity, 1)), Counters{Locates: 1})
	h.lib.step(d, DriveWriting, h.streamSeconds(len(label))+t.Filemark.Seconds(), Counters{BytesWritten: int64(len(label)), Filemarks: 1})
	d.pos = position{1, 0}
	h.lib.mu.Lock()
	d.state = DriveIdle
	h.lib.mu.Unlock()
	return nil
}
