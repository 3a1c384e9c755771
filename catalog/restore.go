package catalog

import (
	"bytes"
	"fmt"
	"slices"
)

// RestoreBatch writes a batch and its files exactly as given, IDs included:
// for rebuilding a catalog from tape, where the IDs are the ones the tapes
// carry. files are some or all of the batch's files (IDs within FirstFile …
// FirstFile+Files-1); Parent, Name and Link must already be right. Writing
// a batch again (a tape file replayed twice) writes the same keys. The
// sequences are raised so that no ID is handed out again; workspace Used is
// the caller's (RecountUsed).
func (tx *Tx) RestoreBatch(b Batch, files []File) error {
	if b.ID == 0 || b.State == "" {
		return fmt.Errorf("restore batch %d: no ID or no state", b.ID)
	}
	if err := checkWorkspaceName(b.Workspace); err != nil {
		return fmt.Errorf("restore batch %d: %w", b.ID, err)
	}
	last := b.FirstFile + uint64(max(b.Files, 1)) - 1
	writes := make([]kvPair, 0, 4*len(files)+2)
	var err error
	for i := range files {
		f := &files[i]
		if f.Batch != b.ID || f.ID < b.FirstFile || f.ID > last {
			return fmt.Errorf("restore batch %d: file %d (%s) is outside the batch's IDs %d-%d", b.ID, f.ID, f.Path, b.FirstFile, last)
		}
		if err := checkPath(f.Path); err != nil {
			return fmt.Errorf("restore batch %d: %w", b.ID, err)
		}
		if writes, err = appendFileWrites(writes, b.Workspace, f); err != nil {
			return err
		}
	}
	data, err := encodeRecord(&b)
	if err != nil {
		return err
	}
	writes = append(writes, kvPair{batchKey(b.ID), data}, kvPair{batchByWSKey(b.Workspace, b.ID), nil})
	slices.SortFunc(writes, func(x, y kvPair) int { return bytes.Compare(x.key, y.key) })
	for _, kv := range writes {
		if err := tx.kv.Put(kv.key, kv.value); err != nil {
			return err
		}
	}
	if err := tx.RaiseIDs(b.ID, last); err != nil {
		return err
	}
	return nil
}

// RaiseIDs makes sure batch IDs up to batch and file IDs up to file are
// never handed out again (IDs seen on tape, even of purged batches).
func (tx *Tx) RaiseIDs(batch, file uint64) error {
	if err := tx.raiseSequence(sequenceBatch, batch); err != nil {
		return err
	}
	return tx.raiseSequence(sequenceFile, file)
}

// RecountUsed sets every workspace's Used to the bytes of its batches
// (live and soft-deleted), as RegisterBatch and PurgeBatch keep it.
func (tx *Tx) RecountUsed() error {
	ws, err := tx.Workspaces()
	if err != nil {
		return err
	}
	for _, w := range ws {
		var used int64
		bs, err := tx.Batches(ListOptions{Workspace: w.Name})
		if err != nil {
			return err
		}
		for _, b := range bs {
			used += b.Bytes
		}
		if used != w.Used {
			w.Used = used
			if err := tx.PutWorkspace(w); err != nil {
				return err
			}
		}
	}
	return nil
}
