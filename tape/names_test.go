package tape

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tapefs/tapefs/internal/checksum"
)

// nameMembers is a batch whose names are not all UTF-8: a directory, files
// and a symlink whose target is not UTF-8 either.
func nameMembers() []testMember {
	ms := []testMember{
		{Member{FileID: 1, Workspace: "ws", Batch: 12, Path: "d\xfe", Type: MemberDir, Mode: 0o755,
			Mtime: time.Unix(1_700_000_000, 0)}, nil},
		fileMember(2, "d\xfe/x\xff", []byte("b")),
		fileMember(3, "d\xfe/caf\xc3\xa9", []byte("utf-8")),
		fileMember(4, "d\xfe/new\nline\\", []byte("nl")),
		{Member{FileID: 5, Workspace: "ws", Batch: 12, Path: "d\xfe/l", Type: MemberSymlink, Mode: 0o777,
			Mtime: time.Unix(1_700_000_001, 0), Target: "x\xff"}, nil},
		fileMember(6, "caf\xc3\xa9", []byte("all UTF-8")),
		{Member{FileID: 7, Workspace: "ws", Batch: 12, Path: "l", Type: MemberSymlink, Mode: 0o777,
			Mtime: time.Unix(1_700_000_001, 0), Target: "x\xff"}, nil},
	}
	return ms
}

// TestAggregateBinaryNames: names that are not UTF-8 go to tape byte for
// byte, marked hdrcharset=BINARY (POSIX), and come back the same through
// ReadAggregate and through GNU tar, whatever its locale.
func TestAggregateBinaryNames(t *testing.T) {
	ms := nameMembers()
	var buf bytes.Buffer
	writeAggregate(t, &buf, ms)

	// hdrcharset=BINARY on exactly the members that need it.
	tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want := "BINARY"
		if m := ms[i].m; utf8.ValidString(m.Path) && utf8.ValidString(m.Target) {
			want = ""
		}
		if got := hdr.PAXRecords["hdrcharset"]; got != want {
			t.Errorf("%q: hdrcharset %q, want %q", hdr.Name, got, want)
		}
	}

	i := 0
	err := ReadAggregate(bytes.NewReader(buf.Bytes()), func(m Member, data io.Reader) error {
		if m.Path != ms[i].m.Path || m.Target != ms[i].m.Target {
			t.Errorf("member %d read back as %q -> %q, want %q -> %q", i, m.Path, m.Target, ms[i].m.Path, ms[i].m.Target)
		}
		i++
		return nil
	})
	if err != nil || i != len(ms) {
		t.Fatalf("read %d of %d members: %v", i, len(ms), err)
	}

	gnuTar, err := exec.LookPath("tar")
	if err != nil {
		t.Fatalf("GNU tar is needed to check that it reads what tapefs writes: %v", err)
	}
	file := filepath.Join(t.TempDir(), "aggregate.tar")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, locale := range []string{"C", "C.UTF-8"} {
		dir := t.TempDir()
		cmd := exec.Command(gnuTar, "--warning=no-unknown-keyword", "-xf", file)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL="+locale)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("LC_ALL=%s tar -xf: %v\n%s", locale, err, out)
		}
		for _, tm := range ms {
			p := filepath.Join(dir, memberName(tm.m))
			switch tm.m.Type {
			case MemberFile:
				if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, tm.data) {
					t.Errorf("LC_ALL=%s tar -xf: %q: %q, %v", locale, p, b, err)
				}
			case MemberSymlink:
				if target, err := os.Readlink(p); err != nil || target != tm.m.Target {
					t.Errorf("LC_ALL=%s tar -xf: readlink %q: %q, %v", locale, p, target, err)
				}
			}
		}
	}
}

// TestReadAggregateRefusesEscapes: a member read back from a tape that
// names a file outside its batch (a damaged or hostile tape) is an error,
// as it would be for Add.
func TestReadAggregateRefusesEscapes(t *testing.T) {
	for _, p := range []string{"../x", "/etc/passwd", "a/../../x", "a//b", "."} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "ws/1/x", Mode: 0o644, Typeflag: tar.TypeReg, Format: tar.FormatPAX,
			PAXRecords: map[string]string{paxWorkspace: "ws", paxBatch: "1", paxFileID: "1", paxPath: p}})
		tw.Close()
		err := ReadAggregate(&buf, func(Member, io.Reader) error {
			t.Errorf("path %q: member handed on", p)
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "inside the batch") {
			t.Errorf("path %q: %v", p, err)
		}
	}
}

// FuzzAggregateNames: any path and symlink target Linux allows (any bytes
// but NUL) goes to tape and comes back exact, and MemberSize is the exact
// size of each member's header and data.
func FuzzAggregateNames(f *testing.F) {
	for _, s := range []string{"a", "x\xff", "caf\xc3\xa9", "new\nline", "back\\slash", "\xed\xa0\x80",
		strings.Repeat("long/", 30) + "x\xff", "a=b", "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000x"} {
		f.Add(s, "t\xfe")
	}
	f.Fuzz(func(t *testing.T, name, target string) {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") || len(name) > 255 ||
			target == "" || strings.Contains(target, "\x00") || len(target) > 4095 {
			return // not a name or target Linux allows
		}
		ms := []testMember{
			{Member{FileID: 1, Workspace: "ws", Batch: 7, Path: name, Type: MemberDir, Mode: 0o755, Mtime: time.Unix(1, 0)}, nil},
			fileMember(2, name+"/"+name, []byte(name)),
			{Member{FileID: 3, Workspace: "ws", Batch: 7, Path: name + "/l", Type: MemberSymlink, Mode: 0o777,
				Mtime: time.Unix(1, 0), Target: target}, nil},
		}
		var buf bytes.Buffer
		w := NewAggregateWriter(&buf)
		for _, tm := range ms {
			before := w.Written()
			if _, err := w.Add(tm.m, bytes.NewReader(tm.data)); err != nil {
				t.Fatalf("add %q: %v", tm.m.Path, err)
			}
			if got, want := w.Written()-before, MemberSize(tm.m); got != want {
				t.Fatalf("%q: %d bytes written, MemberSize says %d", tm.m.Path, got, want)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		i := 0
		err := ReadAggregate(bytes.NewReader(buf.Bytes()), func(m Member, data io.Reader) error {
			b, err := io.ReadAll(data)
			if err != nil {
				return err
			}
			want := ms[i].m
			if m.Path != want.Path || m.Target != want.Target || m.Type != want.Type || !bytes.Equal(b, ms[i].data) {
				t.Fatalf("member %d read back as %q -> %q (%q), want %q -> %q", i, m.Path, m.Target, b, want.Path, want.Target)
			}
			i++
			return nil
		})
		if err != nil || i != len(ms) {
			t.Fatalf("read %d of %d members: %v", i, len(ms), err)
		}
	})
}

// FuzzReadAggregate: whatever bytes a tape file holds (damage, a foreign
// or newer writer), the reader never panics nor hangs, hands on only
// members Add would have written, and hands each its declared size.
func FuzzReadAggregate(f *testing.F) {
	var buf bytes.Buffer
	writeAggregate(f, &buf, nameMembers())
	f.Add(buf.Bytes())
	buf.Reset()
	writeAggregate(f, &buf, sampleMembers()[:4])
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:1024])
	// Small aggregates, so that mutations reach the records rather than
	// spend themselves on data blocks.
	buf.Reset()
	writeAggregate(f, &buf, []testMember{fileMember(1, "x\xff", []byte("b"))})
	f.Add(buf.Bytes())
	buf.Reset()
	writeAggregate(f, &buf, nameMembers()[4:5]) // a symlink
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Add(make([]byte, 1024))
	f.Add(sparseAggregate())
	f.Fuzz(func(t *testing.T, data []byte) {
		var handed int64
		_ = ReadAggregate(bytes.NewReader(data), func(m Member, r io.Reader) error {
			if why := memberProblem(m); why != "" {
				t.Fatalf("member %+v handed on: %s", m, why)
			}
			if m.CRC32C != "" && !checksum.ValidCRC32C(m.CRC32C) {
				t.Fatalf("member %q handed on with CRC32C %q", m.Path, m.CRC32C)
			}
			// Never more data than the tape file holds (a sparse member
			// made up a TiB of zeros from 3 KB).
			n, err := io.Copy(io.Discard, io.LimitReader(r, int64(len(data))+1))
			if handed += n; handed > int64(len(data)) {
				t.Fatalf("member %q: %d bytes of data handed on from a tape file of %d", m.Path, handed, len(data))
			}
			if err == nil && m.Type == MemberFile && n != m.Size {
				t.Fatalf("member %q: %d bytes of data, header says %d", m.Path, n, m.Size)
			}
			return nil
		})
	})
}

// rawHeader builds a ustar header block by hand: archive/tar's writer will
// not write everything a damaged or hostile tape may hold.
func rawHeader(name string, typeflag byte, size int) []byte {
	b := make([]byte, blockSize)
	copy(b[0:100], name)
	copy(b[100:], "0000644\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typeflag
	copy(b[257:], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

// paxRecord is one "<length> key=value\n" record; the length counts
// itself.
func paxRecord(k, v string) string {
	s := " " + k + "=" + v + "\n"
	n := len(s)
	for len(strconv.Itoa(n))+len(s) != n {
		n = len(strconv.Itoa(n)) + len(s)
	}
	return strconv.Itoa(n) + s
}

func padBlock(b []byte) []byte {
	return append(b, make([]byte, (blockSize-len(b)%blockSize)%blockSize)...)
}

// sparseAggregate is three kilobytes of tape that declare, through GNU
// sparse PAX records, a member of one TiB of holes.
func sparseAggregate() []byte {
	recs := paxRecord(paxWorkspace, "ws") + paxRecord(paxBatch, "1") + paxRecord(paxFileID, "1") + paxRecord(paxPath, "x") +
		paxRecord("GNU.sparse.major", "1") + paxRecord("GNU.sparse.minor", "0") + paxRecord("GNU.sparse.name", "ws/1/x") +
		paxRecord("GNU.sparse.realsize", "1099511627776")
	var buf bytes.Buffer
	buf.Write(rawHeader("PaxHeaders/x", tar.TypeXHeader, len(recs)))
	buf.Write(padBlock([]byte(recs)))
	buf.Write(rawHeader("ws/1/x", tar.TypeReg, blockSize))
	buf.Write(padBlock([]byte("1\n0\n0\n")))
	buf.Write(make([]byte, TrailerSize))
	return buf.Bytes()
}

// TestReadAggregateRefusesSparse: found by FuzzReadAggregate's slowness.
// A sparse member made archive/tar hand on (and readAggregate discard)
// a TiB of made-up zeros from three kilobytes of tape: hours of work for
// a reader of a damaged tape. tapefs never writes sparse members, so the
// reader refuses them at once.
func TestReadAggregateRefusesSparse(t *testing.T) {
	t0 := time.Now()
	err := ReadAggregate(bytes.NewReader(sparseAggregate()), func(m Member, r io.Reader) error {
		t.Errorf("sparse member handed on: %+v", m)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Errorf("sparse member: %v", err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("refusing a sparse member took %v", d)
	}
}
