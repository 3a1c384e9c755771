package archive

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/checksum"
)

// The streaming recall of one member: reading the tape, writing the cache
// and computing the checksum are three stages on three goroutines, joined by a
// ring of chunks, so that a recall costs the slowest of the three and not
// their sum.
//
// Why three and not two: the drive is paced (tape.library.pace) and gives a
// reader credit for the host's time between two of its reads only up to
// one step. Any work done between two reads on the reading goroutine — a
// cache write that waits for the disk, a goroutine descheduled on a loaded
// machine — beyond that is drive time lost for good, as a real drive that
// stops streaming. So the goroutine that owns the drive only reads, and
// hands each chunk to the writer and to the hasher at once; the chunk goes
// back to the ring when both are done with it. The checksum is the
// member's CRC32C (internal/checksum: gigabytes per second) when the tape
// has one, and its md5 otherwise — md5 (about 650 MB/s on an idle core of
// the machine these figures come from, against the drive's 400 MB/s and a
// disk that writes gigabytes per second into the page cache) is then the
// stage that sets the pace when the CPU is short; streamDepth chunks in
// flight let the reading run ahead while it catches up.
const (
	streamChunk = 1 << 20
	streamDepth = 16
)

// chunkPool keeps the chunks of finished recalls for the next: a pass of
// thousands of small members allocates none after the first.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, streamChunk); return &b }}

// chunk is one buffer of the ring on its way to the writer and the hasher.
type chunk struct {
	buf  *[]byte
	n    int
	refs atomic.Int32 // stages still using it
}

// streamSums is what a checksum.Hash computed of a file's bytes: always
// the CRC32C, and the md5 when asked for (copyHashed, a read-back of a
// tape copy; sealing asks for both).
type streamSums struct{ md5, crc string }

// matches reports whether the sums agree with those sealed for f: the
// CRC32C when both have one, the md5 when both have one.
func (s streamSums) matches(f *catalog.File) bool {
	return (f.CRC32C == "" || s.crc == f.CRC32C) && (f.MD5 == "" || s.md5 == "" || s.md5 == f.MD5)
}

// sumsOf is what h computed.
func sumsOf(h *checksum.Hash) streamSums {
	md5sum, crc := h.Sums()
	return streamSums{md5: md5sum, crc: crc}
}

// copyHashed copies src to dst and returns the CRC32C of the bytes, and
// their md5 if withMD5 (see the top of this file). It returns the first
// error of either side; after a write error it stops reading.
func copyHashed(dst io.Writer, src io.Reader, withMD5 bool) (streamSums, error) {
	h := checksum.New(withMD5)
	first := chunkPool.Get().(*[]byte)
	n, rerr := io.ReadFull(src, *first)
	if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
		// The whole member fits one chunk (most files): no goroutines.
		defer chunkPool.Put(first)
		h.Write((*first)[:n])
		if _, werr := dst.Write((*first)[:n]); werr != nil {
			return sumsOf(h), werr
		}
		return sumsOf(h), nil
	}
	if rerr != nil {
		chunkPool.Put(first)
		return streamSums{}, rerr
	}

	free := make(chan *[]byte, streamDepth)
	toWrite := make(chan *chunk, streamDepth)
	toHash := make(chan *chunk, streamDepth)
	var werr error
	var failed atomic.Bool // the writer failed: stop reading
	release := func(c *chunk) {
		if c.refs.Add(-1) == 0 {
			free <- c.buf
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for c := range toWrite {
			if werr == nil {
				if _, err := dst.Write((*c.buf)[:c.n]); err != nil {
					werr = err
					failed.Store(true)
				}
			}
			release(c)
		}
	}()
	var sum streamSums
	go func() {
		defer wg.Done()
		for c := range toHash {
			h.Write((*c.buf)[:c.n])
			release(c)
		}
		sum = sumsOf(h)
	}()

	send := func(b *[]byte, n int) {
		c := &chunk{buf: b, n: n}
		c.refs.Store(2)
		toWrite <- c
		toHash <- c
	}
	send(first, n)
	allocated := 1
	var err error
	for !failed.Load() {
		var b *[]byte
		if allocated < streamDepth {
			select {
			case b = <-free:
			default:
				b = chunkPool.Get().(*[]byte)
				allocated++
			}
		} else {
			b = <-free
		}
		n, rerr := io.ReadFull(src, *b)
		if n > 0 {
			send(b, n)
		} else {
			free <- b
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(toWrite)
	close(toHash)
	wg.Wait()
	for range allocated {
		chunkPool.Put(<-free)
	}
	if werr != nil {
		return sum, werr
	}
	return sum, err
}
