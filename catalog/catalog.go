package catalog

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Catalog is an open catalog.
type Catalog struct {
	eng    Engine
	origin string // stamped on the events this Catalog records (Event.Origin)
}

// Tx is a catalog transaction: reads, and writes inside Update.
type Tx struct {
	kv     KVTxn
	origin string
}

// Open opens the catalog database at path (bbolt), creating it if needed.
func Open(path string) (*Catalog, error) {
	eng, err := OpenBoltEngine(path)
	if err != nil {
		return nil, err
	}
	c, err := New(eng)
	if err != nil {
		eng.Close()
		return nil, err
	}
	return c, nil
}

// ReleaseMapped gives the catalog file's pages that the process has
// mapped back to the kernel's page cache (bbolt; other engines map
// nothing).
func (c *Catalog) ReleaseMapped() error {
	if r, ok := c.eng.(interface{ releaseMapped() error }); ok {
		return r.releaseMapped()
	}
	return nil
}

// IsDatabaseURL reports whether spec names a PostgreSQL database rather than
// a file.
func IsDatabaseURL(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// OpenAt opens the catalog named by spec: a postgres:// URL, or when spec
// is empty the bbolt file at path (the embedded default).
func OpenAt(spec, path string) (*Catalog, error) {
	if spec == "" {
		return Open(path)
	}
	eng, err := OpenPostgresEngine(spec, PostgresOptions{})
	if err != nil {
		return nil, err
	}
	c, err := New(eng)
	if err != nil {
		eng.Close()
		return nil, err
	}
	return c, nil
}

// New puts the catalog logic on eng. An empty store is stamped with
// SchemaVersion; a store written by an older tapefs is upgraded; one
// written by a newer tapefs is refused untouched.
func New(eng Engine) (*Catalog, error) {
	var version uint64
	var stamped bool
	// Read first, in a View: a refused catalog must not see even an
	// empty write transaction.
	err := eng.View(func(kv KVTxn) error {
		v, err := kv.Get(versionKey())
		if err != nil || v == nil {
			return err
		}
		stamped = true
		version, err = decodeVersion(v)
		return err
	})
	if err != nil {
		return nil, err
	}
	if version > SchemaVersion {
		return nil, &newerSchemaError{have: version, understood: SchemaVersion}
	}
	if stamped && version < SchemaVersion {
		if err := upgrade(eng, version); err != nil {
			return nil, err
		}
	}
	if !stamped {
		// Keys without a version: a copy (CopyEngine) that did not finish, or
		// a database that is not a tapefs catalog. Never stamp those.
		var foreign []byte
		if err := eng.View(func(kv KVTxn) error {
			return kv.Scan(nil, nil, false, func(k, v []byte) (bool, error) {
				foreign = bytes.Clone(k)
				return false, nil
			})
		}); err != nil {
			return nil, err
		}
		if foreign != nil {
			return nil, errors.New("the catalog store holds records but no schema version: an interrupted 'tapefs catalog copy' (run it again: it starts over) or not a tapefs catalog")
		}
		err := eng.Update(func(kv KVTxn) error {
			return kv.Put(versionKey(), binary.BigEndian.AppendUint64(nil, SchemaVersion))
		})
		if err != nil {
			return nil, fmt.Errorf("stamp catalog schema version: %w", err)
		}
	}
	return &Catalog{eng: eng, origin: rand.Text()}, nil
}

// Origin names this open catalog among the processes sharing the store;
// every event it records carries it.
func (c *Catalog) Origin() string { return c.origin }

// upgrade brings a catalog of schema version from up to SchemaVersion. A
// catalog on PostgreSQL is upgraded only when no daemon is running on it
// (an older tapefs would misread the new records); a bbolt file is locked
// by the process that opened it.
func upgrade(eng Engine, from uint64) error {
	var running []string
	_, shared := eng.(*pgEngine) // the embedded engines are one process's alone
	err := eng.View(func(kv KVTxn) error {
		if !shared {
			return nil
		}
		tx := &Tx{kv: kv}
		now, err := tx.Now()
		if err != nil {
			return err
		}
		hosts, err := tx.Hosts()
		for _, h := range hosts {
			if h.Alive(now) {
				running = append(running, h.ID)
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("upgrade the catalog from schema version %d: %w", from, err)
	}
	if len(running) > 0 {
		return fmt.Errorf("the catalog has schema version %d and this tapefs upgrades it to %d, but hosts %s are running on it (their heartbeats are fresh): stop every tapefs daemon on this catalog, then start this one again (the catalog was not modified)",
			from, SchemaVersion, strings.Join(running, ", "))
	}
	// Version 1 -> 2 is the only step so far.
	return upgradeFileLayout(eng)
}

func decodeVersion(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("catalog schema version key is corrupt (%d bytes); restore the catalog from a backup", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// newerSchemaError refuses a catalog written by a newer tapefs. It is
// ErrNewerSchema to errors.Is, and says what to do.
type newerSchemaError struct{ have, understood uint64 }

func (e *newerSchemaError) Error() string {
	return fmt.Sprintf("catalog has schema version %d; this tapefs understands up to %d: upgrade tapefs (the catalog was not modified)",
		e.have, e.understood)
}

func (e *newerSchemaError) Is(target error) bool { return target == ErrNewerSchema }

// Close closes the underlying engine.
func (c *Catalog) Close() error { return c.eng.Close() }

// Update runs fn in a read-write transaction: committed when fn returns
// nil, rolled back entirely when it returns an error or panics.
func (c *Catalog) Update(fn func(tx *Tx) error) error {
	defer enterTxn()()
	return c.eng.Update(func(kv KVTxn) error { return fn(&Tx{kv: kv, origin: c.origin}) })
}

// View runs fn in a read-only transaction that sees one consistent state.
func (c *Catalog) View(fn func(tx *Tx) error) error {
	defer enterTxn()()
	return c.eng.View(func(kv KVTxn) error { return fn(&Tx{kv: kv, origin: c.origin}) })
}
