package tape

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tapefs/tapefs/internal/checksum"
)

// PAX records naming a member in catalog terms. They travel with the data,
// so the catalog can be rebuilt from the tapes alone.
const (
	paxWorkspace = "TAPEFS.workspace"
	paxBatch     = "TAPEFS.batch"
	paxPath      = "TAPEFS.path"
	paxMD5       = "TAPEFS.md5"
	paxCRC32C    = "TAPEFS.crc32c"
	paxFileID    = "TAPEFS.fileid"
)

// blockSize is the tar record block.
const blockSize = 512

// countingWriter counts what goes through it: the offset of a member's data
// inside the aggregate is the count when its header is written, and
// archive/tar writes headers straight through without buffering.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom passes member data to a writer that can take it without a
// copy through user space (a drive, through a bufio.Writer).
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.w.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(c.w, r)
	}
	c.n += n
	return n, err
}

type aggregateWriter struct {
	cw  *countingWriter
	err error // first failure; the stream is unusable after it
}

func newAggregateWriter(w io.Writer) *AggregateWriter {
	return &AggregateWriter{impl: aggregateWriter{cw: &countingWriter{w: w}}}
}

// zeros pads members to the tar block and ends the archive.
var zeros [2 * blockSize]byte

// add writes the member's header (rendered by archive/tar, the same bytes
// MemberSize counts), then its data straight from data — so a file's bytes
// can go to tape without passing through user space — then the padding to
// the next tar block.
func (a *aggregateWriter) add(m Member, data io.Reader) (int64, error) {
	if a.err != nil {
		return 0, a.err
	}
	hdr, err := memberHeader(m)
	if err != nil {
		return 0, err // nothing written: the aggregate is still good
	}
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(hdr); err != nil {
		return 0, fmt.Errorf("aggregate: member %s: %w", hdr.Name, err)
	}
	if _, err := a.cw.Write(buf.Bytes()); err != nil {
		a.err = fmt.Errorf("aggregate: member %s: %w", hdr.Name, err)
		return 0, a.err
	}
	offset := a.cw.n
	if m.Type == MemberFile && m.Size > 0 {
		n, err := a.cw.ReadFrom(io.LimitReader(data, m.Size))
		if err == nil && n < m.Size {
			err = fmt.Errorf("source gave %d of %d bytes (did the file shrink?)", n, m.Size)
		}
		if err != nil {
			// The header promised m.Size bytes: the stream cannot go on.
			a.err = fmt.Errorf("aggregate: member %s: %w", hdr.Name, err)
			return 0, a.err
		}
		if pad := (blockSize - m.Size%blockSize) % blockSize; pad > 0 {
			if _, err := a.cw.Write(zeros[:pad]); err != nil {
				a.err = fmt.Errorf("aggregate: member %s: %w", hdr.Name, err)
				return 0, a.err
			}
		}
	}
	return offset, nil
}

func (a *aggregateWriter) written() int64 { return a.cw.n }

// close writes the end-of-archive marker: two zero blocks.
func (a *aggregateWriter) close() error {
	if a.err != nil {
		return a.err
	}
	if _, err := a.cw.Write(zeros[:]); err != nil {
		a.err = fmt.Errorf("aggregate: close: %w", err)
		return a.err
	}
	a.err = errors.New("aggregate: already closed")
	return nil
}

// memberName is the tar name of m: "<workspace>/<batch>/<path>".
func memberName(m Member) string {
	return m.Workspace + "/" + strconv.FormatUint(m.Batch, 10) + "/" + m.Path
}

// memberProblem says why m cannot be a member of an aggregate ("" if it
// can). Add refuses such a member, and the reader refuses one read back
// from tape (a damaged or hostile tape must not name a file outside its
// batch).
func memberProblem(m Member) string {
	if m.Workspace == "" || strings.ContainsAny(m.Workspace, "/\x00") || m.Workspace == "." || m.Workspace == ".." {
		return "workspace must be a single non-empty name"
	}
	if m.Path == "" || m.Path == "." || path.IsAbs(m.Path) || path.Clean(m.Path) != m.Path ||
		m.Path == ".." || strings.HasPrefix(m.Path, "../") || strings.Contains(m.Path, "\x00") {
		return "path must be relative, clean and inside the batch"
	}
	switch m.Type {
	case MemberFile:
		if m.Size < 0 {
			return "negative size"
		}
	case MemberDir:
	case MemberLink:
		if m.Link == 0 || m.Target == "" || path.IsAbs(m.Target) || path.Clean(m.Target) != m.Target ||
			m.Target == ".." || strings.HasPrefix(m.Target, "../") || strings.Contains(m.Target, "\x00") {
			return "hard link without the file of its batch holding its data"
		}
	case MemberSymlink:
		if m.Target == "" {
			return "symlink without target"
		}
		if strings.Contains(m.Target, "\x00") {
			return "symlink target with NUL"
		}
	default:
		return fmt.Sprintf("unknown member type %q", m.Type)
	}
	return ""
}

// paxCharset is the PAX record that says how to read the names of a
// member (POSIX pax, "hdrcharset"): without it they are UTF-8. A Linux
// name is any bytes but NUL and '/', so a member whose names are not UTF-8
// says BINARY, and readers (GNU tar among them) take them byte for byte
// rather than converting them, or complaining that they cannot.
const (
	paxCharset = "hdrcharset"
	charBinary = "BINARY"
)

// memberHeader builds the tar header of m. It is the only place that knows
// how a Member maps to tar, so Add and MemberSize cannot disagree. The
// header is built even for a member Add must refuse (err not nil), so that
// MemberSize can still answer.
func memberHeader(m Member) (hdr *tar.Header, err error) {
	name := memberName(m)
	if why := memberProblem(m); why != "" {
		err = fmt.Errorf("aggregate: member %s: %s", name, why)
	}
	hdr = &tar.Header{
		Name:    name,
		Mode:    int64(m.Mode & 0o7777),
		Uid:     m.UID,
		Gid:     m.GID,
		ModTime: m.Mtime,
		Format:  tar.FormatPAX, // sub-second mtimes, long and UTF-8 names
		PAXRecords: map[string]string{
			paxWorkspace: m.Workspace,
			paxBatch:     strconv.FormatUint(m.Batch, 10),
			paxPath:      m.Path,
			paxFileID:    strconv.FormatUint(m.FileID, 10),
		},
	}
	if m.MD5 != "" {
		hdr.PAXRecords[paxMD5] = m.MD5
	}
	if m.CRC32C != "" {
		hdr.PAXRecords[paxCRC32C] = m.CRC32C
	}
	switch m.Type {
	case MemberFile:
		hdr.Typeflag, hdr.Size = tar.TypeReg, max(m.Size, 0)
	case MemberDir:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/" // what tar itself writes for a directory
	case MemberSymlink:
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, m.Target
	case MemberLink:
		// tar names the link's target by its member name; the data is
		// the target's.
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = memberName(Member{Workspace: m.Workspace, Batch: m.Batch, Path: m.Target})
		hdr.PAXRecords[paxLink] = strconv.FormatUint(m.Link, 10)
	default:
		hdr.Typeflag, hdr.Size = tar.TypeReg, max(m.Size, 0)
	}
	if !utf8.ValidString(hdr.Name) || !utf8.ValidString(hdr.Linkname) {
		hdr.PAXRecords[paxCharset] = charBinary
	}
	return hdr, err
}

// memberSize is exact, not estimated: the header is the one Add writes,
// rendered into a counter, so long names, UTF-8 and large ids (which move
// fields into the PAX header) are always accounted for.
func memberSize(m Member) int64 {
	hdr, _ := memberHeader(m) // a member Add refuses still gets an answer
	data := (hdr.Size + blockSize - 1) / blockSize * blockSize
	cw := &countingWriter{w: io.Discard}
	if err := tar.NewWriter(cw).WriteHeader(hdr); err != nil {
		// Only a member Add refuses (a NUL in a name) gets here: a generous
		// bound of its PAX header, its record block and the header itself.
		records := 0
		for k, v := range hdr.PAXRecords {
			records += len(k) + len(v) + 32
		}
		records += 3 * (len(hdr.Name) + len(hdr.Linkname) + 64)
		return 2*blockSize + int64(records+blockSize-1)/blockSize*blockSize + data
	}
	return cw.n + data
}

// countingReader counts what has been read through it, to tell where in the
// aggregate a problem is, and how many zero bytes end it, to tell a real
// end-of-archive from a stream that just stops.
type countingReader struct {
	r     io.Reader
	n     int64
	zeros int64 // length of the run of zero bytes at the end of what was read
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	for i := n - 1; i >= 0; i-- {
		if p[i] != 0 {
			c.zeros = int64(n - 1 - i)
			return n, err
		}
	}
	c.zeros += int64(n)
	return n, err
}

// memberReader hands a member's data to the caller and remembers a failure
// of the stream underneath, so it is reported as the aggregate's problem
// (naming the member) whatever the caller does with it.
type memberReader struct {
	r   io.Reader
	err error
}

func (m *memberReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if err != nil && err != io.EOF && m.err == nil {
		m.err = err
	}
	return n, err
}

// streamError describes a failure of the tar stream: truncated or corrupt,
// and where.
func streamError(where string, err error) error {
	what := "corrupt"
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		what = "truncated"
	}
	return fmt.Errorf("aggregate %s %s: %w", what, where, err)
}

// seekingCounter is a countingReader over a reader that can also skip
// forward (Seek relative to the current position): archive/tar then skips
// the data nobody reads by seeking, and the count stays the offset in the
// tape file.
type seekingCounter struct {
	*countingReader
	s io.Seeker
}

func (c *seekingCounter) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return 0, fmt.Errorf("aggregate: only forward seeks from the current position (whence %d, offset %d)", whence, off)
	}
	pos, err := c.s.Seek(off, io.SeekCurrent)
	if err == nil && off > 0 {
		c.n += off
		c.zeros = 0
	}
	return pos, err
}

func readAggregate(r io.Reader, v Visitor) error {
	cr := &countingReader{r: r}
	var src io.Reader = cr
	s, seekable := r.(io.Seeker)
	if seekable {
		src = &seekingCounter{countingReader: cr, s: s}
	}
	tr := tar.NewReader(src)
	where := "in the first member's header"
	var end int64 // bytes read up to the end of the last member (data and padding)
	last := ""
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			// archive/tar also says io.EOF when the stream just stops
			// between headers; a whole aggregate ends with the trailer,
			// two zero blocks after the last member.
			if cr.n-end < TrailerSize || cr.zeros < TrailerSize {
				if last == "" {
					return streamError("before the first member", io.ErrUnexpectedEOF)
				}
				return streamError("after member "+last+" (no end-of-archive blocks)", io.ErrUnexpectedEOF)
			}
			return nil
		}
		if err != nil {
			return streamError(fmt.Sprintf("%s (byte %d)", where, cr.n), err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			if rec, ok := parseRecord(hdr); ok && v.Record != nil {
				if err := v.Record(rec); err != nil {
					return err
				}
			}
			end = (cr.n + blockSize - 1) / blockSize * blockSize
			continue
		}
		if taken, ok := hdr.PAXRecords[paxSnapshot]; ok {
			if err := readSnapshotMember(tr, hdr, taken, v); err != nil {
				return err
			}
			end = (cr.n + blockSize - 1) / blockSize * blockSize
			last = hdr.Name
			continue
		}
		m, err := parseMember(hdr)
		if err != nil {
			return streamError(fmt.Sprintf("in member %s (byte %d)", strings.TrimSuffix(hdr.Name, "/"), cr.n), err)
		}
		name := memberName(m)
		// archive/tar reads a header and no further: the data starts here.
		offset := cr.n
		mr := &memberReader{r: tr}
		var data io.Reader = strings.NewReader("")
		if m.Type == MemberFile {
			data = mr
		}
		var ferr error
		if v.Member != nil {
			ferr = v.Member(m, offset, data)
		}
		if mr.err != nil {
			return streamError("in member "+name, mr.err)
		}
		if ferr != nil {
			return ferr
		}
		// Read what fn left, here rather than inside Next, so a truncation
		// is blamed on this member and not on the header after it. A
		// reader that seeks has Next skip it instead (a drive locates over
		// what is long enough).
		if !seekable {
			if _, err := io.Copy(io.Discard, mr); err != nil {
				return streamError("in member "+name, err)
			}
		}
		// The padding to the next block is read by Next; it belongs to
		// this member.
		end = (cr.n + blockSize - 1) / blockSize * blockSize
		last = name
		where = "after member " + name
	}
}

// parseMember turns a tar header back into a Member. The TAPEFS records are
// the identity; the tar name is only for people using plain tar.
func parseMember(hdr *tar.Header) (Member, error) {
	rec := hdr.PAXRecords
	for k := range rec {
		// archive/tar turns GNU sparse records into a reader that makes
		// up the holes: a few blocks on tape could declare a terabyte
		// of zeros for the reader to wade through. tapefs never writes
		// them.
		if strings.HasPrefix(k, "GNU.sparse.") {
			return Member{}, fmt.Errorf("record %s: sparse members are not tapefs members", k)
		}
	}
	m := Member{
		Workspace: rec[paxWorkspace],
		Path:      rec[paxPath],
		MD5:       rec[paxMD5],
		CRC32C:    rec[paxCRC32C],
		Mode:      uint32(hdr.Mode) & 0o7777,
		UID:       hdr.Uid,
		GID:       hdr.Gid,
		Mtime:     hdr.ModTime,
	}
	if m.Workspace == "" || m.Path == "" {
		return m, errors.New("not a tapefs member (no TAPEFS.workspace or TAPEFS.path record)")
	}
	if m.CRC32C != "" && !checksum.ValidCRC32C(m.CRC32C) {
		return m, fmt.Errorf("record %s: %q is not a CRC32C (8 lower-case hex digits)", paxCRC32C, m.CRC32C)
	}
	var err error
	if m.Batch, err = strconv.ParseUint(rec[paxBatch], 10, 64); err != nil {
		return m, fmt.Errorf("record %s: %w", paxBatch, err)
	}
	if m.FileID, err = strconv.ParseUint(rec[paxFileID], 10, 64); err != nil {
		return m, fmt.Errorf("record %s: %w", paxFileID, err)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		m.Type, m.Size = MemberFile, hdr.Size
	case tar.TypeDir:
		m.Type = MemberDir
	case tar.TypeSymlink:
		m.Type, m.Target = MemberSymlink, hdr.Linkname
	case tar.TypeLink:
		m.Type = MemberLink
		if m.Link, err = strconv.ParseUint(rec[paxLink], 10, 64); err != nil {
			return m, fmt.Errorf("record %s: %w", paxLink, err)
		}
		// The tar link name is "<workspace>/<batch>/<path>" of the target.
		prefix := m.Workspace + "/" + rec[paxBatch] + "/"
		if !strings.HasPrefix(hdr.Linkname, prefix) {
			return m, fmt.Errorf("hard link to %s, outside its batch", hdr.Linkname)
		}
		m.Target = strings.TrimPrefix(hdr.Linkname, prefix)
	default:
		return m, fmt.Errorf("unexpected tar type %q", hdr.Typeflag)
	}
	if why := memberProblem(m); why != "" {
		return m, errors.New(why)
	}
	return m, nil
}

// readSnapshotMember hands a catalog snapshot member to v.
func readSnapshotMember(tr *tar.Reader, hdr *tar.Header, taken string, v Visitor) error {
	t, err := ParseTimeField(taken)
	if err != nil {
		return streamError("in catalog snapshot "+hdr.Name, err)
	}
	mr := &memberReader{r: tr}
	var ferr error
	if v.Snapshot != nil {
		ferr = v.Snapshot(Snapshot{Taken: t, Size: hdr.Size}, mr)
	}
	if mr.err != nil {
		return streamError("in catalog snapshot "+hdr.Name, mr.err)
	}
	if ferr != nil {
		return ferr
	}
	if _, err := io.Copy(io.Discard, mr); err != nil {
		return streamError("in catalog snapshot "+hdr.Name, err)
	}
	return nil
}
