package catalog

// sequenceJournal is not a sequence of IDs but the event up to which the
// changes the tapes must know of (removals, undeletes, purges, workspace
// changes) have been written to tape. Kept under the sequence table so
// that it needs no schema change.
const sequenceJournal = "journal"

// JournalCursor is the last event whose change is on tape (0: none).
func (tx *Tx) JournalCursor() (uint64, error) { return tx.sequence(sequenceJournal) }

// SetJournalCursor records that every event up to seq is on tape. It is
// written in the caller's transaction (never separately), so it commits
// with whatever else recorded the tape write.
func (tx *Tx) SetJournalCursor(seq uint64) error {
	return tx.kv.Put(sequenceKey(sequenceJournal), encodeID(seq))
}
