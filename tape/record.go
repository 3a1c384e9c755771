package tape

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Records are what the catalog knows beyond the members themselves: the
// attributes of a batch (tag, owner, times), of a workspace, and changes
// made after the data was written (a batch removed, undeleted, purged).
// Each is a PAX global header (typeflag 'g') holding only TAPEFS.*
// keywords. GNU tar and archive/tar step over global headers they do not
// understand (GNU tar warns once per unknown keyword; --warning=
// no-unknown-keyword silences it), so tape files with records extract as
// before, and a reader that predates records never meets them unless it
// reads a newer tape.
const (
	paxRecordKind = "TAPEFS.record"
	paxPrefix     = "TAPEFS."
	paxLink       = "TAPEFS.link"     // hard link member: file ID owning the data
	paxSnapshot   = "TAPEFS.snapshot" // catalog snapshot member: time it was taken
)

// Record kinds.
const (
	// RecordBatch: a batch's attributes, written in front of its first
	// member in every tape file holding members of it.
	RecordBatch = "batch"
	// RecordWorkspace: a workspace's attributes as they were when written.
	RecordWorkspace = "workspace"
	// RecordState: a batch changed state after its data was written
	// (removed, undeleted, purged).
	RecordState = "state"
	// RecordClosed ends a tape file: when it was closed.
	RecordClosed = "closed"
	// RecordCartridge: root changed a cartridge's state (read-only,
	// disabled, lost, or back to the library's) or pool, and when.
	RecordCartridge = "cartridge"
	// RecordDropped: a copy of a file was found bad and replaced; the
	// bytes are still on their cartridge (of the generation named) but
	// are no copy any more.
	RecordDropped = "dropped"
)

// Record is one PAX global header of TAPEFS keywords. Fields are keyed
// without the "TAPEFS." prefix and must not contain "record".
type Record struct {
	Kind   string
	Fields map[string]string
}

// TimeField formats a time for a record field: exact to the nanosecond,
// with the zone offset, as the catalog keeps it.
func TimeField(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}

// ParseTimeField reads a time written by TimeField ("" is the zero time).
func ParseTimeField(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func recordHeader(r Record) (*tar.Header, error) {
	if r.Kind == "" || strings.ContainsAny(r.Kind, "\x00\n=") {
		return nil, fmt.Errorf("aggregate: record kind %q is not valid", r.Kind)
	}
	recs := map[string]string{paxRecordKind: r.Kind}
	for _, k := range slices.Sorted(maps.Keys(r.Fields)) {
		v := r.Fields[k]
		if k == "" || k == "record" || strings.ContainsAny(k, "\x00\n= ") {
			return nil, fmt.Errorf("aggregate: %s record: field name %q is not valid", r.Kind, k)
		}
		if v == "" {
			continue // absent and empty read back the same
		}
		if strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("aggregate: %s record: field %s contains NUL", r.Kind, k)
		}
		recs[paxPrefix+k] = v
	}
	return &tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "tapefs-" + r.Kind, Format: tar.FormatPAX, PAXRecords: recs}, nil
}

func parseRecord(hdr *tar.Header) (Record, bool) {
	kind, ok := hdr.PAXRecords[paxRecordKind]
	if !ok {
		return Record{}, false // someone else's global header
	}
	r := Record{Kind: kind, Fields: map[string]string{}}
	for k, v := range hdr.PAXRecords {
		if k != paxRecordKind && strings.HasPrefix(k, paxPrefix) {
			r.Fields[strings.TrimPrefix(k, paxPrefix)] = v
		}
	}
	return r, true
}

func (a *aggregateWriter) addRecord(r Record) error {
	if a.err != nil {
		return a.err
	}
	hdr, err := recordHeader(r)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := writeRecordHeader(&buf, hdr); err != nil {
		return fmt.Errorf("aggregate: %s record: %w", r.Kind, err)
	}
	if _, err := a.cw.Write(buf.Bytes()); err != nil {
		a.err = fmt.Errorf("aggregate: %s record: %w", r.Kind, err)
		return a.err
	}
	return nil
}

// AddRecord writes a record (a PAX global header) at this point of the
// aggregate.
func (a *AggregateWriter) AddRecord(r Record) error { return a.impl.addRecord(r) }

// RecordSize is the exact number of bytes AddRecord writes for r.
func RecordSize(r Record) int64 {
	hdr, err := recordHeader(r)
	if err != nil {
		return 0
	}
	cw := &countingWriter{w: io.Discard}
	if err := writeRecordHeader(cw, hdr); err != nil {
		return 0
	}
	return cw.n
}

// writeRecordHeader renders a global header with the padding of its
// records, which archive/tar otherwise holds back until the next header.
func writeRecordHeader(w io.Writer, hdr *tar.Header) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	return tw.Flush()
}

// Snapshot describes a catalog snapshot stored as a tape file of its own:
// one regular member "tapefs-catalog/<time>.db" (a bbolt file) whose
// TAPEFS.snapshot record is the time the snapshot was taken.
type Snapshot struct {
	Taken time.Time
	Size  int64
}

// SnapshotSize is the bytes WriteSnapshot writes for a snapshot of size
// bytes, trailer included.
func SnapshotSize(s Snapshot) int64 {
	hdr := snapshotHeader(s)
	cw := &countingWriter{w: io.Discard}
	_ = tar.NewWriter(cw).WriteHeader(hdr)
	return cw.n + (s.Size+blockSize-1)/blockSize*blockSize + TrailerSize
}

func snapshotHeader(s Snapshot) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg, Name: "tapefs-catalog/" + s.Taken.UTC().Format("20060102T150405.000000000Z") + ".db",
		Mode: 0o600, Size: s.Size, ModTime: s.Taken, Format: tar.FormatPAX,
		PAXRecords: map[string]string{paxSnapshot: TimeField(s.Taken)},
	}
}

// WriteSnapshot writes a whole tape file holding one catalog snapshot of
// s.Size bytes read from data.
func WriteSnapshot(w io.Writer, s Snapshot, data io.Reader) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(snapshotHeader(s)); err != nil {
		return fmt.Errorf("catalog snapshot: %w", err)
	}
	n, err := io.Copy(tw, io.LimitReader(data, s.Size))
	if err == nil && n < s.Size {
		err = fmt.Errorf("the snapshot gave %d of %d bytes", n, s.Size)
	}
	if err != nil {
		return fmt.Errorf("catalog snapshot: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("catalog snapshot: %w", err)
	}
	return nil
}

// Visitor receives what ReadTapeFile finds in a tape file, in tape order.
// A nil function skips that kind of entry.
type Visitor struct {
	// Member gets every member, the byte offset in the tape file where its
	// data begins (what a Copy records), and its data (regular files),
	// which must be consumed or abandoned before it returns.
	Member func(m Member, offset int64, data io.Reader) error
	// Record gets every record.
	Record func(r Record) error
	// Snapshot gets a catalog snapshot and its bytes.
	Snapshot func(s Snapshot, data io.Reader) error
}

// ReadTapeFile reads a whole tape file (an aggregate, with or without
// records, or a catalog snapshot) and hands what it holds to v. Tape files
// written before records existed read as aggregates without records. When
// r is also an io.Seeker (forward, from the current position), member data
// v does not read is skipped with Seek rather than read.
func ReadTapeFile(r io.Reader, v Visitor) error { return readAggregate(r, v) }
