package fs

import (
	"context"
	"sync"
	"time"
)

// entryKey names a top-level entry of a workspace's put/.
type entryKey struct{ ws, entry string }

// openHandle is the bookkeeping of one open handle in put/: the entry it
// counts against, as the engine sees it. Its fields are guarded by
// openFiles.mu.
type openHandle struct {
	key      entryKey
	detached bool // its file left put/ (replaced or unlinked): no longer counted
	closed   bool
}

// openFiles tracks which put/ entry each open handle belongs to, so that
// the engine hears exactly one EntryClosed for each EntryOpened, under the
// name it heard the open for — even when the entry is renamed while files
// in it are open. The kernel sends FLUSH for every close(2) of a
// descriptor (dup'd ones too) but RELEASE only once, asynchronously, when
// the last reference goes: so handles are counted open at OPEN/CREATE and
// closed at RELEASE. put/ handles are opened with FOPEN_NOFLUSH (see
// putFile), so FLUSH does not come at all; if it does, it only reports a
// change.
//
// The engine is called with mu held, so that a rename cannot slip between
// a handle's close and the engine hearing of it.
type openFiles struct {
	eng     Engine
	mu      sync.Mutex
	byEntry map[entryKey]map[*openHandle]struct{}
}

func newOpenFiles(eng Engine) *openFiles {
	return &openFiles{eng: eng, byEntry: map[entryKey]map[*openHandle]struct{}{}}
}

// open counts h against the entry; it fails (archive.ErrSealing) while the
// entry is being sealed.
func (o *openFiles) open(h *openHandle, key entryKey) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.eng.EntryOpened(key.ws, key.entry); err != nil {
		return err
	}
	h.key = key
	o.add(h)
	return nil
}

func (o *openFiles) add(h *openHandle) {
	set := o.byEntry[h.key]
	if set == nil {
		set = map[*openHandle]struct{}{}
		o.byEntry[h.key] = set
	}
	set[h] = struct{}{}
}

func (o *openFiles) remove(h *openHandle) {
	set := o.byEntry[h.key]
	delete(set, h)
	if len(set) == 0 {
		delete(o.byEntry, h.key)
	}
}

// close ends h; changed reports that it wrote.
func (o *openFiles) close(h *openHandle, changed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	if h.detached || h.key.entry == "" {
		return
	}
	o.remove(h)
	if changed {
		o.eng.EntryChanged(h.key.ws, h.key.entry)
	}
	o.eng.EntryClosed(h.key.ws, h.key.entry)
}

// flush records a FLUSH of h (a close(2) of one of its descriptors);
// changed reports that h may have written.
func (o *openFiles) flush(h *openHandle, changed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if changed && !h.closed && !h.detached && h.key.entry != "" {
		o.eng.EntryChanged(h.key.ws, h.key.entry)
	}
}

// waitReleased waits, up to timeout, for the handles of an entry to be
// released: the kernel sends RELEASE after close(2) returns, so "cp -a x
// put/ && setfattr -n user.tapefs.seal put/x" would otherwise find x still
// open. With FOPEN_NOFLUSH no request tells a closed handle from one still
// in use, so a seal of an entry with a file really open waits the whole
// timeout before the engine refuses it.
func (o *openFiles) waitReleased(ctx context.Context, key entryKey, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		o.mu.Lock()
		n := len(o.byEntry[key])
		o.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// move re-counts the handles of entry from against entry to: the entry
// was renamed, or moved inside another entry.
func (o *openFiles) move(ws, from, to string) {
	if from == to {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.moveLocked(entryKey{ws, from}, entryKey{ws, to})
}

func (o *openFiles) moveLocked(from, to entryKey) {
	set := o.byEntry[from]
	delete(o.byEntry, from)
	o.reopen(set, from, to)
}

// detach stops counting the handles of an entry that left put/ while they
// were open (unlinked, or replaced by a rename): they no longer hold up
// whatever takes its name next.
func (o *openFiles) detach(ws, entry string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	key := entryKey{ws, entry}
	for h := range o.byEntry[key] {
		h.detached = true
		o.eng.EntryClosed(ws, entry)
	}
	delete(o.byEntry, key)
}

// exchange swaps the handles of two entries (rename with RENAME_EXCHANGE).
func (o *openFiles) exchange(ws, a, b string) {
	if a == b {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ka, kb := entryKey{ws, a}, entryKey{ws, b}
	sa, sb := o.byEntry[ka], o.byEntry[kb]
	delete(o.byEntry, ka)
	delete(o.byEntry, kb)
	o.reopen(sa, ka, kb)
	o.reopen(sb, kb, ka)
}

// reopen re-counts a set of handles from one entry to another.
func (o *openFiles) reopen(set map[*openHandle]struct{}, from, to entryKey) {
	for h := range set {
		o.eng.EntryClosed(from.ws, from.entry)
		// The target may be sealing; the handle is open all the same,
		// and the engine's seal refuses an entry with open handles.
		_ = o.eng.EntryOpened(to.ws, to.entry)
		h.key = to
		o.add(h)
	}
}

// count reports how many handles are open in an entry.
func (o *openFiles) count(ws, entry string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.byEntry[entryKey{ws, entry}])
}
