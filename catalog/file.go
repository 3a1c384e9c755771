package catalog

import (
	"fmt"
)

// File returns the file with the ID.
func (tx *Tx) File(id uint64) (File, error) {
	var f File
	found, err := tx.get(fileKey(id), &f)
	if err == nil && !found {
		err = fmt.Errorf("file %d: %w", id, ErrNotFound)
	}
	return f, err
}

// PutFile replaces the record of an existing file: its checksum, copies
// and attributes. Batch trees are read-only, so where a file sits (batch,
// parent, name, path, type) cannot change, and its indexes stay right.
func (tx *Tx) PutFile(f File) error {
	old, err := tx.File(f.ID)
	if err != nil {
		return fmt.Errorf("put file: %w", err)
	}
	if f.Batch != old.Batch || f.Parent != old.Parent || f.Name != old.Name || f.Path != old.Path || f.Type != old.Type {
		return fmt.Errorf("put file %d (%s): its batch, parent, name, path and type cannot change", f.ID, old.Path)
	}
	return tx.put(fileKey(f.ID), &f)
}

// Lookup returns the entry name of directory parent (0: the top level) of
// a batch: one Get for the directory entry, one for the file.
func (tx *Tx) Lookup(batch, parent uint64, name string) (File, error) {
	k := dirEntryKey(batch, parent, name)
	v, err := tx.kv.Get(k)
	if err != nil {
		return File{}, err
	}
	if v == nil {
		return File{}, fmt.Errorf("batch %d: no entry %q in directory %d: %w", batch, name, parent, ErrNotFound)
	}
	id, err := decodeID(k, v)
	if err != nil {
		return File{}, err
	}
	return tx.File(id)
}

// Children lists directory parent (0: the top level) of a batch in name
// order, starting after the name after ("" = from the start), at most
// limit entries (0 = all). One prefix scan: a page costs its own size.
func (tx *Tx) Children(batch, parent uint64, after string, limit int) ([]File, error) {
	keys, _, vals, err := tx.childRecords(batch, parent, after, limit)
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
// (`find`): it reads the same records but decodes just the members it
// returns, which costs a fraction of a whole File's decoding.
func (tx *Tx) ChildNames(batch, parent uint64, after string, limit int) ([]DirName, error) {
	keys, names, vals, err := tx.childRecords(batch, parent, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]DirName, len(keys))
	for i, v := range vals {
		d := &out[i]
		d.Name, d.ID = names[i], idSuffix(keys[i])
		if !decodeDirName(v, d) {
			var f File
			if err := unmarshal(keys[i], v, &f); err != nil {
				return nil, err
			}
			d.Link, d.Type, d.Removed = f.Link, f.Type, f.Removed
		}
	}
	return out, nil
}

// childRecords reads a page of directory parent: the file keys, names
// and records of its entries in name order.
func (tx *Tx) childRecords(batch, parent uint64, after string, limit int) (keys [][]byte, names []string, vals [][]byte, err error) {
	prefix := dirEntryPrefix(batch, parent)
	var from []byte
	if after != "" {
		// The least key greater than the entry named after.
		from = append(dirEntryKey(batch, parent, after), 0)
	}
	// The entries first, then their records in one go: on a database
	// engine that is one round trip for the page instead of one per entry.
	err = tx.kv.Scan(prefix, from, false, func(k, v []byte) (bool, error) {
		id, err := decodeID(k, v)
		if err != nil {
			return false, err
		}
		keys = append(keys, fileKey(id))
		names = append(names, string(k[len(prefix):]))
		return limit <= 0 || len(keys) < limit, nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if vals, err = tx.getMany(keys); err != nil {
		return nil, nil, nil, err
	}
	for i, v := range vals {
		if v == nil {
			return nil, nil, nil, fmt.Errorf("%s is listed in its directory but missing: %w", describeKey(keys[i]), ErrNotFound)
		}
	}
	return keys, names, vals, nil
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
// at most limit (0 = all) of them.
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
	n := 0
	return tx.kv.Scan([]byte{tableFile}, fileKey(first), false, func(k, v []byte) (bool, error) {
		if idSuffix(k) > last {
			return false, nil
		}
		var f File
		if err := unmarshal(k, v, &f); err != nil {
			return false, err
		}
		n++
		more, err := fn(&f)
		return more && (limit <= 0 || n < limit), err
	})
}
