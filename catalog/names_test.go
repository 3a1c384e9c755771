package catalog

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// nameSeeds are file names Linux allows that JSON alone cannot carry, and
// some it can: the seed corpus of the fuzz tests below, and the cases of
// the plain tests.
var nameSeeds = []string{"a", "x\xff", "caf\xc3\xa9", "lat\xe9n1", "\xc3", "\xed\xa0\x80", "\ufffd", "tab\there",
	"new\nline", "back\\slash", "\x01\x7f", "raw", `"raw":`, "-", "...", " ", "\xef\xbf\xbd\xff"}

// validName reports whether Linux allows name as one directory entry.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}

// newNamesCatalog is a catalog on eng with the workspace ws.
func newNamesCatalog(t *testing.T, eng Engine) *Catalog {
	t.Helper()
	c, err := New(eng)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	addWorkspace(t, c, "ws")
	return c
}

// checkNameRoundTrip registers a batch whose top-level directory, a file
// in it and a symlink's target are named name, and reads each back every
// way the catalog answers: by ID, by directory entry, by listing, by path.
func checkNameRoundTrip(t *testing.T, c *Catalog, name string) {
	t.Helper()
	files := []File{
		{Path: name, Type: TypeDir, Mode: 0o755},
		{Path: name + "/" + name, Type: TypeFile, Size: 1, MD5: "aa"},
		{Path: name + "/l", Type: TypeSymlink, Target: "../" + name},
	}
	var b Batch
	update(t, c, func(tx *Tx) error {
		var err error
		b, _, err = tx.RegisterBatch(Batch{Workspace: "ws", Entry: name, Tag: name, Sealing: "/home/cache/sealing/1/" + name,
			State: Cached, Created: t0, Bytes: 1}, files)
		return err
	})
	view(t, c, func(tx *Tx) error {
		got, err := tx.Batch(b.ID)
		if err != nil || got.Entry != name || got.Tag != name || got.Sealing != "/home/cache/sealing/1/"+name {
			t.Errorf("batch: entry %q tag %q sealing %q, %v; want %q", got.Entry, got.Tag, got.Sealing, err, name)
		}
		top, err := tx.Lookup(b.ID, 0, name)
		if err != nil || top.Name != name || top.Path != name {
			t.Fatalf("lookup %q: %q %q, %v", name, top.Name, top.Path, err)
		}
		f, err := tx.Lookup(b.ID, top.ID, name)
		if err != nil || f.Name != name || f.Path != name+"/"+name {
			t.Errorf("lookup %q/%q: %q %q, %v", name, name, f.Name, f.Path, err)
		}
		kids, err := tx.Children(b.ID, top.ID, "", 0)
		if err != nil || len(kids) != 2 {
			t.Fatalf("children of %q: %d, %v", name, len(kids), err)
		}
		checkChildNames(t, tx, b.ID, top.ID, "", 0)
		checkChildNames(t, tx, b.ID, 0, "", 0)
		for _, k := range kids {
			if k.Type == TypeSymlink && k.Target != "../"+name {
				t.Errorf("symlink target %q, want %q", k.Target, "../"+name)
			}
		}
		// Paging after each name gives the rest.
		rest, err := tx.Children(b.ID, top.ID, kids[0].Name, 0)
		if err != nil || len(rest) != 1 || rest[0].ID != kids[1].ID {
			t.Errorf("children after %q: %v, %v", kids[0].Name, rest, err)
		}
		all, err := tx.Files(b.ID, 0, 0)
		if err != nil || len(all) != 3 || all[1].Path != name+"/"+name {
			t.Errorf("files: %v, %v", all, err)
		}
		ids, err := tx.FindPath("ws", name+"/"+name)
		if err != nil || len(ids) != 1 || ids[0] != b.ID {
			t.Errorf("find path %q: %v, %v", name+"/"+name, ids, err)
		}
		return nil
	})
	// A record rewritten (as PutFile does on every state change) keeps the
	// bytes too.
	update(t, c, func(tx *Tx) error {
		top, err := tx.Lookup(b.ID, 0, name)
		if err != nil {
			return err
		}
		top.Mode = 0o700
		return tx.PutFile(top)
	})
}

// TestNamesAreBytes: any name Linux allows goes in and comes out of the
// catalog byte for byte (issue 8: names not UTF-8 came back with U+FFFD,
// and nothing could be found under them).
func TestNamesAreBytes(t *testing.T) {
	for engine, newEngine := range engines(t) {
		t.Run(engine, func(t *testing.T) {
			c := newNamesCatalog(t, newEngine())
			for _, name := range nameSeeds {
				checkNameRoundTrip(t, c, name)
			}
		})
	}
}

// TestRecordUTF8Unchanged: a record whose strings are valid UTF-8 is
// stored exactly as encoding/json writes it, so catalogs written before
// and after read the same.
func TestRecordUTF8Unchanged(t *testing.T) {
	f := File{ID: 7, Name: "café", Path: "d/café", Type: TypeFile}
	data, err := encodeRecord(&f)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, rawMemberKey) {
		t.Errorf("record of valid UTF-8 names carries exact bytes: %s", data)
	}
	f.Name = "x\xff"
	data, err = encodeRecord(&f)
	if err != nil || !bytes.Contains(data, []byte(`"raw":{"name":"eP8="}`)) {
		t.Errorf("record of a name not UTF-8: %s, %v", data, err)
	}
}

// FuzzNameRoundTrip: any name Linux allows round-trips through catalog
// keys and records.
func FuzzNameRoundTrip(f *testing.F) {
	for _, n := range nameSeeds {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, name string) {
		// NAME_MAX: no longer name reaches the catalog from Linux.
		if !validName(name) || name == "l" || len(name) > 255 {
			return
		}
		c, err := New(NewMemoryEngine())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		addWorkspace(t, c, "ws")
		checkNameRoundTrip(t, c, name)
	})
}

// FuzzDecodeRecord: whatever bytes a record holds (a damaged database, a
// newer tapefs), decoding never panics, and what it accepts is encoded
// again to a record that decodes to the same value.
func FuzzDecodeRecord(f *testing.F) {
	seeds := []any{
		&File{ID: 1, Batch: 2, Parent: 3, Name: "x\xff", Path: "d/x\xff", Type: TypeFile, Copies: []Copy{{VOLSER: "TF0001", TapeFile: 1, Offset: 512, Length: 3}}},
		&File{ID: 1, Name: "a", Path: "a", Type: TypeSymlink, Target: "\xfe"},
		&Batch{ID: 1, Workspace: "ws", Entry: "f\xff", Tag: "t", State: Cached, Sealing: "/home/cache/sealing/x/f\xff"},
		&Event{Seq: 1, Kind: "sealed", Message: "batch 1 sealed from put/f\xff"},
		&Workspace{Name: "ws", Quota: 1},
		&Job{ID: 1, Kind: JobMigrate, Batch: 1},
	}
	for _, s := range seeds {
		data, err := encodeRecord(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"raw":{"name":"eP8="}}`))
	f.Add([]byte(`{"raw":{"name":1}}`))
	f.Add([]byte(`{"raw":null,"name":"a"}`))
	f.Add([]byte(`{"name":"a","raw":{"path":"!!"}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, newRecord := range []func() any{
			func() any { return new(File) }, func() any { return new(Batch) }, func() any { return new(Event) },
			func() any { return new(Workspace) }, func() any { return new(Job) }, func() any { return new(CartridgeRecord) },
		} {
			v := newRecord()
			if err := unmarshal(fileKey(1), data, v); err != nil {
				if !strings.Contains(err.Error(), "file 1: corrupt record") {
					t.Errorf("error %q does not name the record", err)
				}
				continue
			}
			again, err := encodeRecord(v)
			if err != nil {
				t.Fatalf("%T decoded from %q does not encode: %v", v, data, err)
			}
			w := newRecord()
			if err := decodeRecord(again, w); err != nil {
				t.Fatalf("%T: re-encoded %q does not decode: %v", v, again, err)
			}
			// Stable: the value read back encodes to the same record (a
			// comparison of values would tell an empty list from none,
			// which the encoding does not keep).
			third, err := encodeRecord(w)
			if err != nil || !bytes.Equal(third, again) {
				t.Fatalf("%T: %+v encoded as %q decodes to %+v, which encodes as %q (%v)", v, v, again, w, third, err)
			}
			// Every string is carried exactly, valid UTF-8 or not.
			sv := structOf(v)
			for _, f := range fieldsOf(sv.Type()) {
				s := sv.Field(f.index).String()
				if !utf8.ValidString(s) && !bytes.Contains(again, rawMemberKey) {
					t.Fatalf("%T: field %s is not UTF-8 and its record %q has no exact bytes", v, f.name, again)
				}
			}
		}
	})
}

// TestNamesAreBytesPostgres: the same on PostgreSQL (keys and records are
// bytea there, so no text encoding stands in the way either).
func TestNamesAreBytesPostgres(t *testing.T) {
	c := newNamesCatalog(t, newPostgresEngine(t))
	for _, name := range nameSeeds {
		checkNameRoundTrip(t, c, name)
	}
}
