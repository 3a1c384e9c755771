package catalog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
)

// How a File is stored. A file is three keys, each read by the request that
// needs it and by no other:
//
//	D<batch><parent><name>  the directory entry: the file ID, its type,
//	                        removed flag and hard-link owner — all that
//	                        `find` (a listing of names and types) reads
//	F<file>                 the record: name, path, mode, owner, size,
//	                        times — what `ls -l` and `du` read
//	M<file>                 what is learned after registration: the md5
//	                        and CRC32C (a mount seal hashes after
//	                        registering) and the tape copies (added by
//	                        each migration)
//
// Kept in one record, the md5 and the copies made every record grow twice
// after it was written; each growth split the full pages registration had
// written into half-empty ones, so a batch tree's records took twice the
// pages they needed and a cold listing read them all from disk. Apart,
// the F records and directory entries are written once, in key order, and
// stay as full as registration packed them; the M records are appended in
// ID order as migration goes.
//
// Records written before this layout (schema version 1) carried md5 and
// copies inside F and a bare file ID in D; upgradeFileLayout rewrites them
// when such a catalog is opened, and every read still understands them.

// fileTape is an M record. Only regular files have one (hard links: the
// md5 of their data, and no copies).
type fileTape struct {
	MD5    string `json:"md5,omitempty"`
	CRC32C string `json:"crc32c,omitempty"`
	Copies []Copy `json:"copies,omitempty"`
}

func fileTapeKey(id uint64) []byte { return key(tableFileTape, id) }

// Directory entry values: the file ID (8 bytes, big-endian), then the
// type (1 byte) and flags (1 byte), then the hard-link owner's ID (8
// bytes) when dirLinked is set. A bare 8-byte ID is the schema 1 form.
const (
	dirRemoved byte = 1 << iota
	dirLinked
)

// encodeDirEntry is the value of f's directory entry.
func encodeDirEntry(f *File) []byte {
	v := make([]byte, idLen, idLen+2+idLen)
	binary.BigEndian.PutUint64(v, f.ID)
	var flags byte
	if f.Removed {
		flags |= dirRemoved
	}
	if f.Link != 0 {
		flags |= dirLinked
	}
	v = append(v, byte(f.Type), flags)
	if f.Link != 0 {
		v = binary.BigEndian.AppendUint64(v, f.Link)
	}
	return v
}

// decodeDirEntry reads a directory entry's value into d (ID, and type,
// link and removed when the value carries them: known).
func decodeDirEntry(k, v []byte, d *DirName) (known bool, err error) {
	switch {
	case len(v) == idLen:
		d.ID = binary.BigEndian.Uint64(v)
		return false, nil
	case len(v) == idLen+2 && v[idLen+1]&dirLinked == 0,
		len(v) == 2*idLen+2 && v[idLen+1]&dirLinked != 0:
		d.ID = binary.BigEndian.Uint64(v)
		d.Type = FileType(v[idLen])
		d.Removed = v[idLen+1]&dirRemoved != 0
		d.Link = 0
		if len(v) > idLen+2 {
			d.Link = binary.BigEndian.Uint64(v[idLen+2:])
		}
		return true, nil
	}
	return false, fmt.Errorf("%s: corrupt directory entry of %d bytes", describeDirEntry(k), len(v))
}

func describeDirEntry(k []byte) string {
	if len(k) < dirEntryPrefixLen {
		return fmt.Sprintf("directory entry %q", k)
	}
	return fmt.Sprintf("batch %d: directory %d entry %q", binary.BigEndian.Uint64(k[1:]), binary.BigEndian.Uint64(k[1+idLen:]), k[dirEntryPrefixLen:])
}

// encodeFile splits f into its F record and its M record (nil when f has
// neither checksums nor copies).
func encodeFile(f *File) (rec, tape []byte, err error) {
	g := *f
	g.MD5, g.CRC32C, g.Copies = "", "", nil
	if rec, err = encodeRecord(&g); err != nil {
		return nil, nil, err
	}
	if f.hasTapeFacts() {
		if tape, err = encodeRecord(f.tapeFacts()); err != nil {
			return nil, nil, err
		}
	}
	return rec, tape, nil
}

// appendFileWrites appends the keys a new file is stored under
// (registration and restore from tape): record, tape facts, directory
// entry and, for a regular file, the path index of its workspace.
func appendFileWrites(writes []kvPair, ws string, f *File) ([]kvPair, error) {
	rec, tape, err := encodeFile(f)
	if err != nil {
		return writes, err
	}
	writes = append(writes, kvPair{fileKey(f.ID), rec}, kvPair{dirEntryKey(f.Batch, f.Parent, f.Name), encodeDirEntry(f)})
	if tape != nil {
		writes = append(writes, kvPair{fileTapeKey(f.ID), tape})
	}
	if f.Type == TypeFile {
		writes = append(writes, kvPair{pathKey(ws, f.Path, f.Batch), nil})
	}
	return writes, nil
}

// hasTapeFacts reports whether f has anything its M record holds.
func (f *File) hasTapeFacts() bool { return f.MD5 != "" || f.CRC32C != "" || len(f.Copies) > 0 }

// tapeFacts is f's M record.
func (f *File) tapeFacts() *fileTape {
	return &fileTape{MD5: f.MD5, CRC32C: f.CRC32C, Copies: f.Copies}
}

// mergeTape lays an M record over a decoded F record (which, written by
// schema 1, may carry md5 and copies of its own; the M record is newer).
func mergeTape(k, v []byte, f *File) error {
	if v == nil {
		return nil
	}
	var t fileTape
	if err := unmarshal(k, v, &t); err != nil {
		return err
	}
	if t.MD5 != "" {
		f.MD5 = t.MD5
	}
	if t.CRC32C != "" {
		f.CRC32C = t.CRC32C
	}
	if len(t.Copies) > 0 {
		f.Copies = t.Copies
	}
	return nil
}

// putTape writes f's checksums and copies (deleting its M record when it has
// neither); its F record and directory entry are left as they are.
func (tx *Tx) putTape(f *File) error {
	if !f.hasTapeFacts() {
		return tx.kv.Delete(fileTapeKey(f.ID))
	}
	data, err := encodeRecord(f.tapeFacts())
	if err != nil {
		return err
	}
	return tx.kv.Put(fileTapeKey(f.ID), data)
}

// readFiles decodes F records and lays their M records over them (one
// request for all of them on a database engine).
func (tx *Tx) readFiles(keys, recs [][]byte) ([]File, error) {
	out := make([]File, len(recs))
	var tapeKeys [][]byte
	var which []int
	for i, v := range recs {
		if err := unmarshal(keys[i], v, &out[i]); err != nil {
			return nil, err
		}
		if out[i].Type == TypeFile { // only regular files have an md5 and copies
			tapeKeys, which = append(tapeKeys, fileTapeKey(out[i].ID)), append(which, i)
		}
	}
	tapes, err := tx.getMany(tapeKeys)
	if err != nil {
		return nil, err
	}
	for j, i := range which {
		if err := mergeTape(tapeKeys[j], tapes[j], &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fileLayoutPage is how many files one transaction of the upgrade rewrites.
var fileLayoutPage = 5_000

// upgradeFileLayout rewrites the files of a schema 1 catalog in the
// layout above, a page of files per transaction, and then stamps the
// schema version. Each page can be rewritten again (a crash mid-way: the
// next open starts over, and a rewritten file stays as it is).
func upgradeFileLayout(eng Engine) error {
	var after uint64
	for {
		var n int
		err := eng.Update(func(kv KVTxn) error {
			tx := &Tx{kv: kv}
			var keys, recs [][]byte
			from := fileKey(after + 1)
			if err := kv.Scan([]byte{tableFile}, from, false, func(k, v []byte) (bool, error) {
				keys, recs = append(keys, bytes.Clone(k)), append(recs, bytes.Clone(v))
				return len(keys) < fileLayoutPage, nil
			}); err != nil {
				return err
			}
			n = len(keys)
			for i := range keys {
				var f File
				if err := unmarshal(keys[i], recs[i], &f); err != nil {
					return err
				}
				after = f.ID
				if f.MD5 != "" || len(f.Copies) > 0 {
					rec, _, err := encodeFile(&f)
					if err != nil {
						return err
					}
					if err := kv.Put(keys[i], rec); err != nil {
						return err
					}
					if err := tx.putTape(&f); err != nil {
						return err
					}
				}
				if err := kv.Put(dirEntryKey(f.Batch, f.Parent, f.Name), encodeDirEntry(&f)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("upgrade the catalog's file records (after file %d): %w", after, err)
		}
		if n < fileLayoutPage {
			break
		}
	}
	return eng.Update(func(kv KVTxn) error {
		return kv.Put(versionKey(), binary.BigEndian.AppendUint64(nil, SchemaVersion))
	})
}

// filesWithTapeOn lists the IDs of the files with a copy on volser, in ID
// order: a scan of the M records only.
func (tx *Tx) filesWithTapeOn(volser string) ([]uint64, error) {
	var ids []uint64
	err := tx.kv.Scan([]byte{tableFileTape}, nil, false, func(k, v []byte) (bool, error) {
		var t fileTape
		if err := unmarshal(k, v, &t); err != nil {
			return false, err
		}
		if slices.ContainsFunc(t.Copies, func(c Copy) bool { return c.VOLSER == volser }) {
			ids = append(ids, idSuffix(k))
		}
		return true, nil
	})
	return ids, err
}
