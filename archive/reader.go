package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/tapefs/tapefs/cache"
	"github.com/tapefs/tapefs/catalog"
)

// Reader reads one file of a batch, from the cache or while it is recalled.
type Reader struct {
	e    *Engine
	file catalog.File // the data owner
	mu   sync.Mutex
	h    *cache.Handle // open object, complete or filling
	req  *recallReq
	// complete is set once h is known to hold the whole file. It stays
	// true: an open object is never evicted, and a removed one stays
	// readable through h. Reads of a cached file then skip the cache's
	// index (and its lock) entirely.
	complete bool
	read     atomic.Bool // the engine was told that a reader has the bytes (noteRead)
}

// Open returns a reader of a regular file. It never blocks on tape: a read
// waits for its own range.
func (e *Engine) Open(fileID uint64) (*Reader, error) {
	var f catalog.File
	err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		f, err = tx.File(fileID)
		if err == nil && f.Link != 0 {
			f, err = tx.File(f.Link)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if f.Type != catalog.TypeFile {
		return nil, fmt.Errorf("file %d (%s) is not a regular file", fileID, f.Path)
	}
	if d, ok := e.integrity.lookup(f.ID); ok {
		return nil, d // the only copy, known damaged: EIO, not its bytes
	}
	e.noteOpen(f)
	r := &Reader{e: e, file: f}
	if info, ok := e.cache.Lookup(f.ID); ok && info.Whole() {
		if h, err := e.cache.Open(f.ID); err == nil {
			good, err := e.openCheck(f, h)
			if good {
				r.h, r.complete = h, true
				r.delivered()
				return r, nil
			}
			h.Close()
			if err != nil {
				return nil, err
			}
			// Dropped as damaged: the first read recalls it.
		}
	}
	if h := e.peerObject(f); h != nil { // another host's batch not on tape yet (peer.go)
		r.h, r.complete = h, true
	}
	return r, nil
}

// Size is the file's size.
func (r *Reader) Size() int64 { return r.file.Size }

// Cached returns the open object file when the whole file is in the cache
// (for kernel passthrough); nil while it is not.
func (r *Reader) Cached() *os.File {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		return nil
	}
	if !r.complete {
		info, ok := r.e.cache.Lookup(r.file.ID)
		r.complete = ok && info.Whole()
	}
	if r.complete {
		return r.h.File()
	}
	return nil
}

// ReadAt reads from the file, waiting (until ctx is done) for a recall to
// stage the range. An interrupted wait returns ctx.Err(); the recall goes on.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	size := r.file.Size
	if off >= size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), size-off)
	for attempt := 0; ; attempt++ {
		h, err := r.ready(ctx, off, n)
		if err == nil {
			m, err := h.File().ReadAt(p[:n], off)
			if err == io.EOF && int64(m) == n {
				err = nil
			}
			if err == nil && int64(m) < int64(len(p)) {
				err = io.EOF
			}
			r.delivered()
			return m, err
		}
		// The object vanished between the wait and the open (evicted, or
		// a recall failed and the next one must start): ask again once.
		if errors.Is(err, cache.ErrNotCached) && attempt < 3 {
			r.mu.Lock()
			r.req = nil
			r.mu.Unlock()
			continue
		}
		return 0, err
	}
}

// ready waits until [off, off+n) is in the cache and returns the open object.
func (r *Reader) ready(ctx context.Context, off, n int64) (*cache.Handle, error) {
	r.mu.Lock()
	h, req, complete := r.h, r.req, r.complete
	r.mu.Unlock()
	if complete {
		return h, nil
	}
	if h != nil {
		if info, ok := r.e.cache.Lookup(r.file.ID); ok && info.Whole() {
			r.mu.Lock()
			r.complete = true
			r.mu.Unlock()
			return h, nil
		}
	}
	if req == nil && h == nil {
		// A batch just sealed is visible before its objects are in the
		// cache: wait for them rather than fail for want of a tape copy.
		if _, err := r.e.waitAdopted(ctx, r.file); err != nil {
			return nil, err
		}
		ph, f, err := r.e.waitPeer(ctx, r.file) // another host's batch not on tape yet (peer.go)
		if err != nil {
			return nil, err
		}
		if ph != nil {
			r.mu.Lock()
			r.h, r.complete = ph, true
			r.mu.Unlock()
			return ph, nil
		}
		reqs, err := r.e.requestReads([]catalog.File{f})
		if err != nil {
			return nil, err
		}
		if len(reqs) > 0 {
			req = reqs[0]
			r.mu.Lock()
			r.req = req
			r.mu.Unlock()
		}
	}
	if req != nil {
		select {
		case <-req.started:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		select {
		case <-req.done:
			if req.err != nil {
				return nil, req.err
			}
		default:
		}
	}
	if err := r.e.cache.WaitRange(ctx, r.file.ID, off, n); err != nil {
		if req != nil && !errors.Is(err, ctx.Err()) {
			// The partial object ended badly or before we looked: the
			// request knows why. A recall that failed over to another
			// copy (failover.go) ends well: the object is complete then.
			select {
			case <-req.done:
				if req.err != nil {
					return nil, req.err
				}
				if werr := r.e.cache.WaitRange(ctx, r.file.ID, off, n); werr != nil {
					return nil, werr
				}
				err = nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		h, err := r.e.cache.Open(r.file.ID)
		if err != nil {
			return nil, err
		}
		r.h = h
	}
	return r.h, nil
}

// Close releases the reader (and its hold on the cache object).
func (r *Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h != nil {
		err := r.h.Close()
		r.h, r.complete = nil, false
		return err
	}
	return nil
}

// Recall queues recalls of files (data owners are resolved) without reading.
func (e *Engine) Recall(fileIDs ...uint64) error {
	var files []catalog.File
	err := e.cat.View(func(tx *catalog.Tx) error {
		for _, id := range fileIDs {
			f, err := tx.File(id)
			if err != nil {
				return err
			}
			if f.Link != 0 {
				if f, err = tx.File(f.Link); err != nil {
					return err
				}
			}
			if f.Type == catalog.TypeFile {
				files = append(files, f)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = e.requestRecalls(files)
	return err
}

// RecallBatch queues a recall of every file of a batch, in tape order.
func (e *Engine) RecallBatch(batch uint64) error {
	var b catalog.Batch
	if err := e.cat.View(func(tx *catalog.Tx) error {
		var err error
		b, err = tx.Batch(batch)
		return err
	}); err != nil {
		return err
	}
	var files []catalog.File
	if err := e.eachDataFile(b, func(f catalog.File) error {
		if _, ok := e.cache.Lookup(f.ID); !ok {
			files = append(files, f)
		}
		return nil
	}); err != nil {
		return err
	}
	_, err := e.requestRecalls(files)
	return err
}

// FileState reports whether a file's bytes are in the cache.
func (e *Engine) FileState(f *catalog.File) FileState {
	if f.Type != catalog.TypeFile {
		return Online
	}
	info, ok := e.cache.Lookup(f.DataID())
	switch {
	case !ok && e.queuedForRead(f.DataID()):
		return Staging // asked for, waiting in the recall queue
	case !ok:
		return Offline
	case !info.Whole():
		return Staging
	}
	return Online
}
