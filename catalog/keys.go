package catalog

import (
	"encoding/binary"
	"fmt"
)

// Key schema. Every key begins with one letter naming its table. <id> is a
// big-endian uint64 (8 bytes), so byte order is numeric order and a range
// of IDs is one scan. Workspace names, kinds and paths never contain NUL,
// so a NUL ends them and one name is never a prefix of another's keys.
// Records are JSON (record.go: exact bytes of names); index values are empty and only ever scanned.
//
//	V                                  schema version (uint64)
//	S<name>                            last ID handed out by sequence name:
//	                                   "batch", "file", "job", "event"
//	W<workspace>                       Workspace
//	B<batch>                           Batch
//	I<workspace>\x00<batch>            index: the batches of a workspace
//	F<file>                            File, without md5 and copies
//	M<file>                            the file's md5 and tape copies
//	                                   (filestore.go: why they are apart)
//	D<batch><parent><name>             directory entry -> file ID (8 bytes),
//	                                   type, removed flag, link owner;
//	                                   parent 0 is the batch's top level, so a
//	                                   directory is one prefix scan and a
//	                                   lookup is one Get
//	P<workspace>\x00<path>\x00<batch>  index: batches holding a regular file
//	                                   at path ("is this already archived?")
//	C<volser>                          CartridgeRecord
//	J<job>                             Job
//	K<kind>\x00<job>                   index: jobs by kind
//	j<batch><job>                      index: jobs by batch (purge, sync)
//	E<seq>                             Event
//	e<workspace>\x00<seq>              index: events by workspace
//	H<host>                            Host: a daemon's heartbeat
//	L<volser>                          CartridgeLease: which host writes it, epoch
//	R<role>                            Role: which host runs a once-per-archive loop, epoch
const (
	tableVersion      = 'V'
	tableSequence     = 'S'
	tableWorkspace    = 'W'
	tableBatch        = 'B'
	tableBatchByWS    = 'I'
	tableFile         = 'F'
	tableFileTape     = 'M'
	tableDirEntry     = 'D'
	tablePath         = 'P'
	tableCartridge    = 'C'
	tableJob          = 'J'
	tableJobByKind    = 'K'
	tableJobByBatch   = 'j'
	tableEvent        = 'E'
	tableEventByWS    = 'e'
	tableHost         = 'H'
	tableLease        = 'L'
	tableRole         = 'R'
	sequenceBatch     = "batch"
	sequenceFile      = "file"
	sequenceJob       = "job"
	sequenceEvent     = "event"
	idLen             = 8
	dirEntryPrefixLen = 1 + 2*idLen
)

// key builds a fresh key from its parts: a table letter, then strings
// (written as is), uint64s (8 bytes big-endian) and single bytes (NUL
// separators). Every key is a fresh slice of exact capacity, so a caller
// appending to one (Children's "just after this name") never writes into
// another.
func key(table byte, parts ...any) []byte {
	n := 1
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			n += len(p)
		case uint64:
			n += idLen
		case byte:
			n++
		}
	}
	k := make([]byte, 1, n)
	k[0] = table
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			k = append(k, p...)
		case uint64:
			k = binary.BigEndian.AppendUint64(k, p)
		case byte:
			k = append(k, p)
		default:
			panic(fmt.Sprintf("catalog: key part of type %T", p))
		}
	}
	return k
}

const sep byte = 0

func versionKey() []byte                { return []byte{tableVersion} }
func sequenceKey(name string) []byte    { return key(tableSequence, name) }
func workspaceKey(name string) []byte   { return key(tableWorkspace, name) }
func batchKey(id uint64) []byte         { return key(tableBatch, id) }
func fileKey(id uint64) []byte          { return key(tableFile, id) }
func cartridgeKey(volser string) []byte { return key(tableCartridge, volser) }
func jobKey(id uint64) []byte           { return key(tableJob, id) }
func eventKey(seq uint64) []byte        { return key(tableEvent, seq) }

func batchByWSKey(ws string, id uint64) []byte { return key(tableBatchByWS, ws, sep, id) }
func batchByWSPrefix(ws string) []byte         { return key(tableBatchByWS, ws, sep) }

func dirEntryKey(batch, parent uint64, name string) []byte {
	return key(tableDirEntry, batch, parent, name)
}
func dirEntryPrefix(batch, parent uint64) []byte { return key(tableDirEntry, batch, parent) }

func pathKey(ws, path string, batch uint64) []byte { return key(tablePath, ws, sep, path, sep, batch) }
func pathPrefix(ws, path string) []byte            { return key(tablePath, ws, sep, path, sep) }

func jobByKindKey(kind JobKind, id uint64) []byte { return key(tableJobByKind, string(kind), sep, id) }
func jobByKindPrefix(kind JobKind) []byte         { return key(tableJobByKind, string(kind), sep) }
func jobByBatchKey(batch, id uint64) []byte       { return key(tableJobByBatch, batch, id) }
func jobByBatchPrefix(batch uint64) []byte        { return key(tableJobByBatch, batch) }

func eventByWSKey(ws string, seq uint64) []byte { return key(tableEventByWS, ws, sep, seq) }
func eventByWSPrefix(ws string) []byte          { return key(tableEventByWS, ws, sep) }

// idSuffix reads the ID that ends an index key.
func idSuffix(k []byte) uint64 { return binary.BigEndian.Uint64(k[len(k)-idLen:]) }

func encodeID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// decodeID reads the ID stored as the value at k.
func decodeID(k, v []byte) (uint64, error) {
	if len(v) != idLen {
		return 0, fmt.Errorf("%s: corrupt ID of %d bytes", describeKey(k), len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// get decodes the record at k into v; found is false when k is absent.
func (tx *Tx) get(k []byte, v any) (found bool, err error) {
	data, err := tx.kv.Get(k)
	if err != nil || data == nil {
		return false, err
	}
	return true, unmarshal(k, data, v)
}

// multiGetter is implemented by a KVTxn that reads many keys in one
// request (a database engine); getMany falls back to one Get each.
type multiGetter interface {
	getMany(keys [][]byte) ([][]byte, error)
}

// getMany returns the values of keys (nil where absent), in their order.
func (tx *Tx) getMany(keys [][]byte) ([][]byte, error) {
	if m, ok := tx.kv.(multiGetter); ok && len(keys) > 1 {
		return m.getMany(keys)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		v, err := tx.kv.Get(k)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// unmarshal decodes the record data stored at k into v.
func unmarshal(k, data []byte, v any) error {
	if err := decodeRecord(data, v); err != nil {
		return fmt.Errorf("%s: corrupt record: %w", describeKey(k), err)
	}
	return nil
}

// describeKey names the record at a key, for error messages only (so the
// formatting is not paid on every read).
func describeKey(k []byte) string {
	if len(k) == 1+idLen {
		switch k[0] {
		case tableBatch:
			return fmt.Sprintf("batch %d", idSuffix(k))
		case tableFile:
			return fmt.Sprintf("file %d", idSuffix(k))
		case tableJob:
			return fmt.Sprintf("job %d", idSuffix(k))
		case tableEvent:
			return fmt.Sprintf("event %d", idSuffix(k))
		}
	}
	if len(k) > 0 {
		switch k[0] {
		case tableWorkspace:
			return "workspace " + string(k[1:])
		case tableCartridge:
			return "cartridge " + string(k[1:])
		case tableSequence:
			return "sequence " + string(k[1:])
		case tableDirEntry:
			if len(k) >= dirEntryPrefixLen {
				return fmt.Sprintf("batch %d: entry %q of directory %d",
					binary.BigEndian.Uint64(k[1:]), k[dirEntryPrefixLen:], binary.BigEndian.Uint64(k[1+idLen:]))
			}
		}
	}
	return fmt.Sprintf("key %q", k)
}

func (tx *Tx) put(k []byte, v any) error {
	data, err := encodeRecord(v)
	if err != nil {
		return err
	}
	return tx.kv.Put(k, data)
}

// allocate hands out n consecutive IDs from the named sequence and returns
// the first. IDs start at 1 so that 0 can mean "none".
func (tx *Tx) allocate(name string, n uint64) (uint64, error) {
	// The event sequence stays inside the transaction: that is what keeps
	// the event log gap-free in commit order (Events(after) never misses
	// one). The others may be handed out by the engine in a transaction
	// of their own, so that two registrations do not conflict on one hot
	// key; an ID of a transaction that then fails is skipped, never reused.
	if a, ok := tx.kv.(separateAllocator); ok && name != sequenceEvent {
		return a.allocateSeparately(sequenceKey(name), n)
	}
	last, err := tx.sequence(name)
	if err != nil {
		return 0, err
	}
	if err := tx.kv.Put(sequenceKey(name), encodeID(last+n)); err != nil {
		return 0, err
	}
	return last + 1, nil
}

// separateAllocator is implemented by a KVTxn whose engine can hand out a
// sequence's IDs in a short transaction of its own; it returns the first of
// n consecutive IDs.
type separateAllocator interface {
	allocateSeparately(key []byte, n uint64) (uint64, error)
	raiseSeparately(key []byte, id uint64) error // the sequence never hands out id again
}

// sequence is the last ID the named sequence handed out (0: none yet).
func (tx *Tx) sequence(name string) (uint64, error) {
	v, err := tx.kv.Get(sequenceKey(name))
	if err != nil || v == nil {
		return 0, err
	}
	return decodeID(sequenceKey(name), v)
}

// raiseSequence makes sure the named sequence never hands out id again,
// for records created with an ID of their caller's choosing.
func (tx *Tx) raiseSequence(name string, id uint64) error {
	if a, ok := tx.kv.(separateAllocator); ok && name != sequenceEvent {
		return a.raiseSeparately(sequenceKey(name), id)
	}
	last, err := tx.sequence(name)
	if err != nil || id <= last {
		return err
	}
	return tx.kv.Put(sequenceKey(name), encodeID(id))
}

// scanIDs calls fn with the ID ending each key under prefix, ascending from
// the key from (nil: the start). Writes must wait until the scan is over,
// so callers that delete collect first.
func (tx *Tx) scanIDs(prefix, from []byte, reverse bool, fn func(id uint64) (bool, error)) error {
	return tx.kv.Scan(prefix, from, reverse, func(k, _ []byte) (bool, error) {
		if len(k) < len(prefix)+idLen {
			return false, fmt.Errorf("corrupt index key %q", k)
		}
		return fn(idSuffix(k))
	})
}
