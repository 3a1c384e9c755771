package catalog

import (
	"bytes"
	"fmt"
	"slices"
)

// File returns the file with the ID.
func (tx *Tx) File(id uint64) (File, error) {
	f, _, err := tx.fileAndRecord(id)
	return f, err
}

// fileAndRecord returns the file with the ID and its F record as stored.
func (tx *Tx) fileAndRecord(id uint64) (File, []byte, error) {
	var f File
	k := fileKey(id)
	rec, err := tx.kv.Get(k)
	switch {
	case err != nil:
		return f, nil, err
	case rec == nil:
		return f, nil, fmt.Errorf("file %d: %w", id, ErrNotFound)
	}
	if err := unmarshal(k, rec, &f); err != nil || f.Type != TypeFile {
		return f, rec, err // only regular files have an md5 and copies
	}
	tk := fileTapeKey(id)
	v, err := tx.kv.Get(tk)
	if err != nil {
		return f, rec, err
	}
	return f, rec, mergeTape(tk, v, &f)
}

// PutFile replaces the record of an existing file: its checksum, copies
// and attributes. Batch trees are read-only, so where a file sits (batch,
// parent, name, path, type) cannot change, and its indexes stay right.
// Only the keys whose contents change are written (filestore.go).
func (tx *Tx) PutFile(f File) error {
	old, oldRec, err := tx.fileAndRecord(f.ID)
	if err != nil {
		return fmt.Errorf("put file: %w", err)
	}
	if f.Batch != old.Batch || f.Parent != old.Parent || f.Name != old.Name || f.Path != old.Path || f.Type != old.Type || f.Link != old.Link {
		return fmt.Errorf("put file %d (%s): its batch, parent, name, path, type and link cannot change", f.ID, old.Path)
	}
	rec, _, err := encodeFile(&f)
	if err != nil {
		return err
	}
	if !bytes.Equal(rec, oldRec) {
		if err := tx.kv.Put(fileKey(f.ID), rec); err != nil {
			return err
		}
	}
	if f.MD5 != old.MD5 || f.CRC32C != old.CRC32C || !slices.Equal(f.Copies, old.Copies) {
		if err := tx.putTape(&f); err != nil {
			return err
		}
	}
	if f.Removed != old.Removed {
		return tx.kv.Put(dirEntryKey(f.Batch, f.Parent, f.Name), encodeDirEntry(&f))
	}
	return nil
}

// Lookup returns the entry name of directory parent (0: the top level) of
// a batch: one Get for the directory entry, then the file's.
func (tx *Tx) Lookup(batch, parent uint64, name string) (File, error) {
	k := dirEntryKey(batch, parent, name)
	v, err := tx.kv.Get(k)
	if err != nil {
		return File{}, err
	}
	if v == nil {
		return File{}, fmt.Errorf("batch %d: no entry %q in directory %d: %w", batch, name, parent, ErrNotFound)
	}
	var d DirName
	if _, err := decodeDirEntry(k, v, &d); err != nil {
		return File{}, err
	}
	return tx.File(d.ID)
}

// Children lists directory parent (0: the top level) of a batch in name
// order, starting after the name after ("" = from the start), at most
// limit entries (0 = all): the entries' attributes, as a listing shows
// them. Their md5 and copies are not read (File and Files have them). One
// prefix scan and one read of the records: a page costs its own size.
func (tx *Tx) Children(batch, parent uint64, after string, limit int) ([]File, error) {
	entries, err := tx.dirEntries(batch, parent, after, limit)
	if err != nil {
		return nil, err
	}
	keys := make([][]byte, len(entries))
	for i := range entries {
		keys[i] = fileKey(entries[i].ID)
	}
	vals, err := tx.fileRecords(keys)
	if err != nil {
		return nil, err
	}
	out := make([]File, len(keys))
	for i, v := range vals {
		if err := unmarshal(keys[i], v, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DirName is an entry of a batch directory as a listing of names and
// types needs it.
type DirName struct {
	Name    string
	ID      uint64
	Link    uint64 // as File.Link
	Type    FileType
	Removed bool
}

// DataID is as File.DataID.
func (d *DirName) DataID() uint64 {
	if d.Link != 0 {
		return d.Link
	}
	return d.ID
}

// ChildNames is Children for a listing that needs names and types only
// (`find`): the directory entries carry them, so no file record is read
// (but for entries written by schema 1, whose records are read as before).
func (tx *Tx) ChildNames(batch, parent uint64, after string, limit int) ([]DirName, error) {
	entries, err := tx.dirEntries(batch, parent, after, limit)
	if err != nil {
		return nil, err
	}
	var keys [][]byte
	var which []int
	for i := range entries {
		if !entries[i].known {
			keys, which = append(keys, fileKey(entries[i].ID)), append(which, i)
		}
	}
	out := make([]DirName, len(entries))
	for i := range entries {
		out[i] = entries[i].DirName
	}
	if len(keys) == 0 {
		return out, nil
	}
	vals, err := tx.fileRecords(keys)
	if err != nil {
		return nil, err
	}
	for j, v := range vals {
		d := &out[which[j]]
		if !decodeDirName(v, d) {
			var f File
			if err := unmarshal(keys[j], v, &f); err != nil {
				return nil, err
			}
			d.Link, d.Type, d.Removed = f.Link, f.Type, f.Removed
		}
	}
	return out, nil
}

// dirEntry is a directory entry as read; known says whether its type,
// link and removed flag came with it.
type dirEntry struct {
	DirName
	known bool
}

// dirEntries reads a page of directory parent's entries in name order.
func (tx *Tx) dirEntries(batch, parent uint64, after string, limit int) ([]dirEntry, error) {
	prefix := dirEntryPrefix(batch, parent)
	var from []byte
	if after != "" {
		// The least key greater than the entry named after.
		from = append(dirEntryKey(batch, parent, after), 0)
	}
	var out []dirEntry
	err := tx.kv.Scan(prefix, from, false, func(k, v []byte) (bool, error) {
		e := dirEntry{DirName: DirName{Name: string(k[len(prefix):])}}
		known, err := decodeDirEntry(k, v, &e.DirName)
		if err != nil {
			return false, err
		}
		e.known = known
		out = append(out, e)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// fileRecords reads the F records at keys, all of which a directory lists.
// On a database engine that is one round trip for a page of a directory
// instead of one per entry.
func (tx *Tx) fileRecords(keys [][]byte) ([][]byte, error) {
	vals, err := tx.getMany(keys)
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if v == nil {
			return nil, fmt.Errorf("%s is listed in its directory but missing: %w", describeKey(keys[i]), ErrNotFound)
		}
	}
	return vals, nil
}

// Files lists the files of a batch in ID order (which is the parents-first
// order they were registered in), after the ID after, at most limit (0 =
// all).
func (tx *Tx) Files(batch uint64, after uint64, limit int) ([]File, error) {
	b, err := tx.Batch(batch)
	if err != nil {
		return nil, err
	}
	var out []File
	err = tx.scanFiles(b, after, limit, func(f *File) (bool, error) {
		out = append(out, *f)
		return true, nil
	})
	return out, err
}

// scanFiles calls fn for the files of b with IDs after after, in ID order,
// at most limit (0 = all) of them. The records are read a page at a time,
// each page's M records in one go after it.
func (tx *Tx) scanFiles(b Batch, after uint64, limit int, fn func(f *File) (bool, error)) error {
	if b.Files <= 0 {
		return nil
	}
	first, last := b.FirstFile, b.FirstFile+uint64(b.Files)-1
	if after >= last {
		return nil
	}
	if after >= first {
		first = after + 1
	}
	const page = 512
	n := 0
	for first <= last {
		var keys, recs [][]byte
		err := tx.kv.Scan([]byte{tableFile}, fileKey(first), false, func(k, v []byte) (bool, error) {
			if idSuffix(k) > last {
				return false, nil
			}
			// Valid for the transaction, and nothing writes before
			// the page is decoded.
			keys, recs = append(keys, k), append(recs, v)
			return len(keys) < page && (limit <= 0 || n+len(keys) < limit), nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		files, err := tx.readFiles(keys, recs)
		if err != nil {
			return err
		}
		for i := range files {
			n++
			more, err := fn(&files[i])
			if err != nil || !more || (limit > 0 && n >= limit) {
				return err
			}
		}
		first = idSuffix(keys[len(keys)-1]) + 1
	}
	return nil
}
