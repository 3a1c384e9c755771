package catalog

import (
	"fmt"
	"math"
)

// AppendEvent adds e to the log under the next sequence number and returns
// it.
func (tx *Tx) AppendEvent(e Event) (Event, error) {
	seq, err := tx.allocate(sequenceEvent, 1)
	if err != nil {
		return Event{}, err
	}
	e.Seq = seq
	if e.Origin == "" {
		e.Origin = tx.origin
	}
	if err := tx.put(eventKey(seq), &e); err != nil {
		return Event{}, err
	}
	if e.Workspace != "" {
		if err := tx.kv.Put(eventByWSKey(e.Workspace, seq), nil); err != nil {
			return Event{}, err
		}
	}
	return e, nil
}

// Events returns events with sequence numbers greater than after, oldest
// first, at most limit (0 = all), of one workspace ("" = all; the
// workspace's index is read, so a quiet workspace is cheap to follow).
func (tx *Tx) Events(after uint64, limit int, workspace string) ([]Event, error) {
	if after == math.MaxUint64 {
		return nil, nil
	}
	var out []Event
	more := func() bool { return limit <= 0 || len(out) < limit }
	if workspace == "" {
		err := tx.kv.Scan([]byte{tableEvent}, eventKey(after+1), false, func(k, v []byte) (bool, error) {
			var e Event
			if err := unmarshal(k, v, &e); err != nil {
				return false, err
			}
			out = append(out, e)
			return more(), nil
		})
		return out, err
	}
	err := tx.scanIDs(eventByWSPrefix(workspace), eventByWSKey(workspace, after+1), false, func(seq uint64) (bool, error) {
		var e Event
		found, err := tx.get(eventKey(seq), &e)
		if err == nil && !found {
			err = fmt.Errorf("event %d is indexed but missing: %w", seq, ErrNotFound)
		}
		if err != nil {
			return false, err
		}
		out = append(out, e)
		return more(), nil
	})
	return out, err
}

// LastEvent is the sequence number of the newest event (0: none yet), so a
// follower can start from now.
func (tx *Tx) LastEvent() (uint64, error) { return tx.sequence(sequenceEvent) }
