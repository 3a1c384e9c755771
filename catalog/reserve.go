package catalog

import "fmt"

// ReserveBatch stores a new batch with no files yet (a put from the command
// line, CACHING while its bytes arrive) and returns it with its ID. Its
// Bytes are charged to the workspace now; RegisterBatch with the same ID
// later gives it its files and replaces the charge with the real size.
func (tx *Tx) ReserveBatch(b Batch) (Batch, error) {
	w, err := tx.Workspace(b.Workspace)
	if err != nil {
		return Batch{}, fmt.Errorf("reserve batch: %w", err)
	}
	if b.ID, err = tx.allocate(sequenceBatch, 1); err != nil {
		return Batch{}, fmt.Errorf("reserve batch: %w", err)
	}
	b.State, b.Files, b.FirstFile = Caching, 0, 0
	w.Used += b.Bytes
	if err := tx.PutWorkspace(w); err != nil {
		return Batch{}, err
	}
	if err := tx.PutBatch(b); err != nil {
		return Batch{}, err
	}
	return b, nil
}
