package catalog

import "time"

// The key-value interface the catalog logic sits on (engine_*.go implement
// it), and the option records of the catalog's own API.

// Engine is the small transactional key-value interface the catalog logic
// sits on. Keys and values are byte strings; a transaction sees its own
// writes; Update commits atomically and durably or not at all.
type Engine interface {
	Update(fn func(KVTxn) error) error
	View(fn func(KVTxn) error) error
	Close() error
}

// KVTxn is one transaction of an Engine. Slices returned by Get and passed
// to Scan callbacks are valid only inside the transaction.
type KVTxn interface {
	Get(key []byte) ([]byte, error) // nil, nil when absent
	Put(key, value []byte) error
	Delete(key []byte) error
	// Scan calls fn for keys with the prefix, in ascending order starting
	// at the first key ≥ from (from nil: the prefix), or in descending
	// order starting at the last key ≤ from (from nil: the end of the
	// prefix) when reverse is set. fn returns false to stop.
	Scan(prefix, from []byte, reverse bool, fn func(key, value []byte) (bool, error)) error
}

// ListOptions pages through batches.
type ListOptions struct {
	Workspace string  // "" = every workspace
	States    []State // empty = every state
	After     uint64  // cursor: IDs after (or before, with Newest) this one; 0 = start
	Limit     int     // 0 = no limit
	Newest    bool    // newest (highest ID) first
}

// AggregateCommit is everything recorded when one aggregate is on tape, in
// one transaction.
type AggregateCommit struct {
	Copies    map[uint64]Copy  // data-owning file ID -> the copy to append
	OnTape    map[uint64]int64 // batch ID -> bytes added to Batch.OnTape
	Cartridge CartridgeRecord  // the cartridge after the write
	Synced    []uint64         // batches now wholly on tape: state CachedSynced, Synced time set, their migrate jobs deleted
	Events    []Event
	Time      time.Time // when the aggregate was flushed: the Synced time of the Synced batches
	// Fence, when set, is checked first: nothing is recorded unless the
	// writer still holds the cartridge and the jobs it wrote under.
	Fence Fence
}
