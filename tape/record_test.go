package tape

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadTapeFileWrittenBeforeRecords: a tape file written by tapefs
// before records and link members existed (testdata/aggregate-v1.tar,
// made by that code) still reads, member by member, through both readers.
func TestReadTapeFileWrittenBeforeRecords(t *testing.T) {
	f, err := os.Open("testdata/aggregate-v1.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mt := time.Date(2026, 11, 30, 10, 0, 0, 123456789, time.UTC)
	want := []Member{
		{FileID: 10, Workspace: "default", Batch: 3, Path: "run", Type: MemberDir, Mode: 0o755, UID: 1000, GID: 1000, Mtime: mt},
		{FileID: 11, Workspace: "default", Batch: 3, Path: "run/a.dat", Type: MemberFile, MD5: "5d41402abc4b2a76b9719d911017c592", Mode: 0o640, UID: 1000, GID: 1000, Mtime: mt, Size: 5},
		{FileID: 12, Workspace: "default", Batch: 3, Path: "run/ünï €.txt", Type: MemberFile, MD5: "d41d8cd98f00b204e9800998ecf8427e", Mode: 0o600, UID: 1000, GID: 100, Mtime: mt, Size: 0},
		{FileID: 13, Workspace: "default", Batch: 3, Path: "run/l", Type: MemberSymlink, Target: "a.dat", Mode: 0o777, UID: 1000, GID: 1000, Mtime: mt},
	}
	var got []Member
	var records int
	err = ReadTapeFile(f, Visitor{
		Member: func(m Member, _ int64, data io.Reader) error {
			b, _ := io.ReadAll(data)
			if m.Type == MemberFile && string(b) != "hello"[:m.Size] {
				t.Errorf("%s: data %q", m.Path, b)
			}
			m.Mtime = m.Mtime.UTC()
			got = append(got, m)
			return nil
		},
		Record: func(Record) error { records++; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) || records != 0 {
		t.Errorf("members:\n%+v\nwant:\n%+v\n(records %d)", got, want, records)
	}
	if _, err := f.Seek(0, 0); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := ReadAggregate(f, func(Member, io.Reader) error { n++; return nil }); err != nil || n != len(want) {
		t.Errorf("ReadAggregate: %d members, %v", n, err)
	}
}

// TestRecordsLinksAndGNUTar: records and hard link members read back in
// tape order, and GNU tar restores the tree from the same tape file: the
// data, the second name of a hard link as a link, the symlink, the empty
// directory and the modes.
func TestRecordsLinksAndGNUTar(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Fatal("GNU tar is needed for this test (apt-get install tar)")
	}
	mt := time.Unix(1_700_000_000, 5000).UTC()
	at := func(m Member) Member {
		m.Workspace, m.Batch, m.Mtime = "ws", 7, mt
		m.UID, m.GID = os.Getuid(), os.Getgid()
		return m
	}
	data := []byte("the data of a file with two names\n")
	entries := []any{
		Record{Kind: RecordWorkspace, Fields: map[string]string{"workspace": "ws", "quota": "100"}},
		Record{Kind: RecordBatch, Fields: map[string]string{"batch": "7", "tag": "run 7 ∂", "entry": "not utf-8 \xff\xfe", "owner": "1000", "created": TimeField(mt)}},
		at(Member{FileID: 70, Path: "r", Type: MemberDir, Mode: 0o750}),
		at(Member{FileID: 71, Path: "r/empty", Type: MemberDir, Mode: 0o700}),
		at(Member{FileID: 72, Path: "r/a.dat", Type: MemberFile, Mode: 0o640, Size: int64(len(data)), MD5: "x"}),
		at(Member{FileID: 73, Path: "r/b ä.dat", Type: MemberLink, Mode: 0o640, Target: "r/a.dat", Link: 72, MD5: "x"}),
		at(Member{FileID: 74, Path: "r/s", Type: MemberSymlink, Mode: 0o777, Target: "a.dat"}),
		Record{Kind: RecordClosed, Fields: map[string]string{"time": TimeField(mt)}},
	}
	var buf bytes.Buffer
	aw := NewAggregateWriter(&buf)
	offsets := map[uint64]int64{}
	for _, e := range entries {
		switch e := e.(type) {
		case Record:
			before := aw.Written()
			if err := aw.AddRecord(e); err != nil {
				t.Fatal(err)
			}
			if got := aw.Written() - before; got != RecordSize(e) {
				t.Errorf("%s record: wrote %d bytes, RecordSize says %d", e.Kind, got, RecordSize(e))
			}
		case Member:
			before := aw.Written()
			off, err := aw.Add(e, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			offsets[e.FileID] = off
			if got := aw.Written() - before; got != MemberSize(e) {
				t.Errorf("%s: wrote %d bytes, MemberSize says %d", e.Path, got, MemberSize(e))
			}
		}
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}

	var got []any
	err := ReadTapeFile(bytes.NewReader(buf.Bytes()), Visitor{
		Member: func(m Member, off int64, data io.Reader) error {
			if m.Type == MemberFile && (off != offsets[m.FileID] || off%blockSize != 0) {
				t.Errorf("%s: data at %d, Add said %d", m.Path, off, offsets[m.FileID])
			}
			m.Mtime = m.Mtime.UTC()
			got = append(got, m)
			return nil
		},
		Record: func(r Record) error { got = append(got, r); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, entries) {
		t.Errorf("read back:\n%+v\nwant:\n%+v", got, entries)
	}

	file := filepath.Join(t.TempDir(), "000001.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	_, stderr := runTar(t, "-xf", file, "-C", dest)
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if line != "" && !strings.Contains(line, "unknown extended header keyword 'TAPEFS.") {
			t.Errorf("tar -xf said: %s", line)
		}
	}
	root := filepath.Join(dest, "ws", "7", "r")
	a, errA := os.Stat(filepath.Join(root, "a.dat"))
	b, errB := os.Stat(filepath.Join(root, "b ä.dat"))
	if errA != nil || errB != nil {
		t.Fatalf("extracted: %v %v", errA, errB)
	}
	if !os.SameFile(a, b) || a.Sys().(*syscall.Stat_t).Nlink != 2 {
		t.Errorf("b ä.dat is not a hard link of a.dat after tar -x")
	}
	if got, _ := os.ReadFile(filepath.Join(root, "b ä.dat")); !bytes.Equal(got, data) {
		t.Errorf("b ä.dat: %q", got)
	}
	if a.Mode().Perm() != 0o640 || !a.ModTime().Equal(mt) {
		t.Errorf("a.dat: mode %v mtime %v", a.Mode().Perm(), a.ModTime())
	}
	if st, err := os.Stat(filepath.Join(root, "empty")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("empty dir: %v %v", st, err)
	}
	if st, err := os.Stat(root); err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("r: %v %v", st, err)
	}
	if target, err := os.Readlink(filepath.Join(root, "s")); err != nil || target != "a.dat" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if entries, _ := os.ReadDir(dest); len(entries) != 1 {
		t.Errorf("tar -x made %d top-level entries (records must not become files): %v", len(entries), entries)
	}
}

// TestSnapshotTapeFile: a catalog snapshot tape file reads back as a
// snapshot, its size is what SnapshotSize says, and GNU tar lists it.
func TestSnapshotTapeFile(t *testing.T) {
	taken := time.Unix(1_750_000_000, 42).UTC()
	db := bytes.Repeat([]byte{1, 2, 3}, 1000)
	var buf bytes.Buffer
	s := Snapshot{Taken: taken, Size: int64(len(db))}
	if err := WriteSnapshot(&buf, s, bytes.NewReader(db)); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != SnapshotSize(s) {
		t.Errorf("wrote %d bytes, SnapshotSize says %d", buf.Len(), SnapshotSize(s))
	}
	var got []byte
	var gs Snapshot
	err := ReadTapeFile(bytes.NewReader(buf.Bytes()), Visitor{Snapshot: func(s Snapshot, r io.Reader) error {
		gs = s
		got, _ = io.ReadAll(r)
		return nil
	}})
	if err != nil || !bytes.Equal(got, db) || !gs.Taken.Equal(taken) || gs.Size != int64(len(db)) {
		t.Errorf("snapshot read back: %v, %d bytes, %+v", err, len(got), gs)
	}
	file := filepath.Join(t.TempDir(), "000002.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, _ := runTar(t, "--warning=no-unknown-keyword", "-tf", file)
	if !strings.HasPrefix(out, "tapefs-catalog/") {
		t.Errorf("tar -tf: %q", out)
	}
}
