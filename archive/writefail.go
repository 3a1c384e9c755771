package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tapefs/tapefs/catalog"
)

// A file of put/ in which a write failed (ENOSPC, EIO, ...) holds whatever
// the writer managed to store: usually a short file. Sealing it as it
// stands would archive the short file with its md5 as if it were the
// whole, and the user would delete the source. So the settle timer does
// not seal an entry holding such a file: the entry stays in put/ as
// write-failed until the file is written again (truncated and rewritten,
// or replaced, or removed) or the user seals the entry explicitly.
//
// The mark lives on the staged file itself, as the extended attribute
// xattrWriteFailed: it follows the file through renames inside put/,
// disappears with the file when the file is replaced or removed, and
// survives a restart. The mount hides user.tapefs.* of staged files and
// refuses to set or remove them. The mark is set at the very moment the
// disk may be full, so setting it may fail: the engine then keeps the mark
// in memory and tries again before every settle seal.

// EntryWriteFailed is the state of an entry of put/ in which a write
// failed: it is not sealed by the settle timer.
const EntryWriteFailed EntryState = "write-failed"

// xattrWriteFailed marks a staged file in which a write failed; its value
// says which operation failed with which errno.
const xattrWriteFailed = "user.tapefs.write-failed"

// writeFailure is a file of an entry in which a write failed.
type writeFailure struct {
	file      string // path in the staging directory: "entry/dir/name"
	what      string // "write failed with ENOSPC (no space left on device)"
	persisted bool   // the mark is on the file
	ino       uint64 // the file's inode, to set a mark that is not persisted on that file only
}

// WriteFailed records that op (write, fallocate, copy_file_range,
// truncate, fsync) on the staged file put/<workspace>/<path> failed with
// errno. fd, when not negative, is a descriptor of the file (the mark is
// set through it, which works however deep the file is); otherwise the
// mark is set by path. The entry is not sealed by the settle timer until
// the file has been written again.
func (e *Engine) WriteFailed(workspace, path string, fd int, op string, errno syscall.Errno) {
	entry, _, _ := strings.Cut(path, "/")
	if entry == "" || entry == "." || entry == ".." {
		return
	}
	what := fmt.Sprintf("%s failed with %s (%v)", op, unix.ErrnoName(errno), errno)
	err := e.markWriteFailed(workspace, path, fd, what)
	var st unix.Stat_t
	if fd >= 0 {
		_ = unix.Fstat(fd, &st)
	} else {
		_ = unix.Lstat(filepath.Join(e.cache.StagingDir(workspace), path), &st)
	}

	e.mu.Lock()
	a := e.activity(workspace, entry)
	a.last = e.now()
	a.rejected = ""
	known := false
	for i := range a.failed {
		if a.failed[i].file == path {
			known = true
			a.failed[i].what = what
			a.failed[i].persisted = a.failed[i].persisted || err == nil
			a.failed[i].ino = st.Ino
		}
	}
	if !known {
		a.failed = append(a.failed, writeFailure{file: path, what: what, persisted: err == nil, ino: st.Ino})
	}
	if a.failedAt.IsZero() {
		a.failedAt = e.now()
	}
	e.mu.Unlock()

	log := e.log.With().Str("workspace", workspace).Str("entry", entry).Str("file", path).Logger()
	if err != nil {
		log.Warn().Err(err).Msg("cannot mark the file as write-failed on disk; the mark is kept in memory and set again later")
	}
	if known {
		return // one event per file, however many of its writes fail
	}
	e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: workspace, Kind: EvRejected,
			Message: fmt.Sprintf("put/%s: %s; put/%s stays in put/ until the file is written again, or is sealed explicitly",
				path, what, entry)})
	}), "an event of the log (the failure above says what happened)", nil)
}

// FileRewritten tells the engine that the staged file put/<workspace>/<path>
// (open as fd when not negative) was truncated: its contents are being
// written anew, so an earlier failed write into it no longer matters. A
// write that fails from here on marks it again.
func (e *Engine) FileRewritten(workspace, path string, fd int) {
	var err error
	if fd >= 0 {
		err = unix.Fremovexattr(fd, xattrWriteFailed)
	} else {
		err = unix.Lremovexattr(filepath.Join(e.cache.StagingDir(workspace), path), xattrWriteFailed)
	}
	removed := err == nil
	if err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, fs.ErrNotExist) {
		e.log.Warn().Err(err).Str("workspace", workspace).Str("file", path).Msg("cannot clear the write-failed mark of a rewritten file")
	}
	entry, _, _ := strings.Cut(path, "/")
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.entries[entryKey{workspace, entry}]
	if a == nil {
		return
	}
	a.failed = dropFailure(a.failed, path)
	if len(a.failed) == 0 {
		a.failedAt = time.Time{}
	}
	if removed {
		// The file may have carried its mark from another name; the
		// entry's marks are read again from disk before it is sealed.
		a.last = e.now()
	}
}

// HasWriteFailures reports whether any entry of the workspace holds a
// file marked write-failed (so the mount knows whether a truncation needs
// to tell FileRewritten).
func (e *Engine) HasWriteFailures(workspace string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, a := range e.entries {
		if k.workspace == workspace && len(a.failed) > 0 {
			return true
		}
	}
	return false
}

func dropFailure(fs []writeFailure, path string) []writeFailure {
	out := fs[:0]
	for _, f := range fs {
		if f.file != path {
			out = append(out, f)
		}
	}
	return out
}

func (e *Engine) markWriteFailed(workspace, path string, fd int, what string) error {
	if fd >= 0 {
		return unix.Fsetxattr(fd, xattrWriteFailed, []byte(what), 0)
	}
	return unix.Lsetxattr(filepath.Join(e.cache.StagingDir(workspace), path), xattrWriteFailed, []byte(what), 0)
}

// writeFailedReason says why an entry with write failures is not sealed.
func writeFailedReason(fs []writeFailure) string {
	if len(fs) == 0 {
		return ""
	}
	more := ""
	if len(fs) > 1 {
		more = fmt.Sprintf(" (and in %d more files)", len(fs)-1)
	}
	return fmt.Sprintf("%s: %s%s, so the file is probably incomplete; write it again or replace it "+
		"(or seal the entry explicitly to archive it as it is)", fs[0].file, fs[0].what, more)
}

// holdWriteFailed reads the write-failed marks of an entry from disk,
// after setting again the marks that could not be set before, and reports
// whether the entry holds a write-failed file and so must not be sealed by
// the settle timer. It is called before every settle seal, for entries
// found in put/ at start, and every settle period while a mark is not on
// disk yet (quietEntries).
func (e *Engine) holdWriteFailed(k entryKey) bool {
	e.mu.Lock()
	var pending []writeFailure
	if a := e.entries[k]; a != nil {
		for _, f := range a.failed {
			if !f.persisted {
				pending = append(pending, f)
			}
		}
	}
	e.mu.Unlock()

	staging := e.cache.StagingDir(k.workspace)
	var kept []writeFailure
	for _, f := range pending {
		var st unix.Stat_t
		err := unix.Lstat(filepath.Join(staging, f.file), &st)
		if err == nil && st.Ino != f.ino {
			err = unix.ENOENT // another file under that name
		}
		if err == nil {
			err = e.markWriteFailed(k.workspace, f.file, -1, f.what)
		}
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			// Gone under that name: removed, replaced, or renamed
			// (and then its mark is lost: it could not be set on
			// the file).
			e.log.Warn().Str("workspace", k.workspace).Str("file", f.file).
				Msg("a write-failed file that could not be marked is gone under its name; its entry is no longer held back for it")
		default:
			kept = append(kept, f) // still not on disk: keep holding the entry
		}
	}
	if len(kept) > 0 {
		// Hold on without walking the entry: that is done once the
		// marks are on disk.
		e.mu.Lock()
		defer e.mu.Unlock()
		a := e.activity(k.workspace, k.entry)
		a.checked = a.last
		for _, f := range kept {
			a.failed = append(dropFailure(a.failed, f.file), f)
		}
		return true
	}
	found, err := readWriteFailures(staging, k.entry)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// The seal walks the same tree and reports what is wrong.
		e.log.Debug().Err(err).Str("workspace", k.workspace).Str("entry", k.entry).Msg("cannot read the write-failed marks of an entry")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.activity(k.workspace, k.entry)
	a.failed = found
	a.checked = a.last
	switch {
	case len(found) == 0:
		a.failedAt = time.Time{}
	case a.failedAt.IsZero():
		a.failedAt = e.now()
	}
	return len(found) > 0
}

// readWriteFailures lists the files of a staged entry that carry the
// write-failed mark.
func readWriteFailures(staging, entry string) ([]writeFailure, error) {
	var out []writeFailure
	buf := make([]byte, 256)
	err := walkTree(staging, entry, func(dirFd int, name, rel string, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil
		}
		// The xattr calls take no directory descriptor: name the file
		// through the descriptor's /proc link (any depth).
		n, err := unix.Lgetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", dirFd, name), xattrWriteFailed, buf)
		what := string(buf[:max(n, 0)])
		switch {
		case errors.Is(err, unix.ERANGE):
			what = "a write failed" // a longer mark than tapefs writes
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return nil
		case err != nil:
			return fmt.Errorf("%s: %w", rel, err)
		}
		out = append(out, writeFailure{file: rel, what: what, persisted: true})
		return nil
	})
	return out, err
}

// unmarked reports whether a mark of fs is not on disk yet.
func unmarked(fs []writeFailure) bool {
	for _, f := range fs {
		if !f.persisted {
			return true
		}
	}
	return false
}

// forgetGoneWriteFailed drops the records of write-failed entries of the
// workspace that are no longer in put/ (removed, or renamed: the marks
// went with the files). The settle timer, which drops other vanished
// entries, does not look at a held entry. e.mu must be held.
func (e *Engine) forgetGoneWriteFailed(workspace string, present map[string]bool) {
	for k, a := range e.entries {
		if k.workspace == workspace && len(a.failed) > 0 && a.open == 0 && !a.sealing && !present[k.entry] {
			delete(e.entries, k)
		}
	}
}
