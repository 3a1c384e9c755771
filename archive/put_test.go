package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

type member struct {
	name, link string
	typ        byte
	data       string
}

func tarOf(t *testing.T, ms []member) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, m := range ms {
		h := &tar.Header{Name: m.name, Typeflag: m.typ, Mode: 0o640, ModTime: mt, Linkname: m.link, Size: int64(len(m.data)), Uid: 1234, Gid: 99, Format: tar.FormatPAX}
		if m.typ != tar.TypeReg {
			h.Size = 0
		}
		if m.typ == tar.TypeDir {
			h.Mode = 0o750
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if m.typ == tar.TypeReg {
			tw.Write([]byte(m.data))
		}
	}
	tw.Close()
	return &buf
}

// TestIngest: a CLI put arrives as a tar stream into a reserved batch.
func TestIngest(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Settle: time.Hour}.open(t)
	b, err := te.Reserve("ws", "run7", 1234, 10)
	if err != nil || b.State != catalog.Caching || b.ID == 0 {
		t.Fatalf("reserve: %+v %v", b, err)
	}
	stream := tarOf(t, []member{
		{name: "data/", typ: tar.TypeDir},
		{name: "data/run7/", typ: tar.TypeDir},
		{name: "data/run7/a.dat", typ: tar.TypeReg, data: "alpha"},
		{name: "data/run7/b.dat", typ: tar.TypeLink, link: "data/run7/a.dat"},
		{name: "data/run7/latest", typ: tar.TypeSymlink, link: "a.dat"},
	})
	got, err := te.Ingest(context.Background(), b.ID, stream)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != b.ID || got.Files != 5 || got.Bytes != 5 || got.Tag != "run7" {
		t.Fatalf("ingested batch %+v", got)
	}
	waitSynced(t, te.Engine, b.ID)
	files := batchFiles(t, te.Engine, b.ID)
	a, lb := files["data/run7/a.dat"], files["data/run7/b.dat"]
	if a.UID != 1234 || a.GID != 99 || a.Mode != 0o640 || a.MD5 != md5hex([]byte("alpha")) || lb.Link != a.ID {
		t.Fatalf("a=%+v b=%+v", a, lb)
	}
	if files["data/run7/latest"].Target != "a.dat" || files["data"].Mode != 0o750 {
		t.Fatalf("symlink or dir: %+v %+v", files["data/run7/latest"], files["data"])
	}
	var used int64
	te.cat.View(func(tx *catalog.Tx) error { w, _ := tx.Workspace("ws"); used = w.Used; return nil })
	if used != 5 {
		t.Fatalf("workspace used %d after ingest, want 5 (the reservation's 10 replaced)", used)
	}
}

// TestIngestRefusesEscapes: a stream that tries to write outside the batch
// fails the put and leaves nothing behind.
func TestIngestRefusesEscapes(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Settle: time.Hour}.open(t)
	for _, tc := range []struct {
		name string
		ms   []member
		want string
	}{
		{"dotdot", []member{{name: "a/../../etc/passwd", typ: tar.TypeReg, data: "x"}}, ".."},
		{"symlink parent", []member{{name: "a", typ: tar.TypeSymlink, link: "/etc"}, {name: "a/passwd", typ: tar.TypeReg, data: "x"}}, "not a directory"},
		{"hard link out", []member{{name: "l", typ: tar.TypeLink, link: "../../etc/passwd"}}, ".."},
		{"device", []member{{name: "dev", typ: tar.TypeChar}}, "cannot be archived"},
		{"truncated", nil, "no file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := te.Reserve("ws", "", 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			_, err = te.Ingest(context.Background(), b.ID, tarOf(t, tc.ms))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ingest: %v, want an error with %q", err, tc.want)
			}
			st, _ := te.Status(b.ID)
			if st.State != catalog.Failed || st.Bytes != 0 {
				t.Fatalf("batch after a refused put: %+v", st.Batch)
			}
		})
	}
	if globAny(te.setup.Home + "/cache/sealing/*") {
		t.Fatal("sealing directories left behind")
	}
}

// TestIngestDirOverSymlink: a directory member named like an earlier
// symlink member must not change the mode or times of the symlink's
// target (os.Chmod follows links; the daemon runs as root).
func TestIngestDirOverSymlink(t *testing.T) {
	te := testSetup{Home: t.TempDir(), Settle: time.Hour}.open(t)
	outside := t.TempDir()
	if err := os.Chmod(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := te.Reserve("ws", "", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = te.Ingest(context.Background(), b.ID, tarOf(t, []member{
		{name: "a", typ: tar.TypeSymlink, link: outside},
		{name: "a/", typ: tar.TypeDir},
		{name: "f", typ: tar.TypeReg, data: "x"},
	}))
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("ingest: %v, want a refusal of the directory over a symlink", err)
	}
	st, err := os.Stat(outside)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Fatalf("the symlink's target %s changed mode to %v", outside, st.Mode().Perm())
	}
}
