package tape

import (
	"io"
	"time"
)

// MemberType is the kind of an aggregate member.
type MemberType byte

const (
	MemberFile    MemberType = 'f'
	MemberDir     MemberType = 'd'
	MemberSymlink MemberType = 'l'
	// MemberLink is a second name of a regular file of the same batch (a
	// hard link): a tar link member naming the member that holds the data,
	// which must come earlier in the same tape file.
	MemberLink MemberType = 'h'
)

// Member describes one entry of an aggregate. In the tar stream it is a PAX
// member whose records TAPEFS.workspace, TAPEFS.batch, TAPEFS.path,
// TAPEFS.md5, TAPEFS.crc32c and TAPEFS.fileid carry the catalog's identity of the file, so a
// cartridge is readable with plain tar and the catalog can be rebuilt from
// tapes alone. The tar name is "<workspace>/<batch>/<path>".
type Member struct {
	FileID    uint64
	Workspace string
	Batch     uint64
	Path      string // path inside the batch, slash-separated, no leading slash
	Type      MemberType
	MD5       string // hex, regular files only
	CRC32C    string // 8 hex digits, regular files only; what a read-back checks (internal/checksum)
	Mode      uint32 // permission bits (and setuid/setgid/sticky)
	UID, GID  int
	Mtime     time.Time
	Size      int64  // regular files only
	Target    string // symlink target; for a MemberLink the path (inside the batch) of the file holding the data
	Link      uint64 // MemberLink: the file ID holding the data
}

// TrailerSize is the number of bytes AggregateWriter.Close writes (the tar
// end-of-archive blocks).
const TrailerSize = 1024

// AggregateWriter writes one aggregate (one tape file) as a PAX tar stream.
type AggregateWriter struct{ impl aggregateWriter }

// NewAggregateWriter starts an aggregate on w.
func NewAggregateWriter(w io.Writer) *AggregateWriter { return newAggregateWriter(w) }

// Add writes one member and returns the byte offset, inside the aggregate,
// where its data begins. For a regular file exactly m.Size bytes are read
// from data; fewer is an error.
func (a *AggregateWriter) Add(m Member, data io.Reader) (dataOffset int64, err error) {
	return a.impl.add(m, data)
}

// Written reports the bytes written so far.
func (a *AggregateWriter) Written() int64 { return a.impl.written() }

// Close writes the trailer. It does not close the underlying writer.
func (a *AggregateWriter) Close() error { return a.impl.close() }

// MemberSize is an upper bound of the bytes Add writes for m (headers,
// data, padding), used to decide whether a member still fits on a cartridge.
func MemberSize(m Member) int64 { return memberSize(m) }

// ReadAggregate reads a whole aggregate and calls fn for every member, with
// the member's data (regular files) as a reader that must be consumed or
// abandoned before fn returns. A truncated or corrupt stream is an error that
// names the member where it broke.
func ReadAggregate(r io.Reader, fn func(m Member, data io.Reader) error) error {
	return readAggregate(r, Visitor{Member: func(m Member, _ int64, data io.Reader) error { return fn(m, data) }})
}

// Open opens (or creates) the virtual library described by cfg.
func Open(cfg Config) (Library, error) { return openVirtual(cfg) }

// LabelSize is the bytes tape file 0 (the label) takes on a cartridge:
// what CartridgeInfo.Used counts besides the tape files after it.
func LabelSize() int64 {
	b, err := labelBytes("TF0001", time.Unix(0, 0), 1)
	if err != nil {
		return 0
	}
	return int64(len(b))
}
