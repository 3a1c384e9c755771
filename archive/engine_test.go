package archive

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// TestEngineRoundTrip is the engine test of the core issue: three batches
// (1,000 small files; a 200 MB file; empty files, an empty directory, a
// symlink and a hard-linked pair) reach tape, are evicted, and come back
// in random order with identical bytes, md5s and metadata.
func TestEngineRoundTrip(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Prefetch: true, Settle: time.Hour}.open(t)
	staging := te.StagingDir("ws")
	mtime := time.Date(2020, 5, 17, 12, 30, 0, 0, time.UTC)

	var small []srcFile
	for i := 0; i < 1000; i++ {
		data := randomBytes(int64(i), 100+i*7%4000)
		small = append(small, srcFile{path: fmt.Sprintf("run1/d%02d/f%04d.dat", i%17, i), typ: catalog.TypeFile, data: data, mode: 0o640, mtime: mtime.Add(time.Duration(i) * time.Second)})
	}
	makeTree(t, staging, small)

	bigMD5 := writeBigFile(t, filepath.Join(staging, "big.raw"), 200<<20, 42)

	misc := []srcFile{
		{path: "misc/empty1", typ: catalog.TypeFile, data: []byte{}, mode: 0o600, mtime: mtime},
		{path: "misc/empty2", typ: catalog.TypeFile, data: []byte{}, mode: 0o644, mtime: mtime},
		{path: "misc/emptydir", typ: catalog.TypeDir, mode: 0o750},
		{path: "misc/link", typ: catalog.TypeSymlink, target: "../somewhere/else"},
		{path: "misc/a", typ: catalog.TypeFile, data: []byte("shared bytes of a hard-linked pair\n"), mode: 0o644, mtime: mtime},
	}
	makeTree(t, staging, misc)
	if err := os.Link(filepath.Join(staging, "misc/a"), filepath.Join(staging, "misc/b")); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	var ids []uint64
	for _, entry := range []string{"run1", "big.raw", "misc"} {
		b, err := te.Seal(ctx, "ws", entry, 1000, "t")
		if err != nil {
			t.Fatalf("seal %s: %v", entry, err)
		}
		if _, err := os.Lstat(filepath.Join(staging, entry)); !os.IsNotExist(err) {
			t.Fatalf("entry %s still in put/ after sealing", entry)
		}
		ids = append(ids, b.ID)
	}
	for _, id := range ids {
		if b := waitSynced(t, te.Engine, id); b.State != catalog.CachedSynced {
			t.Fatalf("batch %d: state %s", id, b.State)
		}
	}
	// Every data file has exactly one copy, and the batches say so.
	for _, id := range ids {
		st, err := te.Status(id)
		if err != nil || st.Progress != 1 {
			t.Fatalf("status %d: %+v %v", id, st, err)
		}
	}
	if _, err := te.EvictBatch(0); err != nil {
		t.Fatal(err)
	}
	if objs := te.cache.Objects(); len(objs) != 0 {
		t.Fatalf("%d objects left in the cache after evicting everything", len(objs))
	}
	for _, id := range ids {
		if st, _ := te.Status(id); st.State != catalog.Synced {
			t.Fatalf("batch %d after eviction: %s, want SYNCED", id, st.State)
		}
	}

	// Recall everything in random order, several readers at once.
	type want struct {
		id   uint64
		path string
		md5  string
		src  *srcFile
	}
	var wants []want
	files := map[string]catalog.File{}
	for _, id := range ids {
		for p, f := range batchFiles(t, te.Engine, id) {
			files[p] = f
		}
	}
	for i := range small {
		f := files[small[i].path]
		wants = append(wants, want{f.ID, f.Path, md5hex(small[i].data), &small[i]})
	}
	wants = append(wants, want{files["big.raw"].ID, "big.raw", bigMD5, nil})
	for i := range misc {
		if misc[i].typ == catalog.TypeFile {
			f := files[misc[i].path]
			wants = append(wants, want{f.ID, f.Path, md5hex(misc[i].data), &misc[i]})
		}
	}
	wants = append(wants, want{files["misc/b"].ID, "misc/b", md5hex(misc[4].data), nil})
	rand.New(rand.NewSource(7)).Shuffle(len(wants), func(i, j int) { wants[i], wants[j] = wants[j], wants[i] })

	var wg sync.WaitGroup
	errs := make(chan error, len(wants))
	work := make(chan want)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range work {
				sum, err := md5Through(ctx, te.Engine, x.id)
				if err != nil {
					errs <- fmt.Errorf("%s: %v", x.path, err)
				} else if sum != x.md5 {
					errs <- fmt.Errorf("%s: md5 %s, want %s", x.path, sum, x.md5)
				}
			}
		}()
	}
	for _, x := range wants {
		work <- x
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// Metadata as it was put.
	for _, s := range append(small, misc...) {
		f, ok := files[s.path]
		if !ok {
			t.Fatalf("%s missing from the catalog", s.path)
		}
		if f.Type != s.typ {
			t.Errorf("%s: type %c, want %c", s.path, f.Type, s.typ)
		}
		switch s.typ {
		case catalog.TypeFile:
			if f.Mode != uint32(s.mode) || !f.Mtime.Equal(s.mtime) || f.Size != int64(len(s.data)) || f.MD5 != md5hex(s.data) {
				t.Errorf("%s: mode %o mtime %v size %d md5 %s; want %o %v %d %s", s.path, f.Mode, f.Mtime, f.Size, f.MD5, s.mode, s.mtime, len(s.data), md5hex(s.data))
			}
		case catalog.TypeDir:
			if f.Mode != uint32(s.mode) {
				t.Errorf("%s: mode %o, want %o", s.path, f.Mode, s.mode)
			}
		case catalog.TypeSymlink:
			if f.Target != s.target {
				t.Errorf("%s: target %q, want %q", s.path, f.Target, s.target)
			}
		}
	}
	a, b := files["misc/a"], files["misc/b"]
	if b.Link != a.ID || a.Nlink != 2 || b.DataID() != a.ID {
		t.Errorf("hard link: a=%+v b=%+v", a, b)
	}
	if f := files["big.raw"]; f.Size != 200<<20 || f.MD5 != bigMD5 || f.UID != uint32(os.Getuid()) {
		t.Errorf("big.raw: %+v", f)
	}
	// The whole 200 MB file has its own copy at a known place.
	if c := files["big.raw"].Copies; len(c) != 1 || c[0].Length != 200<<20 {
		t.Errorf("big.raw copies: %+v", c)
	}
}

// TestSealRejects: quota and maximum file size reject an entry, which stays
// in put/ untouched with a reason; a change makes it eligible again.
func TestSealRejects(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Quota: 10_000, MaxFileSize: 5_000, Settle: time.Hour}.open(t)
	staging := te.StagingDir("ws")
	makeTree(t, staging, []srcFile{{path: "big/x", typ: catalog.TypeFile, data: make([]byte, 6_000), mode: 0o644}})
	_, err := te.Seal(context.Background(), "ws", "big", 0, "")
	var rej *RejectError
	if !errorsAs(err, &rej) {
		t.Fatalf("seal: %v, want a RejectError", err)
	}
	if st, why := te.EntryState("ws", "big"); st != EntryRejected || why == "" {
		t.Fatalf("entry state %s %q", st, why)
	}
	if b, err := os.ReadFile(filepath.Join(staging, "big/x")); err != nil || len(b) != 6_000 {
		t.Fatalf("rejected entry touched: %v", err)
	}
	makeTree(t, staging, []srcFile{
		{path: "q/a", typ: catalog.TypeFile, data: make([]byte, 4_000), mode: 0o644},
		{path: "q/b", typ: catalog.TypeFile, data: make([]byte, 4_000), mode: 0o644},
		{path: "q/c", typ: catalog.TypeFile, data: make([]byte, 4_000), mode: 0o644},
	})
	_, err = te.Seal(context.Background(), "ws", "q", 0, "")
	if !errorsAs(err, &rej) || !contains(rej.Reason, "quota") {
		t.Fatalf("seal over quota: %v", err)
	}
	te.EntryChanged("ws", "q")
	if st, _ := te.EntryState("ws", "q"); st != EntryPending {
		t.Fatalf("changed entry state %s, want pending", st)
	}
	os.Remove(filepath.Join(staging, "q/c"))
	if _, err := te.Seal(context.Background(), "ws", "q", 0, ""); err != nil {
		t.Fatalf("seal within quota: %v", err)
	}
	// A named pipe cannot be archived.
	os.MkdirAll(filepath.Join(staging, "fifo"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(staging, "fifo/p"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = te.Seal(context.Background(), "ws", "fifo", 0, ""); !errorsAs(err, &rej) || !contains(rej.Reason, "named pipe") {
		t.Fatalf("seal of a fifo: %v", err)
	}
}

// TestSettleSealsQuietEntries: an entry is sealed after the settle time,
// not while a handle is open.
func TestSettleSealsQuietEntries(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Settle: 200 * time.Millisecond}.open(t)
	staging := te.StagingDir("ws")
	if err := te.EntryOpened("ws", "e"); err != nil {
		t.Fatal(err)
	}
	makeTree(t, staging, []srcFile{{path: "e/f", typ: catalog.TypeFile, data: []byte("hello"), mode: 0o644}})
	time.Sleep(600 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(staging, "e/f")); err != nil {
		t.Fatalf("entry sealed while a handle was open: %v", err)
	}
	te.EntryClosed("ws", "e")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var bs []catalog.Batch
		te.cat.View(func(tx *catalog.Tx) error {
			var err error
			bs, err = tx.Batches(catalog.ListOptions{Workspace: "ws"})
			return err
		})
		if len(bs) == 1 && bs[0].Entry == "e" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry not sealed after the settle time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
