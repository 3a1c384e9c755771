package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rawKey reads one key as stored.
func rawKey(t *testing.T, c *Catalog, k []byte) []byte {
	t.Helper()
	var out []byte
	view(t, c, func(tx *Tx) error {
		v, err := tx.kv.Get(k)
		out = bytes.Clone(v)
		return err
	})
	return out
}

// TestFileLayout: md5 and copies live in the M record, type, link and
// removed flag in the directory entry; reads put a File back together;
// a listing of names reads no file record at all.
func TestFileLayout(t *testing.T) {
	for name, eng := range map[string]func() Engine{
		"memory": NewMemoryEngine,
		"bolt": func() Engine {
			e, err := OpenBoltEngine(filepath.Join(t.TempDir(), "catalog.db"))
			if err != nil {
				t.Fatal(err)
			}
			return e
		},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := New(eng())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			addWorkspace(t, c, "ws")
			b, files := register(t, c, "ws", "top", Cached)
			a := files[1] // top/a.dat, md5 "aa" from registration
			hard := files[5]
			if rec := rawKey(t, c, fileKey(a.ID)); bytes.Contains(rec, []byte(`"md5"`)) || bytes.Contains(rec, []byte(`"copies"`)) {
				t.Errorf("F record of a.dat holds md5 or copies: %s", rec)
			}
			if got := rawKey(t, c, fileTapeKey(a.ID)); string(got) != `{"md5":"aa"}` {
				t.Errorf("M record of a.dat after registration: %s", got)
			}
			if got := rawKey(t, c, fileTapeKey(files[0].ID)); got != nil {
				t.Errorf("a directory has an M record: %s", got)
			}

			cp := Copy{VOLSER: "L00001", TapeFile: 3, Offset: 512, Length: 100}
			update(t, c, func(tx *Tx) error {
				return tx.CommitAggregate(AggregateCommit{Copies: map[uint64]Copy{a.ID: cp}, OnTape: map[uint64]int64{b.ID: 100}})
			})
			recBefore := rawKey(t, c, fileKey(a.ID))
			view(t, c, func(tx *Tx) error {
				f, err := tx.File(a.ID)
				if err != nil {
					return err
				}
				if f.MD5 != "aa" || !slices.Equal(f.Copies, []Copy{cp}) || f.Size != 100 || f.Path != "top/a.dat" {
					t.Errorf("File after the aggregate: %+v", f)
				}
				l, err := tx.Lookup(b.ID, files[0].ID, "a.dat")
				if err != nil || !reflect.DeepEqual(l, f) {
					t.Errorf("Lookup: %+v, %v; File: %+v", l, err, f)
				}
				all, err := tx.Files(b.ID, 0, 0)
				if err != nil || len(all) != len(files) || !reflect.DeepEqual(all[1], f) {
					t.Errorf("Files: %+v, %v", all, err)
				}
				ch, err := tx.Children(b.ID, files[0].ID, "", 0)
				if err != nil || len(ch) != 3 || ch[0].Name != "a.dat" || ch[0].Size != 100 || ch[0].MD5 != "" || ch[0].Copies != nil {
					t.Errorf("Children (attributes, no md5 or copies): %+v, %v", ch, err)
				}
				return nil
			})
			if rec := rawKey(t, c, fileKey(a.ID)); !bytes.Equal(rec, recBefore) {
				t.Errorf("the aggregate rewrote the F record")
			}

			// The CRC32C recorded with the md5 goes to the M record too.
			update(t, c, func(tx *Tx) error {
				f, err := tx.File(a.ID)
				if err != nil {
					return err
				}
				f.CRC32C = "e3069283"
				return tx.PutFile(f)
			})
			if got := rawKey(t, c, fileTapeKey(a.ID)); !bytes.Contains(got, []byte(`"crc32c":"e3069283"`)) || !bytes.Contains(got, []byte(`"md5":"aa"`)) {
				t.Errorf("M record of a.dat with a CRC32C: %s", got)
			}
			if rec := rawKey(t, c, fileKey(a.ID)); !bytes.Equal(rec, recBefore) {
				t.Errorf("recording the CRC32C rewrote the F record")
			}
			view(t, c, func(tx *Tx) error {
				f, err := tx.File(a.ID)
				if err != nil || f.CRC32C != "e3069283" || f.MD5 != "aa" || !slices.Equal(f.Copies, []Copy{cp}) {
					t.Errorf("File after recording the CRC32C: %+v, %v", f, err)
				}
				all, err := tx.Files(b.ID, 0, 0)
				if err != nil || all[1].CRC32C != "e3069283" {
					t.Errorf("Files after recording the CRC32C: %+v, %v", all, err)
				}
				return nil
			})

			// Removed goes to the directory entry as well.
			update(t, c, func(tx *Tx) error {
				f, err := tx.File(a.ID)
				if err != nil {
					return err
				}
				f.Removed = true
				return tx.PutFile(f)
			})
			var d DirName
			if known, err := decodeDirEntry(nil, rawKey(t, c, dirEntryKey(b.ID, files[0].ID, "a.dat")), &d); !known || err != nil || !d.Removed || d.Type != TypeFile || d.ID != a.ID {
				t.Errorf("directory entry of a removed a.dat: %+v known=%v %v", d, known, err)
			}
			if known, err := decodeDirEntry(nil, rawKey(t, c, dirEntryKey(b.ID, files[2].ID, "hard")), &d); !known || err != nil || d.Link != a.ID || d.ID != hard.ID {
				t.Errorf("directory entry of the hard link: %+v known=%v %v", d, known, err)
			}

			// Without their F records, the names of sub/ are still listed
			// (find reads entries only); the attributes are not.
			update(t, c, func(tx *Tx) error {
				for _, f := range files[3:6] {
					if err := tx.kv.Delete(fileKey(f.ID)); err != nil {
						return err
					}
				}
				return nil
			})
			view(t, c, func(tx *Tx) error {
				ns, err := tx.ChildNames(b.ID, files[2].ID, "", 0)
				if err != nil || len(ns) != 3 || ns[0].Name != "b.dat" || ns[1].Name != "hard" || ns[1].Link != a.ID || ns[2].Type != TypeSymlink {
					t.Errorf("ChildNames without the records: %+v, %v", ns, err)
				}
				if _, err := tx.Children(b.ID, files[2].ID, "", 0); !errors.Is(err, ErrNotFound) {
					t.Errorf("Children without the records: %v", err)
				}
				return nil
			})
		})
	}
}

// writeSchema1 stores a batch as schema 1 did: md5 and copies inside the
// F record, a bare file ID in the directory entry.
func writeSchema1(t *testing.T, eng Engine, files []File) {
	t.Helper()
	err := eng.Update(func(kv KVTxn) error {
		for i := range files {
			f := &files[i]
			rec, err := encodeRecord(f)
			if err != nil {
				return err
			}
			if err := kv.Put(fileKey(f.ID), rec); err != nil {
				return err
			}
			if err := kv.Put(dirEntryKey(f.Batch, f.Parent, f.Name), encodeID(f.ID)); err != nil {
				return err
			}
		}
		b := Batch{ID: 1, Workspace: "ws", State: CachedSynced, FirstFile: files[0].ID, Files: int64(len(files))}
		rec, err := encodeRecord(&b)
		if err != nil {
			return err
		}
		if err := kv.Put(batchKey(1), rec); err != nil {
			return err
		}
		return kv.Put(versionKey(), encodeID(1))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// schema1Files is a batch of n files in one directory, every regular file
// with an md5 and two copies, one of them removed.
func schema1Files(n int) []File {
	files := []File{{ID: 1, Batch: 1, Name: "d", Path: "d", Type: TypeDir, Mode: 0o755}}
	for i := 2; i <= n; i++ {
		f := File{ID: uint64(i), Batch: 1, Parent: 1, Name: fmt.Sprintf("f%03d", i), Type: TypeFile, Size: int64(i), MD5: fmt.Sprintf("%032x", i),
			Copies: []Copy{{VOLSER: "A00001", TapeFile: 1, Offset: int64(i), Length: int64(i)}, {VOLSER: "B00001", TapeFile: 1, Offset: int64(i), Length: int64(i)}}}
		f.Path = "d/" + f.Name
		if i == 7 {
			f.Removed = true
		}
		files = append(files, f)
	}
	return files
}

// failingEngine fails the nth Update from now (1: the next).
type failingEngine struct {
	Engine
	n int
}

func (e *failingEngine) Update(fn func(KVTxn) error) error {
	if e.n--; e.n == 0 {
		return errors.New("disk on fire")
	}
	return e.Engine.Update(fn)
}

// TestUpgradeFileLayout: a schema 1 catalog is rewritten when opened, a
// page of files per transaction; an upgrade cut off half way is finished
// by the next open; the files read the same before and after.
func TestUpgradeFileLayout(t *testing.T) {
	defer func(p int) { fileLayoutPage = p }(fileLayoutPage)
	fileLayoutPage = 4
	files := schema1Files(11)
	eng := NewMemoryEngine()
	writeSchema1(t, eng, files)

	// Before: what schema 1 code read.
	var before []File
	c1 := &Catalog{eng: eng}
	view(t, c1, func(tx *Tx) error {
		var err error
		before, err = tx.Files(1, 0, 0)
		return err
	})
	if len(before) != 11 || before[3].MD5 == "" || len(before[3].Copies) != 2 {
		t.Fatalf("schema 1 files read as %+v", before)
	}

	// The second page's transaction fails: the open fails, the version
	// stays 1, the first page is rewritten already.
	if _, err := New(&failingEngine{Engine: eng, n: 2}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("New with a failing second page: %v", err)
	}
	if v := rawKey(t, c1, versionKey()); !bytes.Equal(v, encodeID(1)) {
		t.Errorf("version after a failed upgrade: %x", v)
	}
	c, err := New(eng)
	if err != nil {
		t.Fatal(err)
	}
	if v := rawKey(t, c, versionKey()); !bytes.Equal(v, encodeID(SchemaVersion)) {
		t.Errorf("version after the upgrade: %x", v)
	}
	view(t, c, func(tx *Tx) error {
		after, err := tx.Files(1, 0, 0)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(after, before) {
			t.Errorf("files after the upgrade differ:\n%+v\n%+v", after, before)
		}
		for _, f := range files {
			if rec, _ := tx.kv.Get(fileKey(f.ID)); bytes.Contains(rec, []byte(`"copies"`)) || bytes.Contains(rec, []byte(`"md5"`)) {
				t.Errorf("file %d: F record still holds md5 or copies: %s", f.ID, rec)
			}
		}
		ns, err := tx.ChildNames(1, 1, "", 0)
		if err != nil || len(ns) != 10 || !ns[5].Removed || ns[5].Name != "f007" || ns[0].Type != TypeFile {
			t.Errorf("ChildNames after the upgrade: %+v, %v", ns, err)
		}
		// Every entry carries its type now: no record is read for them.
		for _, f := range files[1:] {
			var d DirName
			v, _ := tx.kv.Get(dirEntryKey(1, 1, f.Name))
			if known, err := decodeDirEntry(nil, v, &d); !known || err != nil || d.ID != f.ID || d.Removed != f.Removed {
				t.Errorf("entry %s after the upgrade: %+v known=%v %v", f.Name, d, known, err)
			}
		}
		return nil
	})
	update(t, c, func(tx *Tx) error {
		n, err := tx.DropCopies("B00001")
		if err != nil || n != 10 {
			t.Errorf("DropCopies after the upgrade: %d, %v", n, err)
		}
		f, err := tx.File(5)
		if err != nil || len(f.Copies) != 1 || f.Copies[0].VOLSER != "A00001" || f.MD5 != before[4].MD5 {
			t.Errorf("file 5 after DropCopies: %+v, %v", f, err)
		}
		return err
	})
}

// TestBoltLeavesStayFull: the pages of a batch's records stay full after
// its md5s are recorded and its copies added (they split to half full
// when both went into the record).
func TestBoltLeavesStayFull(t *testing.T) {
	c := openBolt(t)
	addWorkspace(t, c, "ws")
	files := bigBatch("big", 20_000, 1000)
	for i := range files {
		files[i].MD5 = "" // a mount seal hashes after registering
	}
	var b Batch
	update(t, c, func(tx *Tx) error {
		var err error
		b, files, err = tx.RegisterBatch(Batch{Workspace: "ws", State: Sealing, Bytes: 1}, files)
		return err
	})
	// As the seal records the md5s and migration the copies: a page at a
	// time, in ID order.
	for i := 0; i < len(files); i += 500 {
		page := files[i:min(i+500, len(files))]
		update(t, c, func(tx *Tx) error {
			for _, f := range page {
				if f.Type == TypeFile {
					f.MD5 = "d41d8cd98f00b204e9800998ecf8427e"
					if err := tx.PutFile(f); err != nil {
						return err
					}
				}
			}
			return nil
		})
		update(t, c, func(tx *Tx) error {
			copies := map[uint64]Copy{}
			for _, f := range page {
				if f.Type == TypeFile {
					copies[f.ID] = Copy{VOLSER: "L00001", TapeFile: 1 + i/500, Offset: int64(f.ID) << 20, Length: 1 << 20}
				}
			}
			return tx.CommitAggregate(AggregateCommit{Copies: copies, Time: time.Now()})
		})
	}
	var st bolt.BucketStats
	if err := c.eng.(*boltEngine).db.View(func(tx *bolt.Tx) error {
		st = tx.Bucket([]byte(boltBucket)).Stats()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fill := float64(st.LeafInuse) / float64(st.LeafAlloc)
	t.Logf("%d leaf pages, %.0f %% full (%d of %d bytes) for %d files", st.LeafPageN, 100*fill, st.LeafInuse, st.LeafAlloc, len(files))
	if fill < 0.8 {
		t.Errorf("leaf pages %.0f %% full after md5s and copies; want ≥ 80 %%", 100*fill)
	}
	view(t, c, func(tx *Tx) error {
		f, err := tx.File(files[12345].ID)
		if err != nil || f.MD5 == "" || len(f.Copies) != 1 || f.ID != b.FirstFile+12345 {
			t.Errorf("file 12345: %+v, %v", f, err)
		}
		return err
	})
}

// FuzzDirEntry: a directory entry's value decodes without panicking, to
// what it encoded, and anything but the three lengths written is refused.
func FuzzDirEntry(f *testing.F) {
	f.Add(uint64(7), byte(TypeFile), false, uint64(0))
	f.Add(uint64(1<<40), byte(TypeDir), true, uint64(0))
	f.Add(uint64(9), byte(TypeFile), true, uint64(3))
	f.Fuzz(func(t *testing.T, id uint64, typ byte, removed bool, link uint64) {
		in := File{ID: id, Type: FileType(typ), Removed: removed, Link: link}
		v := encodeDirEntry(&in)
		var d DirName
		known, err := decodeDirEntry(nil, v, &d)
		if err != nil || !known || d.ID != id || d.Type != in.Type || d.Removed != removed || d.Link != link {
			t.Fatalf("%+v encoded as %x decodes as %+v known=%v %v", in, v, d, known, err)
		}
		// Every cut of the value, and one byte more: decoded or refused,
		// never a panic; a bare ID is schema 1.
		for n := 0; n <= len(v)+1; n++ {
			w := append(append([]byte(nil), v...), 0)[:n]
			var e DirName
			known, err := decodeDirEntry(dirEntryKey(1, 2, "x"), w, &e)
			switch {
			case n == idLen && (known || err != nil):
				t.Fatalf("bare ID %x: known=%v %v", w, known, err)
			case n != idLen && err == nil && !known:
				t.Fatalf("%d bytes %x: neither decoded nor refused", n, w)
			case err != nil && !strings.Contains(err.Error(), "corrupt directory entry"):
				t.Fatalf("%d bytes: error %v", n, err)
			}
		}
	})
}
