package catalog

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCatalogMemory(t *testing.T) {
	testCatalog(t, func() *Catalog {
		c, err := New(NewMemoryEngine())
		if err != nil {
			panic(err)
		}
		return c
	})
}

func TestCatalogBolt(t *testing.T) {
	testCatalog(t, func() *Catalog {
		c, err := Open(filepath.Join(t.TempDir(), "catalog.db"))
		if err != nil {
			panic(err) // no *testing.T of the subtest here
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func update(t *testing.T, c *Catalog, fn func(tx *Tx) error) {
	t.Helper()
	if err := c.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func view(t *testing.T, c *Catalog, fn func(tx *Tx) error) {
	t.Helper()
	if err := c.View(fn); err != nil {
		t.Fatal(err)
	}
}

// wantErr checks that err wraps target and its text mentions each of words.
func wantErr(t *testing.T, err, target error, words ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("no error, want %v", target)
		return
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q does not wrap %q", err, target)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// tree is a small batch: directories, files, a symlink and a hard link
// (sub/hard shares the data of a.dat: Link is 1 + its index).
func tree(top string) []File {
	return []File{
		{Path: top, Type: TypeDir, Mode: 0o755},
		{Path: top + "/a.dat", Type: TypeFile, Size: 100, MD5: "aa"},
		{Path: top + "/sub", Type: TypeDir, Mode: 0o750},
		{Path: top + "/sub/b.dat", Type: TypeFile, Size: 50, MD5: "bb"},
		{Path: top + "/sub/link", Type: TypeSymlink, Target: "../a.dat"},
		{Path: top + "/sub/hard", Type: TypeFile, Size: 100, MD5: "aa", Link: 2},
		{Path: top + "/z.dat", Type: TypeFile, Size: 10, MD5: "zz"},
	}
}

const treeBytes = 160 // data owners only: a.dat, b.dat, z.dat

func addWorkspace(t *testing.T, c *Catalog, name string) {
	t.Helper()
	update(t, c, func(tx *Tx) error { return tx.PutWorkspace(Workspace{Name: name, Created: t0}) })
}

func register(t *testing.T, c *Catalog, ws, top string, state State) (Batch, []File) {
	t.Helper()
	var b Batch
	var files []File
	update(t, c, func(tx *Tx) error {
		var err error
		b, files, err = tx.RegisterBatch(Batch{Workspace: ws, Entry: top, State: state, Created: t0, Bytes: treeBytes}, tree(top))
		return err
	})
	return b, files
}

func testCatalog(t *testing.T, newCatalog func() *Catalog) {
	t.Run("schema version", func(t *testing.T) {
		c := newCatalog()
		if _, err := New(c.eng); err != nil {
			t.Fatalf("New on a stamped catalog: %v", err)
		}
		update(t, c, func(tx *Tx) error {
			return tx.kv.Put(versionKey(), encodeID(SchemaVersion+1))
		})
		_, err := New(c.eng)
		wantErr(t, err, ErrNewerSchema)
		want := fmt.Sprintf("catalog has schema version %d; this tapefs understands up to %d: upgrade tapefs (the catalog was not modified)", SchemaVersion+1, SchemaVersion)
		if err != nil && err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})

	t.Run("workspaces", func(t *testing.T) {
		c := newCatalog()
		view(t, c, func(tx *Tx) error {
			_, err := tx.Workspace("nope")
			wantErr(t, err, ErrNotFound, "workspace nope")
			ws, err := tx.Workspaces()
			if err != nil || len(ws) != 0 {
				t.Errorf("empty catalog: %v, %v", ws, err)
			}
			return nil
		})
		update(t, c, func(tx *Tx) error {
			for _, n := range []string{"zeta", "alpha", "mid"} {
				if err := tx.PutWorkspace(Workspace{Name: n, Quota: 1000, Manager: 7, Group: 8, Created: t0}); err != nil {
					return err
				}
			}
			// Replace.
			return tx.PutWorkspace(Workspace{Name: "mid", Quota: 5, Created: t0})
		})
		view(t, c, func(tx *Tx) error {
			w, err := tx.Workspace("alpha")
			if err != nil || !reflect.DeepEqual(w, Workspace{Name: "alpha", Quota: 1000, Manager: 7, Group: 8, Created: t0}) {
				t.Errorf("alpha: %+v, %v", w, err)
			}
			if w, _ := tx.Workspace("mid"); w.Quota != 5 || w.Manager != 0 {
				t.Errorf("mid was not replaced: %+v", w)
			}
			ws, err := tx.Workspaces()
			var names []string
			for _, w := range ws {
				names = append(names, w.Name)
			}
			if err != nil || !slices.Equal(names, []string{"alpha", "mid", "zeta"}) {
				t.Errorf("Workspaces: %v, %v", names, err)
			}
			return nil
		})
		update(t, c, func(tx *Tx) error {
			for _, bad := range []string{"", ".", "..", "a/b", "a\x00b"} {
				if err := tx.PutWorkspace(Workspace{Name: bad}); err == nil {
					t.Errorf("workspace %q accepted", bad)
				}
			}
			return nil
		})
	})

	t.Run("register batch", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		b, files := register(t, c, "ws", "run1", Cached)
		if b.ID != 1 || b.FirstFile != 1 || b.Files != 7 || b.Bytes != treeBytes || b.Workspace != "ws" || b.State != Cached {
			t.Errorf("batch: %+v", b)
		}
		// Entries counted apart, and kept in the record.
		var stored Batch
		view(t, c, func(tx *Tx) error { var err error; stored, err = tx.Batch(b.ID); return err })
		if !stored.Kinds || stored.Dirs != 2 || stored.Symlinks != 1 {
			t.Errorf("batch kinds: %v dirs %d symlinks %d, want counted, 2 and 1", stored.Kinds, stored.Dirs, stored.Symlinks)
		}
		want := []struct {
			id, parent, link uint64
			name             string
			nlink            uint32
		}{
			{1, 0, 0, "run1", 0},
			{2, 1, 0, "a.dat", 2},
			{3, 1, 0, "sub", 0},
			{4, 3, 0, "b.dat", 1},
			{5, 3, 0, "link", 0},
			{6, 3, 2, "hard", 2},
			{7, 1, 0, "z.dat", 1},
		}
		if len(files) != len(want) {
			t.Fatalf("%d files", len(files))
		}
		for i, w := range want {
			f := files[i]
			if f.ID != w.id || f.Parent != w.parent || f.Link != w.link || f.Name != w.name || f.Nlink != w.nlink || f.Batch != 1 {
				t.Errorf("file %d: %+v, want %+v", i, f, w)
			}
		}
		if files[5].DataID() != 2 || files[0].DataID() != 1 {
			t.Errorf("DataID: %d %d", files[5].DataID(), files[0].DataID())
		}
		view(t, c, func(tx *Tx) error {
			got, err := tx.Batch(1)
			if err != nil || !reflect.DeepEqual(got, b) {
				t.Errorf("stored batch: %+v, %v", got, err)
			}
			for _, f := range files {
				got, err := tx.File(f.ID)
				if err != nil || !reflect.DeepEqual(got, f) {
					t.Errorf("stored file %d: %+v, %v", f.ID, got, err)
				}
			}
			if w, _ := tx.Workspace("ws"); w.Used != treeBytes {
				t.Errorf("Used %d", w.Used)
			}
			return nil
		})
		// The next batch continues both sequences.
		b2, files2 := register(t, c, "ws", "run2", Caching)
		if b2.ID != 2 || b2.FirstFile != 8 || files2[0].ID != 8 || files2[5].Link != 9 {
			t.Errorf("second batch: %+v, first file %+v", b2, files2[0])
		}
		view(t, c, func(tx *Tx) error {
			if w, _ := tx.Workspace("ws"); w.Used != 2*treeBytes {
				t.Errorf("Used %d", w.Used)
			}
			return nil
		})
		// An empty batch takes an ID and no files.
		update(t, c, func(tx *Tx) error {
			b, files, err := tx.RegisterBatch(Batch{Workspace: "ws", State: Cached}, nil)
			if err != nil || b.ID != 3 || b.Files != 0 || b.FirstFile != 0 || len(files) != 0 {
				t.Errorf("empty batch: %+v, %v", b, err)
			}
			fs, err := tx.Files(b.ID, 0, 0)
			if err != nil || len(fs) != 0 {
				t.Errorf("files of an empty batch: %v, %v", fs, err)
			}
			return err
		})
	})

	t.Run("reserve batch", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		var r Batch
		update(t, c, func(tx *Tx) error {
			var err error
			r, err = tx.ReserveBatch(Batch{Workspace: "ws", Bytes: 1000, Created: t0})
			if err != nil || r.ID != 1 || r.State != Caching {
				t.Errorf("ReserveBatch: %+v, %v", r, err)
			}
			if w, _ := tx.Workspace("ws"); w.Used != 1000 {
				t.Errorf("Used after reserving: %d", w.Used)
			}
			if bs, _ := tx.Batches(ListOptions{Workspace: "ws"}); len(bs) != 1 || bs[0].ID != 1 {
				t.Errorf("the reservation is not listed: %+v", bs)
			}
			_, err = tx.ReserveBatch(Batch{Workspace: "nope"})
			wantErr(t, err, ErrNotFound, "nope")
			return nil
		})
		// Another batch registered meanwhile takes the next ID.
		other, _ := register(t, c, "ws", "other", Cached)
		if other.ID != 2 {
			t.Errorf("batch registered during a reservation: %d", other.ID)
		}
		update(t, c, func(tx *Tx) error {
			b, files, err := tx.RegisterBatch(Batch{ID: r.ID, Workspace: "ws", State: Cached, Bytes: treeBytes}, tree("cli"))
			if err != nil {
				return err
			}
			if b.ID != r.ID || b.FirstFile != 8 || files[0].Batch != r.ID {
				t.Errorf("registered reservation: %+v", b)
			}
			if w, _ := tx.Workspace("ws"); w.Used != 2*treeBytes {
				t.Errorf("the reservation's charge was not replaced: Used %d", w.Used)
			}
			if bs, _ := tx.Batches(ListOptions{Workspace: "ws"}); len(bs) != 2 {
				t.Errorf("workspace index: %+v", bs)
			}
			// Only a CACHING reservation of the same workspace takes files.
			_, _, err = tx.RegisterBatch(Batch{ID: r.ID, Workspace: "ws", State: Cached}, tree("again"))
			wantErr(t, err, nil, "batch 1", "CACHING")
			_, _, err = tx.RegisterBatch(Batch{ID: 99, Workspace: "ws", State: Cached}, tree("x"))
			wantErr(t, err, ErrNotFound, "batch 99")
			return nil
		})
	})

	t.Run("register batch errors", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		with := func(change func(fs []File) []File) []File { return change(tree("top")) }
		cases := []struct {
			name   string
			batch  Batch
			files  []File
			target error
			words  []string
		}{
			{"no workspace", Batch{Workspace: "nope", State: Cached}, tree("top"), ErrNotFound, []string{"nope"}},
			{"no state", Batch{Workspace: "ws"}, tree("top"), nil, []string{"state"}},
			{"missing parent", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				return append(fs, File{Path: "top/nodir/x", Type: TypeFile})
			}), nil, []string{"top/nodir/x", "top/nodir"}},
			{"child before parent", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				fs[2], fs[3] = fs[3], fs[2]
				return fs
			}), nil, []string{"top/sub/b.dat", "top/sub"}},
			{"parent is a file", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				return append(fs, File{Path: "top/a.dat/x", Type: TypeFile})
			}), nil, []string{"top/a.dat/x", "not a directory"}},
			{"duplicate path", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				return append(fs, File{Path: "top/sub/b.dat", Type: TypeFile})
			}), ErrExists, []string{"top/sub/b.dat"}},
			{"leading slash", Batch{Workspace: "ws", State: Cached}, []File{{Path: "/top", Type: TypeDir}}, nil, []string{"/top"}},
			{"dot dot", Batch{Workspace: "ws", State: Cached}, []File{{Path: "top", Type: TypeDir}, {Path: "top/../x", Type: TypeFile}}, nil, []string{"top/../x"}},
			{"trailing slash", Batch{Workspace: "ws", State: Cached}, []File{{Path: "top/", Type: TypeDir}}, nil, []string{"top/"}},
			{"dot", Batch{Workspace: "ws", State: Cached}, []File{{Path: ".", Type: TypeDir}}, nil, []string{"."}},
			{"empty path", Batch{Workspace: "ws", State: Cached}, []File{{Type: TypeFile}}, nil, []string{"empty path"}},
			{"unknown type", Batch{Workspace: "ws", State: Cached}, []File{{Path: "p", Type: 'x'}}, nil, []string{"p", "type"}},
			{"link out of range", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				fs[5].Link = 99
				return fs
			}), nil, []string{"top/sub/hard"}},
			{"link to itself", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				fs[5].Link = 6
				return fs
			}), nil, []string{"top/sub/hard"}},
			{"link to a directory", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				fs[5].Link = 3
				return fs
			}), nil, []string{"top/sub/hard", "top/sub"}},
			{"link to a link", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				fs[6].Link = 6
				return fs
			}), nil, []string{"top/z.dat", "top/sub/hard"}},
			{"directory as a link", Batch{Workspace: "ws", State: Cached}, with(func(fs []File) []File {
				fs[2].Link = 2
				return fs
			}), nil, []string{"top/sub"}},
		}
		for _, tc := range cases {
			update(t, c, func(tx *Tx) error {
				_, _, err := tx.RegisterBatch(tc.batch, tc.files)
				if err == nil {
					t.Errorf("%s: no error", tc.name)
					return nil
				}
				if tc.target != nil && !errors.Is(err, tc.target) {
					t.Errorf("%s: %q does not wrap %q", tc.name, err, tc.target)
				}
				for _, w := range tc.words {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %q does not mention %q", tc.name, err, w)
					}
				}
				return nil // commit: a refused registration must have written nothing
			})
		}
		b, files := register(t, c, "ws", "top", Cached)
		if b.ID != 1 || files[0].ID != 1 {
			t.Errorf("refused registrations used IDs: batch %d, first file %d", b.ID, files[0].ID)
		}
		view(t, c, func(tx *Tx) error {
			if w, _ := tx.Workspace("ws"); w.Used != treeBytes {
				t.Errorf("Used %d", w.Used)
			}
			return nil
		})
	})

	t.Run("lookup and children", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		b, files := register(t, c, "ws", "run1", Cached)
		b2, _ := register(t, c, "ws", "run1", Cached) // same names, other batch
		view(t, c, func(tx *Tx) error {
			f, err := tx.Lookup(b.ID, 0, "run1")
			if err != nil || f.ID != files[0].ID {
				t.Errorf("top: %+v, %v", f, err)
			}
			f, err = tx.Lookup(b.ID, files[2].ID, "hard")
			if err != nil || !reflect.DeepEqual(f, files[5]) {
				t.Errorf("sub/hard: %+v, %v", f, err)
			}
			f, err = tx.Lookup(b2.ID, 0, "run1")
			if err != nil || f.Batch != b2.ID {
				t.Errorf("other batch: %+v, %v", f, err)
			}
			_, err = tx.Lookup(b.ID, files[0].ID, "nope")
			wantErr(t, err, ErrNotFound, "nope")
			_, err = tx.Lookup(b.ID, files[2].ID, "a.dat") // a.dat is in run1, not in sub
			wantErr(t, err, ErrNotFound, "a.dat")
			_, err = tx.Lookup(b.ID, 0, "a.dat")
			wantErr(t, err, ErrNotFound)

			names := func(fs []File, err error) string {
				if err != nil {
					t.Error(err)
				}
				var n []string
				for _, f := range fs {
					n = append(n, f.Name)
				}
				return strings.Join(n, ",")
			}
			top, sub := files[0].ID, files[2].ID
			for _, c := range []struct {
				parent uint64
				after  string
				limit  int
				want   string
			}{
				{0, "", 0, "run1"},
				{top, "", 0, "a.dat,sub,z.dat"},
				{top, "", 2, "a.dat,sub"},
				{top, "a.dat", 0, "sub,z.dat"},
				{top, "a.dat", 1, "sub"},
				{top, "b", 0, "sub,z.dat"}, // after a name that is not there
				{top, "sub", 5, "z.dat"},   // last page shorter than the limit
				{top, "z.dat", 0, ""},      // after the last name
				{top, "\xff", 0, ""},       // after everything
				{sub, "", 0, "b.dat,hard,link"},
				{sub, "b.dat", 0, "hard,link"},
				{files[1].ID, "", 0, ""}, // a regular file has no entries
				{999, "", 0, ""},
			} {
				got := names(tx.Children(b.ID, c.parent, c.after, c.limit))
				if got != c.want {
					t.Errorf("Children(%d, %q, %d) = %q, want %q", c.parent, c.after, c.limit, got, c.want)
				}
				checkChildNames(t, tx, b.ID, c.parent, c.after, c.limit)
			}
			// Paging through a directory page by page gives it whole.
			var all []string
			for after := ""; ; {
				page, err := tx.Children(b.ID, top, after, 1)
				if err != nil || len(page) == 0 {
					break
				}
				all = append(all, page[0].Name)
				after = page[0].Name
			}
			if strings.Join(all, ",") != "a.dat,sub,z.dat" {
				t.Errorf("paged: %v", all)
			}
			return nil
		})
	})

	t.Run("files", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		register(t, c, "ws", "run1", Cached) // files 1-7
		b, _ := register(t, c, "ws", "run2", Cached)
		register(t, c, "ws", "run3", Cached) // files 15-21 must not show
		ids := func(fs []File, err error) []uint64 {
			if err != nil {
				t.Error(err)
			}
			var out []uint64
			for _, f := range fs {
				out = append(out, f.ID)
			}
			return out
		}
		view(t, c, func(tx *Tx) error {
			for _, c := range []struct {
				after uint64
				limit int
				want  []uint64
			}{
				{0, 0, []uint64{8, 9, 10, 11, 12, 13, 14}},
				{0, 3, []uint64{8, 9, 10}},
				{3, 2, []uint64{8, 9}},    // after below the batch
				{10, 2, []uint64{11, 12}}, // inside
				{12, 0, []uint64{13, 14}},
				{13, 5, []uint64{14}},
				{14, 0, nil},
				{100, 0, nil},
			} {
				if got := ids(tx.Files(b.ID, c.after, c.limit)); !slices.Equal(got, c.want) {
					t.Errorf("Files(after %d, limit %d) = %v, want %v", c.after, c.limit, got, c.want)
				}
			}
			_, err := tx.Files(99, 0, 0)
			wantErr(t, err, ErrNotFound, "batch 99")
			return nil
		})
	})

	t.Run("put file", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		_, files := register(t, c, "ws", "run1", Cached)
		update(t, c, func(tx *Tx) error {
			f := files[1]
			f.MD5 = "new"
			f.Copies = []Copy{{VOLSER: "A00001", TapeFile: 3, Offset: 512, Length: 100}}
			if err := tx.PutFile(f); err != nil {
				return err
			}
			got, err := tx.File(f.ID)
			if err != nil || !reflect.DeepEqual(got, f) {
				t.Errorf("after PutFile: %+v, %v", got, err)
			}
			moved := f
			moved.Name = "renamed"
			wantErr(t, tx.PutFile(moved), nil, "cannot change")
			wantErr(t, tx.PutFile(File{ID: 999}), ErrNotFound, "file 999")
			_, err = tx.File(999)
			wantErr(t, err, ErrNotFound, "file 999")
			return nil
		})
	})

	t.Run("batches", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "a")
		addWorkspace(t, c, "b")
		// Batches 1..9: workspace a for odd IDs, b for even; every third
		// synced.
		for i := 1; i <= 9; i++ {
			ws, state := "a", Cached
			if i%2 == 0 {
				ws = "b"
			}
			if i%3 == 0 {
				state = Synced
			}
			register(t, c, ws, fmt.Sprintf("run%d", i), state)
		}
		view(t, c, func(tx *Tx) error {
			for _, c := range []struct {
				o    ListOptions
				want []uint64
			}{
				{ListOptions{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}},
				{ListOptions{Limit: 4}, []uint64{1, 2, 3, 4}},
				{ListOptions{After: 4, Limit: 4}, []uint64{5, 6, 7, 8}},
				{ListOptions{After: 8, Limit: 4}, []uint64{9}},
				{ListOptions{After: 9}, nil},
				{ListOptions{After: 1 << 63}, nil},
				{ListOptions{After: ^uint64(0)}, nil},
				{ListOptions{Newest: true}, []uint64{9, 8, 7, 6, 5, 4, 3, 2, 1}},
				{ListOptions{Newest: true, Limit: 3}, []uint64{9, 8, 7}},
				{ListOptions{Newest: true, After: 7, Limit: 3}, []uint64{6, 5, 4}},
				{ListOptions{Newest: true, After: 2}, []uint64{1}},
				{ListOptions{Newest: true, After: 1}, nil},
				{ListOptions{Newest: true, After: 100}, []uint64{9, 8, 7, 6, 5, 4, 3, 2, 1}},
				{ListOptions{Workspace: "a"}, []uint64{1, 3, 5, 7, 9}},
				{ListOptions{Workspace: "b", Limit: 2}, []uint64{2, 4}},
				{ListOptions{Workspace: "b", After: 4}, []uint64{6, 8}},
				{ListOptions{Workspace: "a", Newest: true, Limit: 2}, []uint64{9, 7}},
				{ListOptions{Workspace: "a", Newest: true, After: 7}, []uint64{5, 3, 1}},
				{ListOptions{Workspace: "nope"}, nil},
				{ListOptions{States: []State{Synced}}, []uint64{3, 6, 9}},
				{ListOptions{States: []State{Synced}, Limit: 2}, []uint64{3, 6}},
				{ListOptions{States: []State{Synced}, Newest: true, Limit: 2}, []uint64{9, 6}},
				{ListOptions{States: []State{Synced, Cached}, Workspace: "b"}, []uint64{2, 4, 6, 8}},
				{ListOptions{States: []State{Synced}, Workspace: "a", After: 3}, []uint64{9}},
				{ListOptions{States: []State{Deleted}}, nil},
			} {
				bs, err := tx.Batches(c.o)
				if err != nil {
					t.Error(err)
				}
				var got []uint64
				for _, b := range bs {
					got = append(got, b.ID)
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("Batches(%+v) = %v, want %v", c.o, got, c.want)
				}
			}
			_, err := tx.Batch(99)
			wantErr(t, err, ErrNotFound, "batch 99")
			return nil
		})
	})

	t.Run("put batch", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "a")
		addWorkspace(t, c, "b")
		b, _ := register(t, c, "a", "run1", Cached)
		update(t, c, func(tx *Tx) error {
			b.State, b.Attempts, b.Reason = Failed, 2, "drive error"
			if err := tx.PutBatch(b); err != nil {
				return err
			}
			got, err := tx.Batch(b.ID)
			if err != nil || !reflect.DeepEqual(got, b) {
				t.Errorf("after PutBatch: %+v, %v", got, err)
			}
			moved := b
			moved.Workspace = "b"
			wantErr(t, tx.PutBatch(moved), nil, "workspace a", "b")
			wantErr(t, tx.PutBatch(Batch{Workspace: "a"}), nil, "no ID")
			// A batch created by PutBatch is indexed, and its ID is
			// never handed out again.
			if err := tx.PutBatch(Batch{ID: 10, Workspace: "b", State: Cached}); err != nil {
				return err
			}
			bs, err := tx.Batches(ListOptions{Workspace: "b"})
			if err != nil || len(bs) != 1 || bs[0].ID != 10 {
				t.Errorf("index of b: %+v, %v", bs, err)
			}
			nb, _, err := tx.RegisterBatch(Batch{Workspace: "a", State: Cached}, nil)
			if err != nil || nb.ID != 11 {
				t.Errorf("next batch: %d, %v", nb.ID, err)
			}
			return nil
		})
		view(t, c, func(tx *Tx) error {
			if w, _ := tx.Workspace("a"); w.Used != treeBytes {
				t.Errorf("PutBatch changed Used: %d", w.Used)
			}
			return nil
		})
	})

	t.Run("find path", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "a")
		addWorkspace(t, c, "b")
		register(t, c, "a", "run", Cached) // 1
		register(t, c, "b", "run", Cached) // 2
		register(t, c, "a", "run", Synced) // 3
		update(t, c, func(tx *Tx) error {
			_, err := tx.RemoveBatch(3, t0)
			return err
		})
		view(t, c, func(tx *Tx) error {
			for _, c := range []struct {
				ws, path string
				want     []uint64
			}{
				{"a", "run/sub/b.dat", []uint64{1, 3}},
				{"a", "run/sub/hard", []uint64{1, 3}}, // hard links are regular files
				{"b", "run/sub/b.dat", []uint64{2}},
				{"a", "run/sub", nil},      // directories are not indexed
				{"a", "run/sub/link", nil}, // nor symlinks
				{"a", "run/sub/b", nil},    // a prefix of a path is not the path
				{"a", "run", nil},
				{"c", "run/a.dat", nil},
			} {
				got, err := tx.FindPath(c.ws, c.path)
				if err != nil || !slices.Equal(got, c.want) {
					t.Errorf("FindPath(%s, %s) = %v, %v; want %v", c.ws, c.path, got, err, c.want)
				}
			}
			return nil
		})
	})

	t.Run("remove undelete purge", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		b1, files := register(t, c, "ws", "run1", CachedSynced)
		b2, _ := register(t, c, "ws", "run1", Cached)
		var keep Job
		update(t, c, func(tx *Tx) error {
			for _, j := range []Job{{Kind: JobMigrate, Batch: b1.ID}, {Kind: JobRecall, Batch: b1.ID, File: files[1].ID}} {
				if _, err := tx.AddJob(j); err != nil {
					return err
				}
			}
			var err error
			keep, err = tx.AddJob(Job{Kind: JobMigrate, Batch: b2.ID})
			return err
		})
		later := t0.Add(time.Hour)
		update(t, c, func(tx *Tx) error {
			got, err := tx.RemoveBatch(b1.ID, later)
			if err != nil || got.State != Deleted || got.Prior != CachedSynced || !got.Deleted.Equal(later) {
				t.Errorf("RemoveBatch: %+v, %v", got, err)
			}
			if stored, _ := tx.Batch(b1.ID); !reflect.DeepEqual(stored, got) {
				t.Errorf("stored: %+v", stored)
			}
			_, err = tx.RemoveBatch(b1.ID, later)
			wantErr(t, err, nil, "batch 1", "already deleted")
			_, err = tx.RemoveBatch(99, later)
			wantErr(t, err, ErrNotFound, "batch 99")
			if w, _ := tx.Workspace("ws"); w.Used != 2*treeBytes {
				t.Errorf("soft delete changed Used: %d", w.Used)
			}
			bs, _ := tx.Batches(ListOptions{States: []State{Deleted}})
			if len(bs) != 1 || bs[0].ID != b1.ID {
				t.Errorf("deleted batches: %+v", bs)
			}

			got, err = tx.UndeleteBatch(b1.ID)
			if err != nil || got.State != CachedSynced || got.Prior != "" || !got.Deleted.IsZero() {
				t.Errorf("UndeleteBatch: %+v, %v", got, err)
			}
			_, err = tx.UndeleteBatch(b1.ID)
			wantErr(t, err, nil, "batch 1", "not deleted")
			_, err = tx.UndeleteBatch(99)
			wantErr(t, err, ErrNotFound, "batch 99")
			_, err = tx.RemoveBatch(b1.ID, later)
			return err
		})
		update(t, c, func(tx *Tx) error {
			if err := tx.PurgeBatch(b1.ID); err != nil {
				return err
			}
			wantErr(t, tx.PurgeBatch(b1.ID), ErrNotFound, "batch 1")
			return nil
		})
		view(t, c, func(tx *Tx) error {
			_, err := tx.Batch(b1.ID)
			wantErr(t, err, ErrNotFound)
			for _, f := range files {
				_, err := tx.File(f.ID)
				wantErr(t, err, ErrNotFound)
			}
			_, err = tx.Lookup(b1.ID, 0, "run1")
			wantErr(t, err, ErrNotFound)
			if ch, _ := tx.Children(b1.ID, files[0].ID, "", 0); len(ch) != 0 {
				t.Errorf("children left: %v", ch)
			}
			if ids, _ := tx.FindPath("ws", "run1/a.dat"); !slices.Equal(ids, []uint64{b2.ID}) {
				t.Errorf("path index: %v", ids)
			}
			if bs, _ := tx.Batches(ListOptions{Workspace: "ws"}); len(bs) != 1 || bs[0].ID != b2.ID {
				t.Errorf("workspace index: %+v", bs)
			}
			if jobs, _ := tx.Jobs(""); len(jobs) != 1 || jobs[0] != keep {
				t.Errorf("jobs left: %+v", jobs)
			}
			if w, _ := tx.Workspace("ws"); w.Used != treeBytes {
				t.Errorf("Used after purge: %d", w.Used)
			}
			// The other batch with the same names is whole.
			if f, err := tx.Lookup(b2.ID, 0, "run1"); err != nil || f.Batch != b2.ID {
				t.Errorf("other batch: %+v, %v", f, err)
			}
			// A purge does not rewind the sequences.
			return nil
		})
		b3, f3 := register(t, c, "ws", "run3", Cached)
		if b3.ID != 3 || f3[0].ID != 15 {
			t.Errorf("after purge: batch %d, first file %d", b3.ID, f3[0].ID)
		}
	})

	t.Run("commit aggregate", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		b1, f1 := register(t, c, "ws", "run1", Syncing)
		b2, f2 := register(t, c, "ws", "run2", Syncing)
		b3, _ := register(t, c, "ws", "run3", Syncing)
		var recall, otherMigrate Job
		update(t, c, func(tx *Tx) error {
			for _, b := range []Batch{b1, b2} {
				if _, err := tx.AddJob(Job{Kind: JobMigrate, Batch: b.ID}); err != nil {
					return err
				}
			}
			var err error
			recall, err = tx.AddJob(Job{Kind: JobRecall, Batch: b1.ID, File: f1[1].ID})
			if err != nil {
				return err
			}
			otherMigrate, err = tx.AddJob(Job{Kind: JobMigrate, Batch: b3.ID})
			if err != nil {
				return err
			}
			_, err = tx.RemoveBatch(b2.ID, t0) // deleted while syncing
			return err
		})
		cp := func(off int64) Copy { return Copy{VOLSER: "A00001", TapeFile: 1, Offset: off, Length: 10} }
		synced := t0.Add(time.Minute)
		update(t, c, func(tx *Tx) error {
			return tx.CommitAggregate(AggregateCommit{
				Copies:    map[uint64]Copy{f1[1].ID: cp(0), f1[3].ID: cp(512), f2[1].ID: cp(1024)},
				OnTape:    map[uint64]int64{b1.ID: 150, b2.ID: 100},
				Cartridge: CartridgeRecord{VOLSER: "A00001", Capacity: 1 << 40, Used: 2048, State: "full", TapeFiles: 1},
				Synced:    []uint64{b1.ID, b2.ID},
				Events: []Event{
					{Time: synced, Workspace: "ws", Batch: b1.ID, Kind: "state", State: CachedSynced, Message: "synced"},
					{Time: synced, VOLSER: "A00001", Kind: "aggregate", Message: "written"},
				},
				Time: synced,
			})
		})
		// A second aggregate holding a second copy of the same file.
		update(t, c, func(tx *Tx) error {
			return tx.CommitAggregate(AggregateCommit{
				Copies: map[uint64]Copy{f1[1].ID: {VOLSER: "B00001", TapeFile: 4, Offset: 0, Length: 10}},
				OnTape: map[uint64]int64{b3.ID: 7},
			})
		})
		view(t, c, func(tx *Tx) error {
			f, _ := tx.File(f1[1].ID)
			if len(f.Copies) != 2 || f.Copies[0] != cp(0) || f.Copies[1].VOLSER != "B00001" {
				t.Errorf("copies of a.dat: %+v", f.Copies)
			}
			if f, _ := tx.File(f1[3].ID); !slices.Equal(f.Copies, []Copy{cp(512)}) {
				t.Errorf("copies of b.dat: %+v", f.Copies)
			}
			if f, _ := tx.File(f1[6].ID); len(f.Copies) != 0 {
				t.Errorf("copies of z.dat: %+v", f.Copies)
			}
			got1, _ := tx.Batch(b1.ID)
			if got1.State != CachedSynced || got1.OnTape != 150 || !got1.Synced.Equal(synced) {
				t.Errorf("batch 1: %+v", got1)
			}
			got2, _ := tx.Batch(b2.ID)
			if got2.State != Deleted || got2.Prior != CachedSynced || got2.OnTape != 100 || !got2.Synced.Equal(synced) {
				t.Errorf("batch 2 (deleted): %+v", got2)
			}
			got3, _ := tx.Batch(b3.ID)
			if got3.State != Syncing || got3.OnTape != 7 || !got3.Synced.IsZero() {
				t.Errorf("batch 3: %+v", got3)
			}
			cart, err := tx.Cartridge("A00001")
			if err != nil || cart.Used != 2048 || cart.State != "full" {
				t.Errorf("cartridge: %+v, %v", cart, err)
			}
			jobs, _ := tx.Jobs("")
			if !reflect.DeepEqual(jobs, []Job{recall, otherMigrate}) {
				t.Errorf("jobs: %+v", jobs)
			}
			evs, _ := tx.Events(0, 0, "")
			if len(evs) != 2 || evs[0].Seq != 1 || evs[1].VOLSER != "A00001" {
				t.Errorf("events: %+v", evs)
			}
			return nil
		})
		update(t, c, func(tx *Tx) error {
			got, err := tx.UndeleteBatch(b2.ID)
			if err != nil || got.State != CachedSynced {
				t.Errorf("undelete of a batch synced while deleted: %+v, %v", got, err)
			}
			return nil
		})
		// Errors roll the whole commit back.
		for name, a := range map[string]AggregateCommit{
			"copy of a hard link": {Copies: map[uint64]Copy{f1[5].ID: cp(0)}},
			"missing file":        {Copies: map[uint64]Copy{999: cp(0)}},
			"missing batch":       {OnTape: map[uint64]int64{99: 1}},
			"synced without time": {Synced: []uint64{b3.ID}},
			"missing synced":      {Synced: []uint64{99}, Time: synced},
		} {
			err := c.Update(func(tx *Tx) error { return tx.CommitAggregate(a) })
			if err == nil {
				t.Errorf("%s: no error", name)
			}
		}
		err := c.Update(func(tx *Tx) error {
			return tx.CommitAggregate(AggregateCommit{
				Copies: map[uint64]Copy{f1[6].ID: cp(9)},
				Synced: []uint64{b3.ID, 99},
				Time:   synced,
			})
		})
		wantErr(t, err, ErrNotFound, "batch 99")
		view(t, c, func(tx *Tx) error {
			if f, _ := tx.File(f1[6].ID); len(f.Copies) != 0 {
				t.Errorf("failed commit left a copy: %+v", f.Copies)
			}
			if b, _ := tx.Batch(b3.ID); b.State != Syncing {
				t.Errorf("failed commit left batch 3 %s", b.State)
			}
			return nil
		})
	})

	t.Run("jobs", func(t *testing.T) {
		c := newCatalog()
		var jobs []Job
		update(t, c, func(tx *Tx) error {
			for i, k := range []JobKind{JobMigrate, JobRecall, JobSeal, JobRecall, JobMigrate} {
				j, err := tx.AddJob(Job{ID: 77, Kind: k, Batch: uint64(i + 1), Created: t0})
				if err != nil {
					return err
				}
				if j.ID != uint64(i+1) {
					t.Errorf("job %d got ID %d", i, j.ID)
				}
				jobs = append(jobs, j)
			}
			_, err := tx.AddJob(Job{Batch: 1})
			wantErr(t, err, nil, "kind")
			return nil
		})
		kinds := func(tx *Tx, k JobKind) []uint64 {
			js, err := tx.Jobs(k)
			if err != nil {
				t.Error(err)
			}
			var ids []uint64
			for _, j := range js {
				ids = append(ids, j.ID)
			}
			return ids
		}
		update(t, c, func(tx *Tx) error {
			if got := kinds(tx, ""); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
				t.Errorf("all: %v", got)
			}
			if got := kinds(tx, JobRecall); !slices.Equal(got, []uint64{2, 4}) {
				t.Errorf("recall: %v", got)
			}
			if got := kinds(tx, "nope"); got != nil {
				t.Errorf("unknown kind: %v", got)
			}
			j, err := tx.Job(3)
			if err != nil || j != jobs[2] {
				t.Errorf("Job(3): %+v, %v", j, err)
			}
			// Retry backoff; and a change of kind moves the job's index.
			j.Attempts, j.NotBefore = 2, t0.Add(time.Minute)
			if err := tx.PutJob(j); err != nil {
				return err
			}
			j.Kind = JobRecall
			if err := tx.PutJob(j); err != nil {
				return err
			}
			if got, _ := tx.Job(3); got != j {
				t.Errorf("after PutJob: %+v", got)
			}
			if got := kinds(tx, JobRecall); !slices.Equal(got, []uint64{2, 3, 4}) {
				t.Errorf("recall after PutJob: %v", got)
			}
			if got := kinds(tx, JobSeal); got != nil {
				t.Errorf("seal after PutJob: %v", got)
			}
			wantErr(t, tx.PutJob(Job{ID: 99, Kind: JobSeal}), ErrNotFound, "job 99")
			if err := tx.DeleteJob(2); err != nil {
				return err
			}
			wantErr(t, tx.DeleteJob(2), ErrNotFound, "job 2")
			_, err = tx.Job(2)
			wantErr(t, err, ErrNotFound, "job 2")
			if got := kinds(tx, JobRecall); !slices.Equal(got, []uint64{3, 4}) {
				t.Errorf("recall after delete: %v", got)
			}
			j, err = tx.AddJob(Job{Kind: JobSeal})
			if err != nil || j.ID != 6 {
				t.Errorf("IDs are not reused: %d, %v", j.ID, err)
			}
			return nil
		})
	})

	t.Run("events", func(t *testing.T) {
		c := newCatalog()
		view(t, c, func(tx *Tx) error {
			last, err := tx.LastEvent()
			if err != nil || last != 0 {
				t.Errorf("LastEvent of an empty log: %d, %v", last, err)
			}
			return nil
		})
		update(t, c, func(tx *Tx) error {
			for i, ws := range []string{"a", "b", "", "a", "b", "a"} {
				e, err := tx.AppendEvent(Event{Seq: 99, Time: t0, Workspace: ws, Kind: "state", Message: fmt.Sprint(i)})
				if err != nil {
					return err
				}
				if e.Seq != uint64(i+1) {
					t.Errorf("event %d got seq %d", i, e.Seq)
				}
			}
			return nil
		})
		view(t, c, func(tx *Tx) error {
			for _, c := range []struct {
				after uint64
				limit int
				ws    string
				want  []uint64
			}{
				{0, 0, "", []uint64{1, 2, 3, 4, 5, 6}},
				{2, 0, "", []uint64{3, 4, 5, 6}},
				{2, 2, "", []uint64{3, 4}},
				{6, 0, "", nil},
				{^uint64(0), 0, "", nil},
				{0, 0, "a", []uint64{1, 4, 6}},
				{1, 0, "a", []uint64{4, 6}},
				{0, 1, "a", []uint64{1}},
				{4, 0, "a", []uint64{6}},
				{6, 0, "a", nil},
				{0, 0, "b", []uint64{2, 5}},
				{0, 0, "c", nil},
			} {
				evs, err := tx.Events(c.after, c.limit, c.ws)
				if err != nil {
					t.Error(err)
				}
				var got []uint64
				for _, e := range evs {
					got = append(got, e.Seq)
					if c.ws != "" && e.Workspace != c.ws {
						t.Errorf("event %d of workspace %q in %q", e.Seq, e.Workspace, c.ws)
					}
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("Events(%d, %d, %q) = %v, want %v", c.after, c.limit, c.ws, got, c.want)
				}
			}
			evs, _ := tx.Events(2, 1, "")
			if len(evs) != 1 || evs[0] != (Event{Seq: 3, Time: t0, Kind: "state", Message: "2", Origin: c.Origin()}) {
				t.Errorf("event 3: %+v", evs)
			}
			last, err := tx.LastEvent()
			if err != nil || last != 6 {
				t.Errorf("LastEvent: %d, %v", last, err)
			}
			return nil
		})
	})

	t.Run("cartridges", func(t *testing.T) {
		c := newCatalog()
		update(t, c, func(tx *Tx) error {
			for _, v := range []string{"B00002", "A00001", "B00001"} {
				if err := tx.PutCartridge(CartridgeRecord{VOLSER: v, Capacity: 100, State: "scratch"}); err != nil {
					return err
				}
			}
			wantErr(t, tx.PutCartridge(CartridgeRecord{}), nil, "VOLSER")
			return tx.PutCartridge(CartridgeRecord{VOLSER: "A00001", Capacity: 100, Used: 40, State: "filling", TapeFiles: 2})
		})
		view(t, c, func(tx *Tx) error {
			got, err := tx.Cartridge("A00001")
			if err != nil || got != (CartridgeRecord{VOLSER: "A00001", Capacity: 100, Used: 40, State: "filling", TapeFiles: 2}) {
				t.Errorf("A00001: %+v, %v", got, err)
			}
			_, err = tx.Cartridge("Z00009")
			wantErr(t, err, ErrNotFound, "Z00009")
			all, err := tx.Cartridges()
			var vs []string
			for _, c := range all {
				vs = append(vs, c.VOLSER)
			}
			if err != nil || !slices.Equal(vs, []string{"A00001", "B00001", "B00002"}) {
				t.Errorf("Cartridges: %v, %v", vs, err)
			}
			return nil
		})
	})

	t.Run("cartridge pools and states", func(t *testing.T) {
		c := newCatalog()
		update(t, c, func(tx *Tx) error {
			if _, err := tx.SetCartridgePool("TF0001", "pool-a"); err != nil {
				return err
			}
			if _, err := tx.SetCartridgeAdmin("TF0001", CartridgeLost); err != nil {
				return err
			}
			_, err := tx.SetCartridgeAdmin("TF0001", "full")
			wantErr(t, err, nil, "full", "read-only")
			_, err = tx.SetCartridgePool("TF0001", "a/b")
			wantErr(t, err, nil, "a/b")
			// What the library writes after a tape file keeps root's pool and state.
			return tx.PutCartridge(CartridgeRecord{VOLSER: "TF0001", Capacity: 100, Used: 40, State: CartridgeFilling, TapeFiles: 2})
		})
		view(t, c, func(tx *Tx) error {
			got, err := tx.Cartridge("TF0001")
			want := CartridgeRecord{VOLSER: "TF0001", Capacity: 100, Used: 40, State: CartridgeFilling, TapeFiles: 2, Pool: "pool-a", Admin: CartridgeLost}
			if err != nil || got != want {
				t.Errorf("TF0001: %+v, %v; want %+v", got, err, want)
			}
			if got.Status() != CartridgeLost || got.Readable() || got.Writable() {
				t.Errorf("lost cartridge: status %s readable %v writable %v", got.Status(), got.Readable(), got.Writable())
			}
			return nil
		})
		update(t, c, func(tx *Tx) error {
			_, err := tx.SetCartridgeAdmin("TF0001", "")
			return err
		})
		view(t, c, func(tx *Tx) error {
			m, err := tx.CartridgeMap()
			if got := m["TF0001"]; err != nil || got.Status() != CartridgeFilling || !got.Readable() || !got.Writable() {
				t.Errorf("after clearing: %+v, %v", got, err)
			}
			return nil
		})
	})

	t.Run("copies policy of old records", func(t *testing.T) {
		c := newCatalog()
		// A workspace and a batch written before copies existed read as
		// "the default" and "one copy".
		update(t, c, func(tx *Tx) error {
			if err := tx.kv.Put(workspaceKey("old"), []byte(`{"name":"old","quota":0,"manager":0,"group":0,"used":0,"created":"2025-03-01T12:00:00Z"}`)); err != nil {
				return err
			}
			return tx.PutWorkspace(Workspace{Name: "two", Copies: 2, Created: t0})
		})
		view(t, c, func(tx *Tx) error {
			old, err := tx.Workspace("old")
			if err != nil || old.Copies != 0 || old.CopiesOr(1) != 1 || old.CopiesOr(2) != 2 {
				t.Errorf("old workspace: %+v, %v", old, err)
			}
			two, err := tx.Workspace("two")
			if err != nil || two.CopiesOr(1) != 2 {
				t.Errorf("workspace two: %+v, %v", two, err)
			}
			return nil
		})
		if (Batch{}).Want() != 1 || (Batch{Copies: 3}).Want() != 3 {
			t.Error("Batch.Want")
		}
		f := File{Copies: []Copy{{VOLSER: "A"}, {VOLSER: "B"}}}
		if g := f.GoodCopies(func(v string) bool { return v == "A" }); len(g) != 1 || g[0].VOLSER != "B" {
			t.Errorf("GoodCopies: %+v", g)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		c := newCatalog()
		addWorkspace(t, c, "ws")
		boom := errors.New("boom")
		err := c.Update(func(tx *Tx) error {
			if err := tx.PutWorkspace(Workspace{Name: "other"}); err != nil {
				return err
			}
			if _, _, err := tx.RegisterBatch(Batch{Workspace: "ws", State: Cached, Bytes: treeBytes}, tree("run")); err != nil {
				return err
			}
			if _, err := tx.AddJob(Job{Kind: JobMigrate, Batch: 1}); err != nil {
				return err
			}
			if _, err := tx.AppendEvent(Event{Workspace: "ws", Kind: "sealed"}); err != nil {
				return err
			}
			if err := tx.PutCartridge(CartridgeRecord{VOLSER: "A00001"}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update returned %v", err)
		}
		view(t, c, func(tx *Tx) error {
			if ws, _ := tx.Workspaces(); len(ws) != 1 || ws[0].Used != 0 {
				t.Errorf("workspaces: %+v", ws)
			}
			if bs, _ := tx.Batches(ListOptions{}); len(bs) != 0 {
				t.Errorf("batches: %+v", bs)
			}
			if _, err := tx.File(1); !errors.Is(err, ErrNotFound) {
				t.Errorf("file 1: %v", err)
			}
			if ids, _ := tx.FindPath("ws", "run/a.dat"); len(ids) != 0 {
				t.Errorf("path index: %v", ids)
			}
			if js, _ := tx.Jobs(""); len(js) != 0 {
				t.Errorf("jobs: %+v", js)
			}
			if last, _ := tx.LastEvent(); last != 0 {
				t.Errorf("last event %d", last)
			}
			if cs, _ := tx.Cartridges(); len(cs) != 0 {
				t.Errorf("cartridges: %+v", cs)
			}
			return nil
		})
		// The sequences were rolled back too, where the engine allocates
		// IDs inside the transaction; where it hands them out in one of
		// their own (PostgreSQL), they are skipped, never reused.
		b, files := register(t, c, "ws", "run", Cached)
		var separate bool
		c.View(func(tx *Tx) error { _, separate = tx.kv.(separateAllocator); return nil })
		if separate {
			if b.ID <= 1 || files[0].ID <= 1 {
				t.Errorf("after rollback: batch %d, file %d reuse IDs of the rolled-back transaction", b.ID, files[0].ID)
			}
		} else if b.ID != 1 || files[0].ID != 1 {
			t.Errorf("after rollback: batch %d, file %d", b.ID, files[0].ID)
		}
	})

	t.Run("view is read-only", func(t *testing.T) {
		c := newCatalog()
		err := c.View(func(tx *Tx) error { return tx.PutWorkspace(Workspace{Name: "ws"}) })
		if err == nil {
			t.Error("a write in View succeeded")
		}
	})
}

// checkChildNames: ChildNames lists what Children lists, each entry with
// the same name, ID, type, link and removal.
func checkChildNames(t *testing.T, tx *Tx, batch, parent uint64, after string, limit int) {
	t.Helper()
	full, err := tx.Children(batch, parent, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	short, err := tx.ChildNames(batch, parent, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(short) != len(full) {
		t.Fatalf("ChildNames(%d, %q, %d): %d entries, Children %d", parent, after, limit, len(short), len(full))
	}
	for i, f := range full {
		want := DirName{Name: f.Name, ID: f.ID, Link: f.Link, Type: f.Type, Removed: f.Removed}
		if short[i] != want || short[i].DataID() != f.DataID() {
			t.Errorf("ChildNames(%d, %q, %d)[%d] = %+v, want %+v", parent, after, limit, i, short[i], want)
		}
	}
}
