package tape

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/internal/checksum"
)

// testMember is a member with the bytes it is made of.
type testMember struct {
	m    Member
	data []byte
}

func fileMember(id uint64, p string, data []byte) testMember {
	sum, crc := checksum.Of(data)
	return testMember{Member{
		FileID: id, Workspace: "ws", Batch: 12, Path: p, Type: MemberFile,
		MD5: sum, CRC32C: crc, Mode: 0o644, UID: 1000, GID: 1000,
		Mtime: time.Date(2024, 3, 1, 12, 30, 45, 123456789, time.UTC), Size: int64(len(data)),
	}, data}
}

// sampleMembers covers every member type and what moves fields into PAX
// records: long and non-ASCII names, large ids, sub-second times.
func sampleMembers() []testMember {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 300_001)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	long := strings.Repeat("very-long-directory-name/", 12) + "file.dat"
	ms := []testMember{
		{Member{FileID: 1, Workspace: "ws", Batch: 12, Path: "a", Type: MemberDir, Mode: 0o755,
			UID: 1000, GID: 1000, Mtime: time.Unix(1_700_000_000, 0)}, nil},
		fileMember(2, "a/b.dat", []byte("hello tape\n")),
		fileMember(3, "a/empty", nil),
		fileMember(4, "a/block", bytes.Repeat([]byte{7}, 512)),
		fileMember(5, "a/big.bin", big),
		fileMember(6, long, []byte("deep")),
		fileMember(7, "données/日本語のファイル名.txt", []byte("unicode")),
		{Member{FileID: 8, Workspace: "ws", Batch: 12, Path: "a/link", Type: MemberSymlink, Mode: 0o777,
			UID: 1000, GID: 1000, Mtime: time.Unix(1_700_000_001, 0), Target: "b.dat"}, nil},
	}
	odd := fileMember(1<<40, "odd/ids", []byte("setuid, huge uid"))
	odd.m.Mode, odd.m.UID, odd.m.GID, odd.m.Batch = 0o4755, 3_000_000, 1<<31-1, 1<<50
	ms = append(ms, odd)
	return ms
}

func roundUp(n int64) int64 { return (n + 511) / 512 * 512 }

func writeAggregate(t testing.TB, w io.Writer, ms []testMember) []int64 {
	t.Helper()
	aw := NewAggregateWriter(w)
	var offsets []int64
	for _, tm := range ms {
		start := roundUp(aw.Written()) // the previous member's padding comes first
		off, err := aw.Add(tm.m, bytes.NewReader(tm.data))
		if err != nil {
			t.Fatalf("Add %s: %v", tm.m.Path, err)
		}
		end := roundUp(aw.Written())
		if got := MemberSize(tm.m); got < end-start {
			t.Errorf("MemberSize(%s) = %d, Add wrote %d", tm.m.Path, got, end-start)
		} else if got != end-start { // exact by construction: same header, rendered
			t.Errorf("MemberSize(%s) = %d, Add wrote %d: no longer exact", tm.m.Path, got, end-start)
		}
		offsets = append(offsets, off)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	return offsets
}

func TestAggregateRoundTrip(t *testing.T) {
	ms := sampleMembers()
	var buf bytes.Buffer
	offsets := writeAggregate(t, &buf, ms)

	var bound int64 = TrailerSize
	for i, tm := range ms {
		bound += MemberSize(tm.m)
		if tm.m.Type == MemberFile {
			if got := buf.Bytes()[offsets[i] : offsets[i]+tm.m.Size]; !bytes.Equal(got, tm.data) {
				t.Errorf("%s: bytes at the offset Add returned differ", tm.m.Path)
			}
		}
	}
	if int64(buf.Len()) > bound {
		t.Errorf("aggregate is %d bytes, MemberSizes + trailer = %d", buf.Len(), bound)
	}

	i := 0
	err := ReadAggregate(bytes.NewReader(buf.Bytes()), func(m Member, data io.Reader) error {
		want := ms[i]
		i++
		got, err := io.ReadAll(data)
		if err != nil {
			return err
		}
		if !m.Mtime.Equal(want.m.Mtime) {
			t.Errorf("%s: mtime %v, want %v", m.Path, m.Mtime, want.m.Mtime)
		}
		m.Mtime = want.m.Mtime
		if m != want.m {
			t.Errorf("member read back\n %+v\nwant\n %+v", m, want.m)
		}
		if !bytes.Equal(got, want.data) {
			t.Errorf("%s: data differs", m.Path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(ms) {
		t.Errorf("read %d members, wrote %d", i, len(ms))
	}
}

// TestMemberSizeIsABound checks MemberSize against real writes over many
// random names, sizes and ids.
func TestMemberSizeIsABound(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []rune("abcXYZ019-_. éß日本語🙂/")
	for i := 0; i < 500; i++ {
		var sb strings.Builder
		for n := 1 + rng.IntN(300); sb.Len() < n; {
			sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		p := filepath.ToSlash(filepath.Clean("x/" + sb.String()))
		m := Member{
			FileID: rng.Uint64(), Workspace: "ws" + strings.Repeat("w", rng.IntN(80)), Batch: rng.Uint64(),
			Path: p, Type: MemberFile, MD5: strings.Repeat("f", 32), Mode: rng.Uint32() & 0o7777,
			UID: rng.IntN(1 << 31), GID: rng.IntN(1 << 31), Size: int64(rng.IntN(2000)),
			Mtime: time.Unix(rng.Int64N(1<<34), rng.Int64N(1e9)),
		}
		switch rng.IntN(4) {
		case 0:
			m.Type, m.Size, m.MD5 = MemberDir, 0, ""
		case 1:
			m.Type, m.Size, m.MD5, m.Target = MemberSymlink, 0, "", strings.Repeat("t/", rng.IntN(100))+"é"
		}
		if _, err := memberHeader(m); err != nil {
			continue // a random path that is no path ("x/..")
		}
		var buf bytes.Buffer
		aw := NewAggregateWriter(&buf)
		if _, err := aw.Add(m, bytes.NewReader(make([]byte, m.Size))); err != nil {
			t.Fatalf("Add %q: %v", m.Path, err)
		}
		if err := aw.Close(); err != nil {
			t.Fatal(err)
		}
		if written := int64(buf.Len()) - TrailerSize; MemberSize(m) < written {
			t.Fatalf("MemberSize(%q) = %d, Add wrote %d", m.Path, MemberSize(m), written)
		}
	}
}

func TestAddShortSource(t *testing.T) {
	var buf bytes.Buffer
	aw := NewAggregateWriter(&buf)
	tm := fileMember(1, "short", make([]byte, 100))
	_, err := aw.Add(tm.m, bytes.NewReader(make([]byte, 60)))
	if err == nil || !strings.Contains(err.Error(), "60 of 100") {
		t.Fatalf("Add with a short source: %v", err)
	}
	if _, err := aw.Add(fileMember(2, "next", nil).m, bytes.NewReader(nil)); err == nil {
		t.Error("Add after a failed Add succeeded")
	}
	if err := aw.Close(); err == nil {
		t.Error("Close after a failed Add succeeded")
	}
}

func TestAddRefusesBadMembers(t *testing.T) {
	var buf bytes.Buffer
	aw := NewAggregateWriter(&buf)
	good := fileMember(1, "ok", []byte("x"))
	for _, change := range []func(*Member){
		func(m *Member) { m.Path = "../escape" },
		func(m *Member) { m.Path = "/abs" },
		func(m *Member) { m.Path = "a//b" },
		func(m *Member) { m.Path = "" },
		func(m *Member) { m.Workspace = "" },
		func(m *Member) { m.Workspace = "a/b" },
		func(m *Member) { m.Type = 'x' },
		func(m *Member) { m.Type = MemberSymlink },
	} {
		m := good.m
		change(&m)
		if _, err := aw.Add(m, bytes.NewReader(good.data)); err == nil {
			t.Errorf("Add(%+v) succeeded", m)
		}
	}
	// MemberSize still answers for a member Add refuses, with a size that
	// can be summed without overflowing.
	for _, m := range []Member{{Workspace: "w", Path: "a\x00b", Type: MemberFile, Size: 10}, {Type: 'x', Size: -1}} {
		if size := MemberSize(m); size < 512 || size > 1<<20 {
			t.Errorf("MemberSize(%+v) = %d", m, size)
		}
	}
	// A refused member wrote nothing: the aggregate goes on.
	if buf.Len() != 0 {
		t.Errorf("refused members wrote %d bytes", buf.Len())
	}
	if _, err := aw.Add(good.m, bytes.NewReader(good.data)); err != nil {
		t.Fatal(err)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReadAggregateTruncated(t *testing.T) {
	ms := []testMember{
		fileMember(1, "a/first", []byte("first file")),
		fileMember(2, "a/b.dat", bytes.Repeat([]byte("b"), 2000)),
		{Member{FileID: 3, Workspace: "ws", Batch: 12, Path: "a/c", Type: MemberDir, Mode: 0o755, Mtime: time.Unix(1, 0)}, nil},
	}
	var buf bytes.Buffer
	offsets := writeAggregate(t, &buf, ms)
	whole := buf.Bytes()
	read := func(b []byte) error {
		return ReadAggregate(bytes.NewReader(b), func(m Member, data io.Reader) error {
			_, err := io.Copy(io.Discard, data)
			return err
		})
	}
	if err := read(whole); err != nil {
		t.Fatal(err)
	}

	err := read(whole[:offsets[1]+1000])
	if err == nil || !strings.Contains(err.Error(), "aggregate truncated in member ws/12/a/b.dat") ||
		!errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut inside a member's data: %v", err)
	}
	err = read(whole[:len(whole)-TrailerSize])
	if err == nil || !strings.Contains(err.Error(), "after member ws/12/a/c") {
		t.Errorf("cut before the trailer: %v", err)
	}
	// Every cut, wherever it falls, is an error, never a shorter success.
	for n := 0; n < len(whole); n++ {
		if err := read(whole[:n]); err == nil {
			t.Fatalf("aggregate cut to %d of %d bytes read without error", n, len(whole))
		} else if !strings.Contains(err.Error(), "aggregate truncated") {
			t.Fatalf("cut to %d bytes: %v", n, err)
		}
	}

	// A member abandoned half-read does not disturb the next.
	var names []string
	err = ReadAggregate(bytes.NewReader(whole), func(m Member, data io.Reader) error {
		names = append(names, m.Path)
		_, err := data.Read(make([]byte, 3))
		if err == io.EOF {
			err = nil
		}
		return err
	})
	if err != nil || strings.Join(names, ",") != "a/first,a/b.dat,a/c" {
		t.Errorf("abandoning data: %v, members %v", err, names)
	}

	// fn's own error comes back as it is.
	stop := errors.New("stop")
	if err := ReadAggregate(bytes.NewReader(whole), func(Member, io.Reader) error { return stop }); err != stop {
		t.Errorf("fn's error came back as %v", err)
	}
}

func TestReadAggregateCorrupt(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	garbage := make([]byte, 10_000)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	calls := 0
	err := ReadAggregate(bytes.NewReader(garbage), func(Member, io.Reader) error { calls++; return nil })
	if err == nil || !strings.Contains(err.Error(), "aggregate corrupt") || calls != 0 {
		t.Errorf("garbage: %v (%d members)", err, calls)
	}

	// A good aggregate with a damaged second header.
	ms := []testMember{fileMember(1, "a/one", []byte("one")), fileMember(2, "a/two", []byte("two"))}
	var buf bytes.Buffer
	writeAggregate(t, &buf, ms)
	b := buf.Bytes()
	start2 := roundUp(MemberSize(ms[0].m))
	copy(b[start2+100:], "garbage in the header")
	err = ReadAggregate(bytes.NewReader(b), func(Member, io.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "aggregate corrupt after member ws/12/a/one") {
		t.Errorf("damaged second header: %v", err)
	}

	// A member whose CRC32C record is not one: refused, naming it.
	buf.Reset()
	bad := fileMember(3, "a/three", []byte("three"))
	hdr, herr := memberHeader(bad.m)
	if herr != nil {
		t.Fatal(herr)
	}
	hdr.PAXRecords[paxCRC32C] = "not-a-crc"
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(hdr)
	tw.Write(bad.data)
	tw.Close()
	err = ReadAggregate(&buf, func(Member, io.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "ws/12/a/three") || !strings.Contains(err.Error(), "TAPEFS.crc32c") {
		t.Errorf("bad CRC32C record: %v", err)
	}

	// A plain tar file is not an aggregate.
	buf.Reset()
	tw = tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "plain", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	err = ReadAggregate(&buf, func(Member, io.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "member plain") || !strings.Contains(err.Error(), "not a tapefs member") {
		t.Errorf("plain tar: %v", err)
	}
}

// TestAggregateOnTape writes an aggregate through a drive and reads one
// member back by the offset Add returned, as a recall does.
func TestAggregateOnTape(t *testing.T) {
	l := openTest(t, Config{Drives: 1, Cartridges: 1})
	d := acquire(t, l, "TF0001")
	defer l.Release(d)
	writeTapeFile(t, d, []byte("something before"))
	n, err := d.SeekEOD()
	if err != nil {
		t.Fatal(err)
	}
	ms := sampleMembers()
	offsets := writeAggregate(t, d, ms)
	if err := d.WriteFilemark(); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(l.dir, "TF0001", tapeFileName(n, 0)))
	if err != nil {
		t.Fatal(err)
	}
	for i, tm := range ms {
		if tm.m.Type != MemberFile {
			continue
		}
		if err := d.Locate(n, offsets[i]); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, tm.m.Size)
		if _, err := io.ReadFull(d, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, tm.data) || !bytes.Equal(onDisk[offsets[i]:offsets[i]+tm.m.Size], tm.data) {
			t.Errorf("%s: bytes at offset %d are not the file's", tm.m.Path, offsets[i])
		}
	}
	// And the whole tape file reads back as an aggregate.
	if err := d.Locate(n, 0); err != nil {
		t.Fatal(err)
	}
	count := 0
	if err := ReadAggregate(d, func(Member, io.Reader) error { count++; return nil }); err != nil || count != len(ms) {
		t.Errorf("aggregate from tape: %d members, %v", count, err)
	}
}

// seekCounter is a bytes.Reader that counts the bytes read and refuses
// seeks other than forward from the current position.
type seekCounter struct {
	r    *bytes.Reader
	read int64
}

func (s *seekCounter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.read += int64(n)
	return n, err
}

func (s *seekCounter) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return 0, errors.New("only forward relative seeks")
	}
	return s.r.Seek(off, whence)
}

// TestReadTapeFileSeeksOverUnreadData: over a reader that can seek, the
// data a visitor does not read is skipped, not read, and the offsets and
// the data it does read are those of a plain read.
func TestReadTapeFileSeeksOverUnreadData(t *testing.T) {
	ms := sampleMembers()
	var buf bytes.Buffer
	offsets := writeAggregate(t, &buf, ms)
	src := &seekCounter{r: bytes.NewReader(buf.Bytes())}
	i := 0
	var skipped int64
	err := ReadTapeFile(src, Visitor{Member: func(m Member, off int64, data io.Reader) error {
		want := ms[i]
		if m.Type == MemberFile && off != offsets[i] {
			t.Errorf("%s: offset %d, want %d", m.Path, off, offsets[i])
		}
		i++
		if m.Path == "a/big.bin" {
			skipped = m.Size
			return nil // not read: skipped
		}
		got, err := io.ReadAll(data)
		if err == nil && !bytes.Equal(got, want.data) {
			t.Errorf("%s: data differs", m.Path)
		}
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	if i != len(ms) {
		t.Fatalf("read %d members, wrote %d", i, len(ms))
	}
	if src.read > int64(buf.Len())-skipped+512 {
		t.Errorf("read %d of %d bytes: the %d bytes of a/big.bin were not skipped", src.read, buf.Len(), skipped)
	}
}
