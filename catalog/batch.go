package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Batch returns the batch with the ID.
func (tx *Tx) Batch(id uint64) (Batch, error) {
	var b Batch
	found, err := tx.get(batchKey(id), &b)
	if err == nil && !found {
		err = fmt.Errorf("batch %d: %w", id, ErrNotFound)
	}
	return b, err
}

// PutBatch creates or replaces a batch record and keeps the workspace
// index. A batch cannot move to another workspace: its path index entries
// and the workspaces' Used would have to move with it. Workspace Used is
// not touched here; RegisterBatch and PurgeBatch keep it.
func (tx *Tx) PutBatch(b Batch) error {
	if b.ID == 0 {
		return errors.New("put batch: the batch has no ID")
	}
	if err := checkWorkspaceName(b.Workspace); err != nil {
		return fmt.Errorf("put batch %d: %w", b.ID, err)
	}
	old, err := tx.Batch(b.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		// A batch created here, not by RegisterBatch: its ID must never
		// be handed out again.
		if err := tx.raiseSequence(sequenceBatch, b.ID); err != nil {
			return err
		}
		if err := tx.kv.Put(batchByWSKey(b.Workspace, b.ID), nil); err != nil {
			return err
		}
	case err != nil:
		return err
	case old.Workspace != b.Workspace:
		return fmt.Errorf("put batch %d: it belongs to workspace %s and cannot move to %s", b.ID, old.Workspace, b.Workspace)
	}
	return tx.put(batchKey(b.ID), &b)
}

// Batches lists batches in ID order (newest first with o.Newest), paged by
// o.After and o.Limit. With o.Workspace it reads that workspace's index, so
// its cost follows the workspace's batches, not the whole catalog's.
func (tx *Tx) Batches(o ListOptions) ([]Batch, error) {
	var prefix []byte
	if o.Workspace != "" {
		prefix = batchByWSPrefix(o.Workspace)
	} else {
		prefix = []byte{tableBatch}
	}
	var from []byte
	switch {
	case o.After == 0:
	case !o.Newest && o.After == math.MaxUint64:
		return nil, nil
	case !o.Newest:
		from = append(slices.Clip(prefix), encodeID(o.After+1)...)
	default: // IDs start at 1: After 1 leaves nothing, as it should
		from = append(slices.Clip(prefix), encodeID(o.After-1)...)
	}
	var out []Batch
	err := tx.kv.Scan(prefix, from, o.Newest, func(k, v []byte) (bool, error) {
		var b Batch
		var err error
		if o.Workspace != "" { // an index entry: the record is elsewhere
			b, err = tx.Batch(idSuffix(k))
		} else {
			err = unmarshal(k, v, &b)
		}
		if err != nil {
			return false, err
		}
		if len(o.States) == 0 || slices.Contains(o.States, b.State) {
			out = append(out, b)
		}
		return o.Limit <= 0 || len(out) < o.Limit, nil
	})
	return out, err
}

// RemoveBatch soft-deletes a batch: it stays restorable (UndeleteBatch)
// and keeps counting in its workspace's Used until PurgeBatch.
func (tx *Tx) RemoveBatch(id uint64, now time.Time) (Batch, error) {
	b, err := tx.Batch(id)
	if err != nil {
		return Batch{}, err
	}
	if b.State == Deleted {
		return Batch{}, fmt.Errorf("batch %d is already deleted (since %s)", id, b.Deleted.Format(time.RFC3339))
	}
	b.Prior, b.State, b.Deleted = b.State, Deleted, now
	// Entries hidden by a removal in progress go with the batch (undelete
	// brings back all of them): nothing is provisional any more.
	b.Removal = Removal{}
	return b, tx.put(batchKey(id), &b)
}

// UndeleteBatch restores a soft-deleted batch to the state it had.
func (tx *Tx) UndeleteBatch(id uint64) (Batch, error) {
	b, err := tx.Batch(id)
	if err != nil {
		return Batch{}, err
	}
	if b.State != Deleted {
		return Batch{}, fmt.Errorf("batch %d is not deleted (state %s)", id, b.State)
	}
	if b.Prior == "" {
		return Batch{}, fmt.Errorf("batch %d is deleted but its earlier state was not recorded", id)
	}
	b.State, b.Prior, b.Deleted = b.Prior, "", time.Time{}
	return b, tx.put(batchKey(id), &b)
}

// PurgeBatch deletes a batch for good: the record, its files, directory
// entries, path index entries and jobs; its bytes leave the workspace's
// Used. Its events stay: the log is append-only.
func (tx *Tx) PurgeBatch(id uint64) error {
	b, err := tx.Batch(id)
	if err != nil {
		return err
	}
	// Collect first: keys cannot be deleted during the scan that finds them.
	var doomed [][]byte
	dead := map[string]int64{} // bytes of copies left on each cartridge
	err = tx.scanFiles(b, 0, 0, func(f *File) (bool, error) {
		for _, c := range f.Copies {
			dead[c.VOLSER] += c.Length
		}
		doomed = append(doomed, fileKey(f.ID), dirEntryKey(b.ID, f.Parent, f.Name))
		if f.hasTapeFacts() {
			doomed = append(doomed, fileTapeKey(f.ID))
		}
		if f.Type == TypeFile {
			doomed = append(doomed, pathKey(b.Workspace, f.Path, b.ID))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(doomed, bytes.Compare) // in key order, like the writes
	for _, k := range doomed {
		if err := tx.kv.Delete(k); err != nil {
			return err
		}
	}
	for _, v := range slices.Sorted(maps.Keys(dead)) {
		if err := tx.AddDead(v, dead[v]); err != nil {
			return err
		}
	}
	jobs, err := tx.batchJobs(id)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if err := tx.deleteJob(j); err != nil {
			return err
		}
	}
	if err := tx.kv.Delete(batchByWSKey(b.Workspace, id)); err != nil {
		return err
	}
	if err := tx.kv.Delete(batchKey(id)); err != nil {
		return err
	}
	w, err := tx.Workspace(b.Workspace)
	if errors.Is(err, ErrNotFound) {
		return nil // nothing to account to
	}
	if err != nil {
		return err
	}
	w.Used -= b.Bytes
	return tx.put(workspaceKey(w.Name), &w)
}

// FindPath returns the IDs, ascending, of the batches of the workspace that
// hold a regular file at path (in any state: the caller filters).
func (tx *Tx) FindPath(workspace, path string) ([]uint64, error) {
	var ids []uint64
	err := tx.scanIDs(pathPrefix(workspace, path), nil, false, func(id uint64) (bool, error) {
		ids = append(ids, id)
		return true, nil
	})
	return ids, err
}
