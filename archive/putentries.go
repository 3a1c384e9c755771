package archive

import (
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// Entries of put/ that are not batches: pending (being written, or
// settling), sealing, and those the engine will not seal as they stand —
// rejected (quota, file too big, unsupported type) and write-failed. A
// `cp -a` into put/ returns 0 whatever happens at sealing (the copy
// itself succeeded), so a refused entry must be found where people look:
// `tapefs status`, `tapefs ls`, the batches and Failed pages. The list is
// the engine's memory of put/ (settle.go), as the mount's
// user.tapefs.state shows it.

// PutEntry is one entry of a workspace's put/ directory.
type PutEntry struct {
	Workspace string
	Name      string
	State     EntryState
	Reason    string    // rejected, write-failed: why (sizes in human units)
	Since     time.Time // rejected, write-failed: when it was first refused
	Bytes     int64     // rejected, write-failed: bytes of its regular files
	Hint      string    // rejected, write-failed: what to do
}

// Refused reports whether the engine will not seal the entry as it stands.
func (p PutEntry) Refused() bool { return p.State == EntryRejected || p.State == EntryWriteFailed }

// PutEntries lists the entries of put/ of the named workspaces (nil: all),
// refused ones first, then by workspace and name.
func (e *Engine) PutEntries(workspaces []string) []PutEntry {
	want := map[string]bool{}
	for _, w := range workspaces {
		want[w] = true
	}
	var out []PutEntry
	e.mu.Lock()
	for k, a := range e.entries {
		if workspaces != nil && !want[k.workspace] {
			continue
		}
		p := PutEntry{Workspace: k.workspace, Name: k.entry, State: EntryPending}
		switch {
		case a.sealing:
			p.State = EntrySealing
		case a.rejected != "":
			p.State, p.Reason, p.Since = EntryRejected, a.rejected, a.rejectedAt
			p.Hint = "it stays in put/: fix the cause, then seal it again (tapefs seal PATH, or setfattr -n user.tapefs.seal), or remove it"
		case len(a.failed) > 0:
			p.State, p.Reason, p.Since = EntryWriteFailed, writeFailedReason(a.failed), a.failedAt
			p.Hint = "write the file again (cp, rsync) or remove it; tapefs seal PATH archives the entry as it stands"
		}
		out = append(out, p)
	}
	e.mu.Unlock()
	for i := range out {
		if out[i].Refused() {
			out[i].Bytes = e.entryBytes(out[i].Workspace, out[i].Name)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Refused() != b.Refused() {
			return a.Refused()
		}
		if a.Workspace != b.Workspace {
			return a.Workspace < b.Workspace
		}
		return a.Name < b.Name
	})
	return out
}

// entryBytes adds up the regular files of an entry of put/ (a refused
// entry is at rest: nobody writes it).
func (e *Engine) entryBytes(workspace, entry string) int64 {
	var n int64
	_ = walkTree(e.cache.StagingDir(workspace), entry, func(_ int, _, _ string, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			n += st.Size
		}
		return nil
	})
	return n
}

// forgetGoneRefused drops refused entries that are no longer in put/
// (removed by their owner): nothing else would, as the settle timer
// skips them. e.mu must be held.
func (e *Engine) forgetGoneRefused(workspace string, present map[string]bool) {
	for k, a := range e.entries {
		if k.workspace == workspace && a.rejected != "" && a.open == 0 && !a.sealing && !present[k.entry] {
			delete(e.entries, k)
		}
	}
}
