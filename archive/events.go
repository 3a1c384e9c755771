package archive

import (
	"github.com/rs/zerolog"
	"github.com/tapefs/tapefs/catalog"
)

// Event kinds of the event log: every event is recorded with one of these.
const (
	EvWorkspace   = "workspace" // created, quota changed
	EvAggregate   = "aggregate" // a tape file written
	EvSealed      = "sealed"
	EvRejected    = "rejected"
	EvState       = "state"
	EvFailed      = "failed"
	EvRetry       = "retry"
	EvMD5Mismatch = "md5-mismatch"
	EvDeleted     = "deleted"
	EvUndeleted   = "undeleted"
	EvPurged      = "purged"
	EvMissing     = "missing-object"
	EvRecallError = "recall-failed"
	// EvRemoving: the first entry of a live batch was removed (hidden,
	// provisional); EvRemovalUndone: the hidden entries came back.
	EvRemoving      = "removing"
	EvRemovalUndone = "removal-undone"

	// Verification of tape copies (verifytape.go).
	EvTapeVerified = "tape-verified" // a cartridge read back (how many files, how many bad)
	EvTapeDamaged  = "tape-damaged"  // one copy on tape does not read or does not match its md5

	// The disk cache (integrity.go).
	EvDamaged = "damaged-object" // a cached object does not hash to its md5

	// Copies and cartridges (copies.go).
	EvCopies    = "copies"    // a batch has the copies its policy asks for again, or cannot
	EvCartridge = "cartridge" // root changed a cartridge's pool or state

	// Repack and repair (repack.go, failover.go).
	EvRepack       = "repack"        // a repack queued, or finished (the cartridge is scratch)
	EvRepackFailed = "repack-failed" // a repack step failed; retried
	EvCopyBad      = "copy-bad"      // a copy read back wrong: the read went on from another copy
	EvCopyRepaired = "copy-repaired" // a bad copy was rewritten elsewhere

	// The catalog's own records on tape and its rebuild (journal.go,
	// snapshot.go, rebuild.go).
	EvJournal  = "journal"  // catalog changes written to a cartridge's journal
	EvSnapshot = "snapshot" // a catalog snapshot taken (and written to tape)
	EvRebuild  = "rebuild"  // the catalog was rebuilt from the library
)

// unrecorded logs a catalog write that failed where failing the caller
// would help no one (an event, a retry's backoff, a finished job): what
// was not recorded is said in the log instead of vanishing. At shutdown
// the catalog may be closing: restart recovery redoes those writes.
func (e *Engine) unrecorded(err error, what string, fields func(*zerolog.Event) *zerolog.Event) {
	if err == nil {
		return
	}
	l := e.log.Error().Err(err)
	if fields != nil {
		l = fields(l)
	}
	l.Msg("could not record " + what)
}

// pendingLog collects log lines to emit after the transaction that
// recorded their events has committed: a log line never announces a change
// the catalog does not hold.
type pendingLog []catalog.Event

// record appends ev to the event log inside tx and remembers it for the log.
func (p *pendingLog) record(tx *catalog.Tx, ev catalog.Event) error {
	ev, err := tx.AppendEvent(ev)
	if err != nil {
		return err
	}
	*p = append(*p, ev)
	return nil
}

func (p pendingLog) emit(log zerolog.Logger) {
	for _, ev := range p {
		var l *zerolog.Event
		switch ev.Kind {
		case EvFailed, EvMD5Mismatch, EvMissing, EvRecallError, EvDamaged, EvTapeDamaged, EvCopyBad:
			l = log.Error()
		case EvRejected, EvRetry, EvRemovalUndone, EvRepackFailed:
			l = log.Warn()
		default:
			l = log.Info()
		}
		l = l.Str("event", ev.Kind).Uint64("seq", ev.Seq)
		if ev.Workspace != "" {
			l = l.Str("workspace", ev.Workspace)
		}
		if ev.Batch != 0 {
			l = l.Uint64("batch", ev.Batch)
		}
		if ev.VOLSER != "" {
			l = l.Str("volser", ev.VOLSER)
		}
		if ev.State != "" {
			l = l.Str("state", string(ev.State))
		}
		l.Msg(ev.Message)
	}
}

// update runs fn in one catalog transaction; the events it records are
// logged once it has committed, and waiters on batch states are woken.
func (e *Engine) update(fn func(tx *catalog.Tx, log *pendingLog) error) error {
	var pl pendingLog
	err := e.cat.Update(func(tx *catalog.Tx) error {
		pl = pl[:0]
		return fn(tx, &pl)
	})
	if err != nil {
		return err
	}
	e.publishCommitted(pl)
	return nil
}
