package catalog

import (
	"bytes"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

// WriteSnapshot writes a consistent copy of the whole catalog, while it is
// in use, as a bbolt file at path (which must not exist): the home's
// catalog.db format whatever the engine, so a lost home is restored by
// putting the file in place. bbolt copies its pages inside one read
// transaction (writers go on meanwhile); another engine is copied key by
// key inside one View, which on PostgreSQL is one REPEATABLE READ
// snapshot. It returns the size of the file.
func (c *Catalog) WriteSnapshot(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, fmt.Errorf("catalog snapshot: %w", err)
	}
	fail := func(err error) (int64, error) {
		f.Close()
		os.Remove(path)
		return 0, fmt.Errorf("catalog snapshot %s: %w", path, err)
	}
	if be, ok := c.eng.(*boltEngine); ok {
		err := be.db.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(f)
			return err
		})
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			return fail(err)
		}
	} else {
		f.Close()
		os.Remove(path)
		if err := copyKeys(path, c.eng); err != nil {
			os.Remove(path)
			return 0, fmt.Errorf("catalog snapshot %s: %w", path, err)
		}
		if f, err = os.Open(path); err != nil {
			return 0, err
		}
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// copyKeys copies every key of src, read in one transaction, into a new
// bbolt file at path.
func copyKeys(path string, src Engine) error {
	dst, err := OpenBoltEngine(path)
	if err != nil {
		return err
	}
	var chunk []kvPair
	flush := func() error {
		err := dst.Update(func(kv KVTxn) error {
			for _, p := range chunk {
				if err := kv.Put(p.key, p.value); err != nil {
					return err
				}
			}
			return nil
		})
		chunk = chunk[:0]
		return err
	}
	err = src.View(func(kv KVTxn) error {
		chunk = chunk[:0] // a retried View starts over
		return kv.Scan(nil, nil, false, func(k, v []byte) (bool, error) {
			chunk = append(chunk, kvPair{bytes.Clone(k), bytes.Clone(v)})
			if len(chunk) < copyChunk {
				return true, nil
			}
			return true, flush()
		})
	})
	if err == nil {
		err = flush()
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	return err
}
