package archive

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/tapefs/tapefs/tape"
)

// tapeReader reads one tape file from a drive, buffered, and skips forward
// (Seek) by reading through a short gap or locating over a long one:
// tape.ReadTapeFile then passes over the data of members nobody wants
// (the dead members of a repack) without streaming it, when that is
// cheaper.
type tapeReader struct {
	d        tape.Drive
	file     int
	buf      []byte
	r, w     int   // unread bytes are buf[r:w]
	pos      int64 // offset in the tape file of buf[r]
	skipRead int64 // gaps up to this are read through, longer ones located over
}

// newTapeReader reads tape file n from its start (the drive is located
// there).
func newTapeReader(d tape.Drive, n int, timing tape.Timing) (*tapeReader, error) {
	if err := d.Locate(n, 0); err != nil {
		return nil, err
	}
	return &tapeReader{d: d, file: n, buf: make([]byte, 1<<20), skipRead: readThroughMax(timing)}, nil
}

// readThroughMax is the longest gap that costs less to read than to locate
// over: a locate's fixed cost at the streaming rate (4 GB at LTO-9's
// 10 s and 400 MB/s).
func readThroughMax(t tape.Timing) int64 {
	if t.StreamRate <= 0 || t.LocateBase <= 0 {
		return math.MaxInt64
	}
	return int64(t.LocateBase.Seconds() * float64(t.StreamRate))
}

func (t *tapeReader) Read(p []byte) (int, error) {
	if t.r == t.w {
		if len(p) >= len(t.buf) {
			n, err := t.d.Read(p)
			t.pos += int64(n)
			return n, err
		}
		n, err := t.d.Read(t.buf)
		t.r, t.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, t.buf[t.r:t.w])
	t.r += n
	t.pos += int64(n)
	return n, nil
}

// Seek moves forward from the current position only (what tar does).
func (t *tapeReader) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return t.pos, errors.New("tape reader: only forward seeks from the current position")
	}
	if buffered := int64(t.w - t.r); off <= buffered {
		t.r += int(off)
		t.pos += off
		return t.pos, nil
	}
	rest := off - int64(t.w-t.r)
	t.r, t.w = 0, 0
	if rest <= t.skipRead {
		if n, err := io.CopyN(io.Discard, t.d, rest); err != nil {
			t.pos += int64(t.w-t.r) + n
			return t.pos, fmt.Errorf("tape reader: skipping %d bytes: %w", rest, err)
		}
	} else if err := t.d.Locate(t.file, t.pos+off); err != nil {
		return t.pos, err
	}
	t.pos += off
	return t.pos, nil
}
