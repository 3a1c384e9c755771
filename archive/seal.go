package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/human"
)

// dataBytes is the sum of the sizes of the files that own their data.
func dataBytes(files []stagedFile) (n int64) {
	for _, f := range files {
		if f.typ == catalog.TypeFile && f.owner < 0 {
			n += f.size
		}
	}
	return n
}

// Seal turns the staged entry put/<workspace>/<entry> into a batch owned by
// owner. A *RejectError leaves the entry untouched.
//
// Crash safety: the entry is first moved (one rename) into a sealing
// directory, so it leaves put/ at once and cannot change under the hashing.
// If the daemon dies before the batch is registered, recovery moves it back
// to put/ where it is sealed again; once registered (with a seal job naming
// the sealing directory), recovery finishes adopting its objects.
//
// Seal returns once the batch is registered (state SEALING) and its files
// are in the cache, readable through the batch; the md5s are computed in
// the background and the batch becomes CACHED (sealbg.go). It never reads
// the entry's bytes itself, so it stays short for any entry size.
func (e *Engine) Seal(ctx context.Context, workspace, entry string, owner uint32, tag string) (catalog.Batch, error) {
	if entry == "" || strings.Contains(entry, "/") || entry == "." || entry == ".." {
		// No entry of put/ has such a name: not found (404, ENOENT).
		return catalog.Batch{}, fmt.Errorf("seal %s/%s: not a top-level entry of put/: %w", workspace, entry, catalog.ErrNotFound)
	}
	if err := e.beginSeal(workspace, entry); err != nil {
		return catalog.Batch{}, err
	}
	released := false
	b, err := e.seal(ctx, workspace, entry, owner, tag, func() {
		e.releaseSeal(workspace, entry)
		released = true
	})
	if !released {
		e.endSeal(workspace, entry, err)
	}
	return b, err
}

// seal calls release once the entry has left put/: from then on its name
// is free for a new entry, while the batch is still being registered and
// adopted.
func (e *Engine) seal(ctx context.Context, workspace, entry string, owner uint32, tag string, release func()) (catalog.Batch, error) {
	staging := e.cache.StagingDir(workspace)
	var ws catalog.Workspace
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		ws, err = tx.Workspace(workspace)
		return err
	}); err != nil {
		return catalog.Batch{}, fmt.Errorf("seal %s/%s: %w", workspace, entry, err)
	}
	files, err := walkEntry(staging, entry)
	if err != nil {
		if _, serr := os.Lstat(filepath.Join(staging, entry)); errors.Is(serr, fs.ErrNotExist) {
			// Not found, without the cache's path: the caller named
			// an entry of put/.
			return catalog.Batch{}, fmt.Errorf("seal %s/%s: no such entry in %s/put/: %w", workspace, entry, workspace, catalog.ErrNotFound)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return catalog.Batch{}, fmt.Errorf("seal %s/%s: %w", workspace, entry, err)
		}
		return catalog.Batch{}, e.reject(workspace, entry, ErrUnsupported, err.Error())
	}
	for _, f := range files {
		if f.typ == catalog.TypeFile && f.size > e.cfg.MaxFileSize {
			return catalog.Batch{}, e.reject(workspace, entry, ErrFileTooBig, tooBigReason(f.rel, f.size, e.cfg.MaxFileSize))
		}
	}
	total := dataBytes(files)
	if ws.Quota > 0 && ws.Used+total > ws.Quota {
		return catalog.Batch{}, e.reject(workspace, entry, ErrQuota, quotaReason(total, workspace, ws.Quota-ws.Used, ws.Quota))
	}

	// Move the entry out of put/: from here on it cannot change.
	sealDir, err := e.cache.NewSealingDir()
	if err != nil {
		return catalog.Batch{}, fmt.Errorf("seal %s/%s: %w", workspace, entry, err)
	}
	if err := writeSealMeta(sealDir, workspace, entry); err != nil {
		return catalog.Batch{}, fmt.Errorf("seal %s/%s: %w", workspace, entry, err)
	}
	if err := os.Rename(filepath.Join(staging, entry), filepath.Join(sealDir, entry)); err != nil {
		os.RemoveAll(sealDir)
		return catalog.Batch{}, fmt.Errorf("seal %s/%s: %w", workspace, entry, err)
	}
	release()
	// Files may have changed between the walk and the rename: walk again.
	files, err = walkEntry(sealDir, entry)
	if err != nil {
		e.unsealLogged(sealDir)
		return catalog.Batch{}, fmt.Errorf("seal %s/%s: %w", workspace, entry, err)
	}
	now := e.now()
	b := catalog.Batch{Workspace: workspace, Tag: tag, Entry: entry, Owner: owner, State: catalog.Sealing, Created: now, Host: e.cfg.Host}
	b, err = e.registerSealed(ctx, b, sealDir, files)
	if err != nil {
		var rej *RejectError
		if b.ID == 0 {
			e.unsealLogged(sealDir)
		}
		if errors.As(err, &rej) {
			return catalog.Batch{}, e.reject(workspace, entry, rej.Cause, rej.Reason)
		}
		return b, fmt.Errorf("seal %s/%s: %w", workspace, entry, err)
	}
	return b, nil
}

func (e *Engine) unsealLogged(sealDir string) {
	if err := e.unseal(sealDir); err != nil {
		e.log.Error().Err(err).Str("dir", sealDir).
			Msg("could not move entry back to put/; it is kept in the sealing directory and recovered at the next start")
	}
}

// registerSealed registers the files found in sealDir as the batch b (b.ID
// set: a reserved CACHING batch) in state SEALING with a seal job, adopts
// their data into objects/ and queues the batch for hashing (sealbg.go).
// It returns once the files can be read through the batch: their md5s
// follow. On an error with the returned batch's ID zero, nothing was
// registered and sealDir is as it was.
func (e *Engine) registerSealed(ctx context.Context, b catalog.Batch, sealDir string, files []stagedFile) (catalog.Batch, error) {
	reserved := b.ID
	if err := ctx.Err(); err != nil {
		return catalog.Batch{}, err
	}
	now := e.now()
	b.Sealed, b.Bytes, b.Sealing, b.State = now, dataBytes(files), sealDir, catalog.Sealing
	cfiles := make([]catalog.File, len(files))
	for i, f := range files {
		cf := catalog.File{Path: f.rel, Type: f.typ, Mode: f.mode, Mtime: f.mtime, UID: f.uid, GID: f.gid, Target: f.target}
		if f.typ == catalog.TypeFile {
			cf.Size = f.size
			if f.owner >= 0 {
				cf.Link = uint64(f.owner + 1)
			}
		}
		cfiles[i] = cf
	}
	// The transaction may run more than once (a PostgreSQL catalog retries
	// on serialization failures): it works on copies and leaves b alone.
	var adopting uint64
	var registered catalog.Batch
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		ws, err := tx.Workspace(b.Workspace)
		if err != nil {
			return err
		}
		charged := int64(0)
		if reserved != 0 {
			r, err := tx.Batch(reserved)
			if err != nil {
				return err
			}
			if r.State != catalog.Caching {
				return fmt.Errorf("batch %d is %s, not CACHING: its put already ended", reserved, r.State)
			}
			charged = r.Bytes
		}
		if ws.Quota > 0 && ws.Used-charged+b.Bytes > ws.Quota {
			return &RejectError{Workspace: b.Workspace, Entry: b.Entry, Cause: ErrQuota, Reason: quotaReason(b.Bytes, b.Workspace, ws.Quota-ws.Used+charged, ws.Quota)}
		}
		rb, _, err := tx.RegisterBatch(b, cfiles)
		if err != nil {
			return err
		}
		registered = rb
		// Readers of the batch wait for its objects from the moment it
		// is visible: mark it before the commit.
		if adopting != 0 && adopting != rb.ID {
			e.endAdopt(adopting) // an earlier attempt's ID
		}
		adopting = rb.ID
		e.beginAdopt(rb.ID)
		if _, err := tx.AddJob(catalog.Job{Kind: catalog.JobSeal, Batch: rb.ID, Created: now, Owner: e.jobOwner()}); err != nil {
			return err
		}
		from := "put/" + rb.Entry
		if reserved != 0 {
			from = "tapefs put"
		}
		return pl.record(tx, catalog.Event{Time: now, Workspace: rb.Workspace, Batch: rb.ID, Kind: EvSealed, State: catalog.Sealing,
			Message: fmt.Sprintf("batch %d sealed from %s: %d entries, %s; computing checksums", rb.ID, from, rb.Files, human.Size(rb.Bytes))})
	})
	if err != nil {
		if adopting != 0 {
			e.endAdopt(adopting)
		}
		return catalog.Batch{}, err
	}
	b = registered
	entry := b.Entry
	if reserved != 0 {
		entry = ""
	}
	e.changes.publish(Change{Kind: ChangeSealed, Workspace: b.Workspace, Batch: b.ID, Entry: entry, State: catalog.Sealing})
	e.testPause(hookAfterRegister, e.log.With().Uint64("batch", b.ID).Str("workspace", b.Workspace).Logger())
	err = e.adopt(b)
	if err == nil {
		b.Sealing = ""
		e.queueHash(b) // before endAdopt: Checksum waiters never see neither
	}
	e.endAdopt(b.ID)
	if err != nil {
		// The seal job stays: recovery at the next start finishes it.
		return b, fmt.Errorf("batch %d registered but its objects were not adopted (retried at restart): %w", b.ID, err)
	}
	return b, nil
}

// needsHash tells a batch registered by this version (SEALING, or FAILED
// or deleted before its checksums were recorded) from one an older tapefs
// registered already hashed (CACHED).
func needsHash(b catalog.Batch) bool {
	return b.State != catalog.Cached && !(b.State == catalog.Deleted && b.Prior == catalog.Cached)
}

// sealMeta names, inside a sealing directory, where its entry came from, so
// recovery can put an unregistered entry back.
const sealMeta = ".tapefs-seal"

func writeSealMeta(dir, workspace, entry string) error {
	return os.WriteFile(filepath.Join(dir, sealMeta), []byte(workspace+"\n"+entry+"\n"), 0o600)
}

func readSealMeta(dir string) (workspace, entry string, err error) {
	b, err := os.ReadFile(filepath.Join(dir, sealMeta))
	if err != nil {
		return "", "", err
	}
	parts := strings.SplitN(strings.TrimSuffix(string(b), "\n"), "\n", 2)
	if len(parts) != 2 {
		return "", "", fmt.Errorf("%s: malformed", filepath.Join(dir, sealMeta))
	}
	return parts[0], parts[1], nil
}

// unseal moves an entry that was not registered back to put/. If its name
// was taken meanwhile, it comes back under a new name, never over the
// newer entry.
func (e *Engine) unseal(sealDir string) error {
	workspace, entry, err := readSealMeta(sealDir)
	if err != nil {
		return err
	}
	if strings.HasPrefix(entry, ingestEntry) {
		// A CLI put cut off before its batch was sealed: the user still
		// has the sources (put had not returned); the batch is FAILED by
		// recovery.
		return os.RemoveAll(sealDir)
	}
	src := filepath.Join(sealDir, entry)
	if _, err := os.Lstat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return os.RemoveAll(sealDir)
		}
		return err
	}
	staging := e.cache.StagingDir(workspace)
	dst := filepath.Join(staging, entry)
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = filepath.Join(staging, fmt.Sprintf("%s.unsealed-%d", entry, i))
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	e.log.Warn().Str("workspace", workspace).Str("entry", filepath.Base(dst)).Msg("entry moved back to put/ after an interrupted seal; it will be sealed again")
	return os.RemoveAll(sealDir)
}

// sealingAdoptions names where each file of a page waits in b's sealing
// directory, for the cache to adopt.
func sealingAdoptions(b catalog.Batch, files []catalog.File) []cache.Adoption {
	objs := make([]cache.Adoption, 0, len(files))
	for _, f := range files {
		objs = append(objs, cache.Adoption{ID: f.ID, Dir: b.Sealing, Src: f.Path})
	}
	return objs
}

// adopt moves the data of a registered batch from its sealing directory
// into objects/ (renames, no fsync: the hashing ends with one syncfs) and
// records that it did. A batch an older tapefs registered with its
// checksums then gets its migration job; any other keeps its seal job
// until it is hashed. It is idempotent: recovery calls it again after a
// crash.
func (e *Engine) adopt(b catalog.Batch) error {
	if b.Sealing == "" {
		return nil
	}
	if err := e.eachDataPage(b.ID, func(files []catalog.File) error {
		return e.cache.AdoptAll(sealingAdoptions(b, files), false)
	}); err != nil {
		return err
	}
	legacy := false
	err := e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		cur, err := tx.Batch(b.ID)
		if err != nil {
			return err
		}
		cur.Sealing = ""
		if err := tx.PutBatch(cur); err != nil {
			return err
		}
		if legacy = !needsHash(cur); !legacy {
			return nil
		}
		jobs, err := tx.Jobs(catalog.JobSeal)
		if err != nil {
			return err
		}
		for _, j := range jobs {
			if j.Batch == b.ID {
				if err := tx.DeleteJob(j.ID); err != nil {
					return err
				}
			}
		}
		_, err = tx.AddJob(catalog.Job{Kind: catalog.JobMigrate, Batch: b.ID, Created: e.now()})
		return err
	})
	if err != nil {
		return err
	}
	if err := os.RemoveAll(b.Sealing); err != nil {
		e.log.Warn().Err(err).Uint64("batch", b.ID).Str("workspace", b.Workspace).Msg("could not remove sealing directory")
	}
	if legacy {
		e.wakeMigration()
	}
	return nil
}

// reject records why an entry could not be sealed; the entry stays in put/.
func (e *Engine) reject(workspace, entry string, cause error, reason string) error {
	rej := &RejectError{Workspace: workspace, Entry: entry, Reason: reason, Cause: cause}
	e.mu.Lock()
	a := e.activity(workspace, entry)
	a.rejected = reason
	again := a.reported != nil && errors.Is(a.reported, cause)
	if !again {
		a.reported, a.rejectedAt = cause, e.now()
	}
	e.mu.Unlock()
	if again {
		// The same refusal as before (the entry changed and settled
		// again, or a seal was retried): one event per rejection.
		return rej
	}
	e.unrecorded(e.update(func(tx *catalog.Tx, pl *pendingLog) error {
		return pl.record(tx, catalog.Event{Time: e.now(), Workspace: workspace, Kind: EvRejected,
			Message: fmt.Sprintf("put/%s rejected: %s", entry, reason)})
	}), "an event of the log (the failure above says what happened)", nil)
	return rej
}
