package archive

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

type entryKey struct{ workspace, entry string }

// entryActivity is what the engine knows of an entry of put/ between its
// first byte and its seal. It is not persisted: after a restart every entry
// found in put/ starts a new settle period.
type entryActivity struct {
	open     int       // handles open inside the entry
	last     time.Time // last open, close or change
	sealing  bool
	rejected string // why the last seal was refused; cleared by a change
	// rejectedAt is when the entry was first refused for its cause, and
	// reported that cause (its error): a refusal for the same cause again
	// (after a change, a retried seal) is the same rejection, not a new
	// event. Both live as long as the entry.
	rejectedAt time.Time
	reported   error
	failedAt   time.Time      // when a write into it first failed
	failed     []writeFailure // files in which a write failed (writefail.go)
	checked    time.Time      // last when failed was read from disk
}

// activity returns the record of an entry, creating it. e.mu must be held.
func (e *Engine) activity(workspace, entry string) *entryActivity {
	k := entryKey{workspace, entry}
	a := e.entries[k]
	if a == nil {
		a = &entryActivity{last: e.now()}
		e.entries[k] = a
	}
	return a
}

// EntryOpened and EntryClosed tell the engine that a handle on something
// inside put/<workspace>/<entry> was opened or closed, and EntryChanged that
// the entry's contents or namespace changed. An entry is sealed after it has
// had no open handle and no change for Config.Settle. EntryOpened fails
// (ErrSealing) while the entry is being sealed.
func (e *Engine) EntryOpened(workspace, entry string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.activity(workspace, entry)
	if a.sealing {
		return ErrSealing
	}
	a.open++
	a.last = e.now()
	a.rejected = ""
	return nil
}

// EntryClosed: see EntryOpened.
func (e *Engine) EntryClosed(workspace, entry string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.activity(workspace, entry)
	if a.open > 0 {
		a.open--
	}
	a.last = e.now()
}

// EntryChanged: see EntryOpened.
func (e *Engine) EntryChanged(workspace, entry string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.activity(workspace, entry)
	a.last = e.now()
	a.rejected = ""
}

// EntryState reports the state of an entry of put/ and, when rejected, why.
func (e *Engine) EntryState(workspace, entry string) (EntryState, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.entries[entryKey{workspace, entry}]
	switch {
	case a == nil:
		return EntryPending, ""
	case a.sealing:
		return EntrySealing, ""
	case a.rejected != "":
		return EntryRejected, a.rejected
	case len(a.failed) > 0:
		return EntryWriteFailed, writeFailedReason(a.failed)
	}
	return EntryPending, ""
}

func (e *Engine) beginSeal(workspace, entry string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a := e.activity(workspace, entry)
	if a.sealing {
		return ErrSealing
	}
	if a.open > 0 {
		return &RejectError{Workspace: workspace, Entry: entry, Cause: ErrEntryOpen, Reason: "files inside it are still open; close them (or wait for the copy to finish) and seal again"}
	}
	a.sealing = true
	return nil
}

// releaseSeal forgets an entry whose seal has moved it out of put/: a new
// entry of the same name is another entry. An entry moved back to put/
// after a failed seal is found again by scanStaging (or by reject, which
// records why).
func (e *Engine) releaseSeal(workspace, entry string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := entryKey{workspace, entry}
	if a := e.entries[k]; a != nil && a.sealing {
		delete(e.entries, k)
	}
}

func (e *Engine) endSeal(workspace, entry string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := entryKey{workspace, entry}
	a := e.entries[k]
	if a == nil {
		return
	}
	a.sealing = false
	var rej *RejectError
	if err == nil {
		delete(e.entries, k)
	} else if !errors.As(err, &rej) {
		// A failed seal is retried after another settle period.
		a.last = e.now()
	}
}

// settleLoop seals entries of put/ that have been quiet for Settle. It also
// picks up entries it has not heard of (written before a restart, or
// straight into the staging directory), giving each a full settle period.
func (e *Engine) settleLoop() {
	tick := min(max(e.cfg.Settle/4, 50*time.Millisecond), time.Second)
	for e.sleep(tick) {
		e.scanStaging()
		for _, k := range e.quietEntries() {
			if e.ctx.Err() != nil {
				return
			}
			e.autoSeal(k)
		}
	}
}

func (e *Engine) autoSeal(k entryKey) {
	owner, err := e.entryOwner(k.workspace, k.entry)
	if err != nil {
		e.mu.Lock()
		if a := e.entries[k]; a != nil && !a.sealing && a.open == 0 {
			delete(e.entries, k)
		}
		e.mu.Unlock()
		return
	}
	if e.holdWriteFailed(k) {
		return
	}
	b, err := e.Seal(e.ctx, k.workspace, k.entry, owner, "")
	var rej *RejectError
	switch {
	case err == nil:
		e.log.Debug().Str("workspace", k.workspace).Uint64("batch", b.ID).Str("entry", k.entry).Msg("entry settled and sealed")
	case errors.As(err, &rej), errors.Is(err, ErrSealing), errors.Is(err, context.Canceled):
	default:
		e.log.Error().Err(err).Str("workspace", k.workspace).Str("entry", k.entry).Msg("seal failed; retried after the settle time")
	}
}

// quietEntries lists entries that are due for sealing.
func (e *Engine) quietEntries() []entryKey {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	var due []entryKey
	for k, a := range e.entries {
		// A write-failed entry is looked at again only after it changed,
		// or while a mark could not be set on its file.
		held := len(a.failed) > 0 && !a.last.After(a.checked) && !unmarked(a.failed)
		if !a.sealing && a.open == 0 && a.rejected == "" && !held && now.Sub(a.last) >= e.cfg.Settle {
			due = append(due, k)
		}
	}
	return due
}

// scanStaging registers entries present in the staging directories.
func (e *Engine) scanStaging() {
	var names []string
	_ = e.cat.View(func(tx *catalog.Tx) error {
		wss, err := tx.Workspaces()
		for _, w := range wss {
			names = append(names, w.Name)
		}
		return err
	})
	for _, ws := range names {
		ents, err := os.ReadDir(e.cache.StagingDir(ws))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			e.log.Error().Err(err).Str("workspace", ws).Msg("cannot list the staging directory")
			continue
		}
		var found []entryKey
		present := make(map[string]bool, len(ents))
		e.mu.Lock()
		for _, d := range ents {
			k := entryKey{ws, d.Name()}
			if e.entries[k] == nil {
				found = append(found, k)
			}
			e.activity(ws, d.Name())
			present[d.Name()] = true
		}
		e.forgetGoneWriteFailed(ws, present)
		e.forgetGoneRefused(ws, present)
		e.mu.Unlock()
		// An entry the mount did not report (found at start): read its
		// write-failed marks now, so that its state shows at once.
		for _, k := range found {
			e.holdWriteFailed(k)
		}
	}
}
