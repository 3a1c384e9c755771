package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBoltNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	addWorkspace(t, c, "ws")
	// What a newer tapefs would leave: a larger version key.
	update(t, c, func(tx *Tx) error { return tx.kv.Put(versionKey(), encodeID(SchemaVersion+1)) })
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(path)

	_, err = Open(path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open: %v, want ErrNewerSchema", err)
	}
	want := fmt.Sprintf("catalog has schema version %d; this tapefs understands up to %d: upgrade tapefs (the catalog was not modified)", SchemaVersion+1, SchemaVersion)
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("the refused catalog was modified")
	}
	if info2, _ := os.Stat(path); !info2.ModTime().Equal(info.ModTime()) {
		t.Error("the refused catalog's mtime changed")
	}
	// Refusing released the file: it can be opened (e.g. by a newer tapefs).
	eng, err := OpenBoltEngine(path)
	if err != nil {
		t.Fatalf("reopen after refusal: %v", err)
	}
	eng.Close()
}

func TestBoltInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c2, err := Open(path)
	if err == nil {
		c2.Close()
		t.Fatal("a second Open of an open catalog succeeded")
	}
	if want := "catalog " + path + " is in use by another tapefs daemon"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the second Open took %s", d)
	}
}

func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalog.db")
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	addWorkspace(t, c, "ws")
	_, files := register(t, c, "ws", "run1", Cached)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	view(t, c, func(tx *Tx) error {
		f, err := tx.Lookup(1, files[2].ID, "b.dat")
		if err != nil || f.MD5 != "bb" {
			t.Errorf("after reopen: %+v, %v", f, err)
		}
		return nil
	})
	b, _ := register(t, c, "ws", "run2", Cached)
	if b.ID != 2 {
		t.Errorf("the sequence did not survive a reopen: batch %d", b.ID)
	}
}

// bigBatch is a batch of n entries: a top directory holding dirs
// subdirectories of files, in the parents-first (depth-first, name order)
// order a directory walk gives.
func bigBatch(top string, n, perDir int) []File {
	files := make([]File, 0, n)
	files = append(files, File{Path: top, Type: TypeDir, Mode: 0o755})
	mtime := time.Unix(1700000000, 0).UTC()
	for d := 0; len(files) < n; d++ {
		dir := fmt.Sprintf("%s/d%04d", top, d)
		files = append(files, File{Path: dir, Type: TypeDir, Mode: 0o755, Mtime: mtime})
		for i := 0; i < perDir && len(files) < n; i++ {
			files = append(files, File{
				Path: fmt.Sprintf("%s/f%06d.dat", dir, i), Type: TypeFile, Mode: 0o644,
				UID: 1000, GID: 1000, Mtime: mtime, Size: 1 << 20, MD5: "d41d8cd98f00b204e9800998ecf8427e",
			})
		}
	}
	return files
}

// TestBoltRegisterLarge: a put of 100,000 files is one RegisterBatch, and
// must stay a matter of seconds on disk.
func TestBoltRegisterLarge(t *testing.T) {
	c := openBolt(t)
	addWorkspace(t, c, "ws")
	// Names in reverse order inside each directory: the catalog must not
	// depend on the caller sorting them.
	files := bigBatch("big", 100_000, 1000)
	for i := 0; i < len(files); {
		j := i + 1
		for j < len(files) && strings.HasPrefix(files[j].Path, files[i].Path+"/") && files[j].Type == TypeFile {
			j++
		}
		for a, b := i+1, j-1; a < b; a, b = a+1, b-1 {
			files[a], files[b] = files[b], files[a]
		}
		i = j
	}
	start := time.Now()
	update(t, c, func(tx *Tx) error {
		_, _, err := tx.RegisterBatch(Batch{Workspace: "ws", State: Cached, Bytes: 100_000 << 20}, files)
		return err
	})
	d := time.Since(start)
	t.Logf("RegisterBatch of %d files on bbolt: %s", len(files), d)
	if d > 20*time.Second {
		t.Errorf("RegisterBatch of %d files took %s", len(files), d)
	}
	view(t, c, func(tx *Tx) error {
		d, err := tx.Lookup(1, 1, "d0050")
		if err != nil {
			return err
		}
		ch, err := tx.Children(1, d.ID, "", 3)
		if err != nil || len(ch) != 3 || ch[0].Name != "f000000.dat" {
			t.Errorf("children of d0050: %+v, %v", ch, err)
		}
		return err
	})
}

// openBolt opens a new bbolt catalog, closed when the test ends.
func openBolt(t *testing.T) *Catalog {
	t.Helper()
	c, err := Open(filepath.Join(t.TempDir(), "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rssFileKB is the process's resident file-backed memory (RssFile), kB.
func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "RssFile:" {
			var kb int
			fmt.Sscan(f[1], &kb)
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestBoltReleaseMapped: after a scan of the whole catalog its pages are
// mapped into the process (the daemon's resident size grew with the
// catalog, issue 10); ReleaseMapped unmaps them and the catalog reads the
// same afterwards.
func TestBoltReleaseMapped(t *testing.T) {
	c := openBolt(t)
	const keys, size = 16_000, 4000 // some 64 MB
	value := bytes.Repeat([]byte("v"), size)
	for i := 0; i < keys; i += 1000 {
		update(t, c, func(tx *Tx) error {
			for j := i; j < i+1000; j++ {
				if err := tx.kv.Put([]byte(fmt.Sprintf("zz/%08d", j)), value); err != nil {
					return err
				}
			}
			return nil
		})
	}
	scan := func() int {
		n := 0
		if err := c.eng.View(func(kv KVTxn) error {
			return kv.Scan([]byte("zz/"), nil, false, func(k, v []byte) (bool, error) {
				if !bytes.Equal(v, value) {
					return false, fmt.Errorf("%s: wrong value", k)
				}
				n++
				return true, nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	scan()
	mapped := rssFileKB(t)
	if err := c.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	released := rssFileKB(t)
	t.Logf("RssFile %d kB after the scan, %d kB after ReleaseMapped", mapped, released)
	if mapped-released < 40<<10 {
		t.Errorf("ReleaseMapped released %d kB of a 64 MB catalog just read (RssFile %d → %d kB), want ≥ 40 MB", mapped-released, mapped, released)
	}
	if n := scan(); n != keys {
		t.Errorf("%d keys read after ReleaseMapped, want %d", n, keys)
	}
}

// TestBoltGetMany: the cursor walk of getMany answers as one Get per key
// does, whatever the keys' order, gaps, repeats and absent keys.
func TestBoltGetMany(t *testing.T) {
	c := openBolt(t)
	k := func(i int) []byte { return []byte(fmt.Sprintf("k/%04d", i)) }
	update(t, c, func(tx *Tx) error {
		for i := 0; i < 1000; i += 3 { // 0, 3, 6, ...: gaps between
			if err := tx.kv.Put(k(i), []byte(fmt.Sprint("v", i))); err != nil {
				return err
			}
		}
		return nil
	})
	var keys [][]byte
	for _, i := range []int{0, 3, 6, 9, 10, 12, 15, 15, 999, 1500, 4, 3, 0, 997, 999, 996, 5000, 300, 301, 303} {
		keys = append(keys, k(i))
	}
	keys = append(keys, []byte("a"), []byte("z"))
	if err := c.eng.View(func(kv KVTxn) error {
		m, ok := kv.(multiGetter)
		if !ok {
			return fmt.Errorf("the bbolt engine's transaction %T reads keys one at a time", kv)
		}
		got, err := m.getMany(keys)
		if err != nil {
			return err
		}
		for i, key := range keys {
			want, _ := kv.Get(key)
			if !bytes.Equal(got[i], want) || (got[i] == nil) != (want == nil) {
				t.Errorf("key %s: getMany %q, Get %q", key, got[i], want)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// mappingFlags returns the VmFlags of the process's mapping starting at
// addr (/proc/self/smaps).
func mappingFlags(t *testing.T, addr uintptr) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	start := fmt.Sprintf("%x-", addr)
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			in = strings.HasPrefix(line, start)
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(line)[1:]
		}
	}
	t.Fatalf("no mapping at %x in /proc/self/smaps", addr)
	return nil
}

// TestBoltReadAround: the catalog's mapping is not left with bbolt's
// MADV_RANDOM (a cold listing would read its pages one at a time), also
// after the file grew and bbolt mapped it anew.
func TestBoltReadAround(t *testing.T) {
	c := openBolt(t)
	db := c.eng.(*boltEngine).db
	check := func(when string) {
		t.Helper()
		view(t, c, func(tx *Tx) error { return nil })
		if flags := mappingFlags(t, db.Info().Data); slices.Contains(flags, "rr") {
			t.Errorf("%s: the catalog's mapping is advised random-read (VmFlags %v)", when, flags)
		}
	}
	check("after open")
	first := db.Info().Data
	value := bytes.Repeat([]byte("v"), 4000)
	for i := 0; i < 40_000 && db.Info().Data == first; i += 1000 {
		update(t, c, func(tx *Tx) error {
			for j := i; j < i+1000; j++ {
				if err := tx.kv.Put([]byte(fmt.Sprintf("zz/%08d", j)), value); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if db.Info().Data == first {
		t.Fatal("160 MB written and bbolt never mapped the file anew")
	}
	check("after the file grew")
}
