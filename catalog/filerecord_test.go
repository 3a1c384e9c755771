package catalog

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// randomFile makes a File with every member set to something a batch
// tree can hold, names drawn from plain text, characters JSON escapes
// (quotes, <, &, control characters) and bytes that are not UTF-8.
func randomFile(r *rand.Rand) File {
	names := []string{"a", "run1234.dat", "R&D", "<x>", `q"uote`, "back\\slash", "tab\tname", "é ü 日本", "x\xff", "\u2028", "sp ace"}
	pick := func() string { return names[r.IntN(len(names))] }
	f := File{
		ID: r.Uint64(), Batch: r.Uint64N(1 << 40), Parent: r.Uint64N(1 << 20),
		Name: pick(), Path: pick() + "/" + pick(),
		Type: []FileType{TypeFile, TypeDir, TypeSymlink}[r.IntN(3)],
		Mode: r.Uint32N(0o10000), UID: r.Uint32(), GID: r.Uint32(),
		Mtime: time.Unix(r.Int64N(4e9), r.Int64N(1e9)),
		Size:  r.Int64(),
	}
	if r.IntN(2) == 0 {
		f.MD5, f.CRC32C = "d41d8cd98f00b204e9800998ecf8427e", "00000000"
	}
	if f.Type == TypeSymlink {
		f.Target = pick()
	}
	if r.IntN(4) == 0 {
		f.Link, f.Nlink = r.Uint64(), r.Uint32N(5)
	}
	for i := r.IntN(4); i > 0; i-- {
		f.Copies = append(f.Copies, Copy{VOLSER: "TF000" + string(rune('0'+i)), TapeFile: r.IntN(1 << 20), Offset: r.Int64(), Length: r.Int64()})
	}
	f.Removed = r.IntN(5) == 0
	return f
}

// TestFileRecordFastPath: a File record decodes to the same value through
// the fast path as through encoding/json, and the records tapefs writes
// for plain names take the fast path (else it would be dead code that
// passes every test).
func TestFileRecordFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fast := 0
	const n = 5000
	for i := 0; i < n; i++ {
		f := randomFile(r)
		data, err := encodeRecord(&f)
		if err != nil {
			t.Fatal(err)
		}
		var viaJSON, viaFast File
		if err := decodeRecordJSON(data, &viaJSON); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		plainText := !bytes.ContainsRune(data, '\\') && !bytes.Contains(data, rawMemberKey)
		if decodeFileRecord(data, &viaFast) {
			fast++
			if !reflect.DeepEqual(viaFast, viaJSON) {
				t.Fatalf("%s:\nfast %+v\njson %+v", data, viaFast, viaJSON)
			}
		} else if plainText {
			t.Fatalf("%s has no escape and no exact bytes but did not take the fast path", data)
		}
		var got File
		if err := decodeRecord(data, &got); err != nil || !reflect.DeepEqual(got, viaJSON) {
			t.Fatalf("%s: decodeRecord gave %+v, %v; want %+v", data, got, err, viaJSON)
		}
	}
	// Name, path and target are each plain 4 times in 11.
	if fast < n/50 {
		t.Errorf("only %d of %d records took the fast path", fast, n)
	}
	plain := File{ID: 7, Batch: 1, Name: "f1", Path: "d/f1", Type: TypeFile, Mode: 0o644, Mtime: time.Now(), Size: 3,
		MD5: "900150983cd24fb0d6963f7d28e17f72", Copies: []Copy{{VOLSER: "TF0001", TapeFile: 2, Offset: 1024, Length: 3}}}
	data, err := encodeRecord(&plain)
	if err != nil {
		t.Fatal(err)
	}
	var got File
	if !decodeFileRecord(data, &got) {
		t.Fatalf("a plain record %s does not take the fast path", data)
	}
	if !got.Mtime.Equal(plain.Mtime) {
		t.Errorf("mtime %v, want %v", got.Mtime, plain.Mtime)
	}
}

// TestFileRecordFallback: what the fast path does not know goes to
// encoding/json, whose answer (value or error) stands.
func TestFileRecordFallback(t *testing.T) {
	for _, rec := range []string{
		`{"id":1,"name":"a\u0026b"}`,                      // an escape
		`{"id":1,"name":"x\ufffd","raw":{"name":"eP8="}}`, // exact bytes
		`{"id":1,"future":true}`,                          // a member of a newer version
		`{"ID":1}`,                                        // json matches names case-insensitively
		`{"id":01}`,                                       // not JSON
		`{"id":1.5}`,                                      // not an integer
		`{"mode":4294967296}`,                             // out of range
		`{"size":-1}`,                                     // negative
		`{"id":null}`,                                     // null keeps the value
		`{"id":1} x`,                                      // text after the value
		"{\"name\":\"\xff\"}",                             // not UTF-8
		`{"id":1`,                                         // cut off
	} {
		var fast File
		if decodeFileRecord([]byte(rec), &fast) {
			t.Errorf("%s took the fast path: %+v", rec, fast)
		}
		var viaJSON, got File
		errJSON := decodeRecordJSON([]byte(rec), &viaJSON)
		err := decodeRecord([]byte(rec), &got)
		if (err == nil) != (errJSON == nil) || !reflect.DeepEqual(got, viaJSON) {
			t.Errorf("%s: decodeRecord %+v, %v; encoding/json %+v, %v", rec, got, err, viaJSON, errJSON)
		}
	}
}

// FuzzFileRecord: whatever the fast path accepts, encoding/json accepts
// too and decodes to the same File.
func FuzzFileRecord(f *testing.F) {
	addRandomRecords(f, 3, 4)
	f.Add([]byte(`{"copies":[]}`))
	f.Add([]byte(` { "id" : 1 , "copies" : [ { "volser" : "A" } ] } `))
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast File
		if !decodeFileRecord(data, &fast) {
			return
		}
		var viaJSON File
		if err := decodeRecordJSON(data, &viaJSON); err != nil {
			t.Fatalf("fast path accepted %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(fast, viaJSON) {
			t.Fatalf("%q:\nfast %+v\njson %+v", data, fast, viaJSON)
		}
	})
}

// BenchmarkDecodeFile: one File record of a listing, fast path against
// encoding/json.
func BenchmarkDecodeFile(b *testing.B) {
	f := File{ID: 123456, Batch: 12, Parent: 123000, Name: "f123", Path: "d012/f123", Type: TypeFile, Mode: 0o644,
		UID: 1000, GID: 1000, Mtime: time.Now(), Size: 4096, MD5: "900150983cd24fb0d6963f7d28e17f72",
		Copies: []Copy{{VOLSER: "TF0001", TapeFile: 2, Offset: 1 << 30, Length: 4096}}}
	data, err := encodeRecord(&f)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			var g File
			if err := decodeRecord(data, &g); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var g File
			if err := decodeRecordJSON(data, &g); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestDirNameFastPath: the members a listing of names needs decode from
// every record tapefs writes (escaped and non-UTF-8 names included: they
// are skipped, the name comes from the directory entry) to what
// encoding/json reads.
func TestDirNameFastPath(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 5000; i++ {
		f := randomFile(r)
		data, err := encodeRecord(&f)
		if err != nil {
			t.Fatal(err)
		}
		var dn DirName
		if !decodeDirName(data, &dn) {
			t.Fatalf("%s: a record tapefs writes does not take the fast path", data)
		}
		if dn.Type != f.Type || dn.Link != f.Link || dn.Removed != f.Removed {
			t.Fatalf("%s: %+v, want type %c link %d removed %v", data, dn, f.Type, f.Link, f.Removed)
		}
	}
	for _, rec := range []string{`{"Type":100}`, `{"type":1.5}`, `{"link":-1}`, `{"name":"a"`, `{"copies":[{"volser":"A"}}`, `{"md5":"a\"}`} {
		if decodeDirName([]byte(rec), new(DirName)) {
			t.Errorf("%s took the fast path", rec)
		}
	}
}

// FuzzDirName: whatever the fast path of a listing accepts that
// encoding/json reads too decodes to the same type, link and removal.
func FuzzDirName(f *testing.F) {
	addRandomRecords(f, 7, 8)
	f.Add([]byte(`{"x":[{"a":"]}"},[1,2]],"type":100}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var dn DirName
		if !decodeDirName(data, &dn) {
			return
		}
		var viaJSON File
		if err := decodeRecordJSON(data, &viaJSON); err != nil {
			return // damaged in a member a listing skips
		}
		if dn.Type != viaJSON.Type || dn.Link != viaJSON.Link || dn.Removed != viaJSON.Removed {
			t.Fatalf("%q: %+v, encoding/json %+v", data, dn, viaJSON)
		}
	})
}

// addRandomRecords seeds a fuzz target with 20 records of random files.
func addRandomRecords(f *testing.F, seed1, seed2 uint64) {
	r := rand.New(rand.NewPCG(seed1, seed2))
	for i := 0; i < 20; i++ {
		file := randomFile(r)
		data, err := encodeRecord(&file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}
