package archive

import (
	"context"

	"github.com/tapefs/tapefs/catalog"
)

// Engine is the running archive.
type Engine struct {
	cfg Config
}

// New opens the engine on its catalog, cache and library and recovers what
// a previous run left: half-sealed entries, migrations and recalls in flight.
// Workers start with Start.
func New(cfg Config) (*Engine, error) { panic("TODO") }

// Start runs the background workers (migration, recall, retention) until
// Close.
func (e *Engine) Start() { panic("TODO") }

// Close stops the workers at a safe point and waits for them.
func (e *Engine) Close() error { panic("TODO") }

// Catalog is the engine's catalog, for read-only queries (lookup, readdir).
func (e *Engine) Catalog() *catalog.Catalog { return e.cfg.Catalog }

// StagingDir is where entries of put/ for a workspace are written.
func (e *Engine) StagingDir(workspace string) string { panic("TODO") }

// CreateWorkspace adds a workspace (its staging directory too).
func (e *Engine) CreateWorkspace(w catalog.Workspace) error { panic("TODO") }

// Seal turns the staged entry put/<workspace>/<entry> into a batch owned by
// owner. A *RejectError leaves the entry untouched.
func (e *Engine) Seal(ctx context.Context, workspace, entry string, owner uint32, tag string) (catalog.Batch, error) {
	panic("TODO")
}

// EntryState reports the state of an entry of put/ and, when rejected, why.
func (e *Engine) EntryState(workspace, entry string) (EntryState, string) { panic("TODO") }

// Reader reads one file of a batch, from the cache or while it is recalled.
type Reader struct{}

// Open returns a reader of a regular file. It never blocks on tape: a read
// waits for its own range.
func (e *Engine) Open(fileID uint64) (*Reader, error) { panic("TODO") }

// ReadAt reads from the file, waiting (until ctx is done) for a recall to
// stage the range. An interrupted wait returns ctx.Err(); the recall goes on.
func (r *Reader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) { panic("TODO") }

// Close releases the reader (and its hold on the cache object).
func (r *Reader) Close() error { panic("TODO") }

// Recall queues recalls of files (data owners are resolved) without reading.
func (e *Engine) Recall(fileIDs ...uint64) error { panic("TODO") }

// RecallBatch queues a recall of every file of a batch, in tape order.
func (e *Engine) RecallBatch(batch uint64) error { panic("TODO") }

// FileState reports whether a file's bytes are in the cache.
func (e *Engine) FileState(f *catalog.File) FileState { panic("TODO") }

// Remove soft-deletes a batch.
func (e *Engine) Remove(batch uint64) (catalog.Batch, error) { panic("TODO") }

// Undelete brings back a soft-deleted batch.
func (e *Engine) Undelete(batch uint64) (catalog.Batch, error) { panic("TODO") }

// Status reports a batch and its progress.
func (e *Engine) Status(batch uint64) (Status, error) { panic("TODO") }

// WaitBatch blocks until the batch is on tape (nil), FAILED (error) or ctx is done.
func (e *Engine) WaitBatch(ctx context.Context, batch uint64) (catalog.Batch, error) { panic("TODO") }

// EvictBatch drops the cached objects of a batch that is on tape (0 = every batch).
func (e *Engine) EvictBatch(batch uint64) (int64, error) { panic("TODO") }
