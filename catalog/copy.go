package catalog

import (
	"bytes"
	"errors"
	"fmt"
)

// copyChunk is how many keys one transaction of Copy writes: large enough
// that the copy streams (COPY on PostgreSQL), small enough that neither
// side holds a whole big catalog in memory.
const copyChunk = 50_000

// ErrNotEmpty is returned by CopyEngine when the destination already holds a
// catalog.
var ErrNotEmpty = errors.New("destination already holds a catalog")

// CopyStats says what CopyEngine did.
type CopyStats struct {
	Keys    int   // keys copied (and then compared)
	Bytes   int64 // bytes of keys and values
	Cleared int   // keys of an interrupted earlier copy removed first
}

// CopyEngine copies every key of src into dst, for moving a home's catalog to a
// shared database. src is read in one transaction (a consistent snapshot);
// dst is written in chunks, with the schema version key last, so a copy
// that is interrupted leaves a destination that New refuses (and that the
// next Copy clears) rather than half a catalog that looks whole. Afterwards
// both sides are read again and compared key by key.
func CopyEngine(dst, src Engine, progress func(keys int)) (CopyStats, error) {
	var st CopyStats
	var hasVersion bool
	var stale [][]byte
	err := dst.View(func(kv KVTxn) error {
		return kv.Scan(nil, nil, false, func(k, v []byte) (bool, error) {
			if bytes.Equal(k, versionKey()) {
				hasVersion = true
				return false, nil
			}
			stale = append(stale, bytes.Clone(k))
			return true, nil
		})
	})
	if err != nil {
		return st, fmt.Errorf("read the destination: %w", err)
	}
	if hasVersion {
		return st, ErrNotEmpty
	}
	for len(stale) > 0 {
		n := min(len(stale), copyChunk)
		if err := dst.Update(func(kv KVTxn) error {
			for _, k := range stale[:n] {
				if err := kv.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return st, fmt.Errorf("clear an interrupted copy: %w", err)
		}
		st.Cleared += n
		stale = stale[n:]
	}

	var version []byte
	var chunk []kvPair
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		err := dst.Update(func(kv KVTxn) error {
			for _, p := range chunk {
				if err := kv.Put(p.key, p.value); err != nil {
					return err
				}
			}
			return nil
		})
		chunk = chunk[:0]
		if progress != nil {
			progress(st.Keys)
		}
		return err
	}
	err = src.View(func(kv KVTxn) error {
		return kv.Scan(nil, nil, false, func(k, v []byte) (bool, error) {
			st.Keys++
			st.Bytes += int64(len(k) + len(v))
			if bytes.Equal(k, versionKey()) {
				version = bytes.Clone(v)
				return true, nil
			}
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
	if err != nil {
		return st, fmt.Errorf("copy: %w", err)
	}
	if version == nil {
		return st, errors.New("the source has no schema version: it is not a tapefs catalog")
	}
	if err := dst.Update(func(kv KVTxn) error { return kv.Put(versionKey(), version) }); err != nil {
		return st, fmt.Errorf("copy: write the schema version: %w", err)
	}
	return st, compareEngines(dst, src)
}

// compareEngines reads both engines in key order and reports the first
// difference.
func compareEngines(a, b Engine) error {
	type kv struct{ k, v []byte }
	read := func(e Engine, from []byte, n int) ([]kv, error) {
		var out []kv
		err := e.View(func(t KVTxn) error {
			return t.Scan(nil, from, false, func(k, v []byte) (bool, error) {
				if from != nil && bytes.Equal(k, from) {
					return true, nil
				}
				out = append(out, kv{bytes.Clone(k), bytes.Clone(v)})
				return len(out) < n, nil
			})
		})
		return out, err
	}
	var from []byte
	for {
		x, err := read(a, from, copyChunk)
		if err != nil {
			return err
		}
		y, err := read(b, from, copyChunk)
		if err != nil {
			return err
		}
		for i := range max(len(x), len(y)) {
			switch {
			case i >= len(x):
				return fmt.Errorf("verify: %s is missing from the copy", describeKey(y[i].k))
			case i >= len(y):
				return fmt.Errorf("verify: the copy has %s, which the source has not", describeKey(x[i].k))
			case !bytes.Equal(x[i].k, y[i].k) || !bytes.Equal(x[i].v, y[i].v):
				return fmt.Errorf("verify: the copy differs at %s", describeKey(y[i].k))
			}
		}
		if len(x) < copyChunk {
			return nil
		}
		from = x[len(x)-1].k
	}
}
