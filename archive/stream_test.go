package archive

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
	"testing/iotest"

	"github.com/tapefs/tapefs/internal/checksum"
)

// TestCopyHashedSizes: every size around the chunk boundaries arrives
// whole and in order, with its CRC32C (and md5 when asked), whatever sizes the source reads in.
func TestCopyHashedSizes(t *testing.T) {
	sizes := []int{0, 1, 4096, streamChunk - 1, streamChunk, streamChunk + 1,
		3*streamChunk + 17, (streamDepth + 3) * streamChunk}
	for _, size := range sizes {
		data := make([]byte, size)
		rand.New(rand.NewSource(int64(size))).Read(data)
		wantMD5, wantCRC := checksum.Of(data)
		for _, withMD5 := range []bool{true, false} {
			for _, src := range []io.Reader{bytes.NewReader(data), iotest.HalfReader(bytes.NewReader(data))} {
				var dst bytes.Buffer
				sum, err := copyHashed(&dst, src, withMD5)
				if err != nil {
					t.Fatalf("size %d: %v", size, err)
				}
				want := streamSums{crc: wantCRC}
				if withMD5 {
					want.md5 = wantMD5
				}
				if sum != want || !bytes.Equal(dst.Bytes(), data) {
					t.Fatalf("size %d, md5 asked %v: %+v, %d bytes written; want %+v and the same bytes", size, withMD5, sum, dst.Len(), want)
				}
			}
		}
	}
}

// failingWriter fails once it has taken limit bytes.
type failingWriter struct {
	n, limit int
}

var errDiskFull = errors.New("no space left on device")

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		return 0, errDiskFull
	}
	w.n += len(p)
	return len(p), nil
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestCopyHashedWriteFails: a cache write that fails (disk full) ends the
// copy with its error, and the tape is not read on to the end of a large
// member.
func TestCopyHashedWriteFails(t *testing.T) {
	const size = 200 * streamChunk
	src := &countingReader{r: io.LimitReader(zeroReader{}, size)}
	_, err := copyHashed(&failingWriter{limit: 3 * streamChunk}, src, true)
	if !errors.Is(err, errDiskFull) {
		t.Fatalf("copy into a full disk: %v; want %v", err, errDiskFull)
	}
	if src.n > (3+2*streamDepth+2)*streamChunk {
		t.Errorf("read %d MiB of the tape after the cache failed at 3 MiB", src.n>>20)
	}
}

// TestCopyHashedReadFails: a tape read that fails ends the copy with its
// error.
func TestCopyHashedReadFails(t *testing.T) {
	errMedium := errors.New("medium error")
	src := io.MultiReader(io.LimitReader(zeroReader{}, 5*streamChunk+3), iotest.ErrReader(errMedium))
	var dst bytes.Buffer
	if _, err := copyHashed(&dst, src, false); !errors.Is(err, errMedium) {
		t.Fatalf("copy from a failing tape: %v; want %v", err, errMedium)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
