package web

import (
	"slices"
	"time"

	"github.com/tapefs/tapefs/archive"
)

// failureKinds are the events shown in red and listed first.
var failureKinds = []string{archive.EvFailed, archive.EvMD5Mismatch, archive.EvRecallError, archive.EvMissing, archive.EvRejected,
	archive.EvTapeDamaged, archive.EvCopyBad, archive.EvDamaged, archive.EvRepackFailed}

// feedKinds are the events that make an entry of the feed: every batch
// state change and every failure.
var feedKinds = []string{
	archive.EvSealed, archive.EvState, archive.EvFailed, archive.EvRetry, archive.EvRejected,
	archive.EvDeleted, archive.EvUndeleted, archive.EvPurged, archive.EvRemoving, archive.EvRemovalUndone,
	archive.EvMD5Mismatch, archive.EvRecallError, archive.EvMissing,
	archive.EvTapeDamaged, archive.EvCopyBad, archive.EvCopyRepaired, archive.EvDamaged, archive.EvRepackFailed,
}

func isFailure(kind string) bool { return slices.Contains(failureKinds, kind) }

// eventQuery asks for the newest events.
type eventQuery struct {
	workspace string                   // "" = every workspace
	want      int                      // how many matching events, at most
	keep      func(archive.Event) bool // nil = every event
	// since stops the search at events older than this (zero: no stop).
	since time.Time
	// budget is the widest window, in sequence numbers, searched.
	budget uint64
}

// latestEvents returns the newest events matching q, newest first, and
// whether the search stopped at its budget before finding q.want of them.
//
// The catalog lists events oldest first after a sequence number (through
// a workspace's index, with q.workspace). To find the newest without
// reading the whole log, look at a window of the last n sequence numbers
// and double it until enough match: the events read add up to less than
// twice the final window's.
func latestEvents(tx archive.Snapshot, q eventQuery) ([]archive.Event, bool, error) {
	last, err := tx.LastEvent()
	if err != nil || last == 0 {
		return nil, false, err
	}
	window := uint64(max(2*q.want, 64))
	for {
		window = min(window, q.budget, last)
		lo := last - window
		evs, err := tx.Events(lo, 0, q.workspace)
		if err != nil {
			return nil, false, err
		}
		var out []archive.Event
		for i := len(evs) - 1; i >= 0 && len(out) < q.want; i-- {
			if q.keep == nil || q.keep(evs[i]) {
				out = append(out, evs[i])
			}
		}
		switch {
		case len(out) >= q.want, lo == 0:
			return out, false, nil
		case !q.since.IsZero() && len(evs) > 0 && evs[0].Time.Before(q.since):
			return out, false, nil
		case window >= q.budget:
			return out, true, nil
		}
		window *= 2
	}
}

// eventAt returns the first sequence number whose event is at or after t,
// by binary search over the log (event times grow with their sequence
// numbers, give or take a clock step: callers leave a margin); last+1 if
// none is.
func eventAt(tx archive.Snapshot, last uint64, t time.Time) (uint64, error) {
	lo, hi := uint64(1), last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		evs, err := tx.Events(mid-1, 1, "")
		if err != nil {
			return 0, err
		}
		if len(evs) == 0 || !evs[0].Time.Before(t) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// batchEvents finds the events of batch b, oldest first, without an
// index by batch: from where the log reaches the batch's creation, it
// reads the workspace's events forward (at most budget of them), and, if
// that does not reach the end of the log, the newest ones too. gap
// reports that events between the two were not read.
func batchEvents(tx archive.Snapshot, b archive.Batch, budget int) (evs []archive.Event, gap bool, err error) {
	last, err := tx.LastEvent()
	if err != nil || last == 0 {
		return nil, false, err
	}
	start, err := eventAt(tx, last, b.Created.Add(-time.Minute))
	if err != nil {
		return nil, false, err
	}
	fwd, err := tx.Events(start-1, budget, b.Workspace)
	if err != nil {
		return nil, false, err
	}
	for _, ev := range fwd {
		if ev.Batch == b.ID {
			evs = append(evs, ev)
		}
	}
	if len(fwd) < budget {
		return evs, false, nil
	}
	reached := fwd[len(fwd)-1].Seq
	recent, _, err := latestEvents(tx, eventQuery{workspace: b.Workspace, want: 100, budget: uint64(budget),
		keep: func(ev archive.Event) bool { return ev.Batch == b.ID && ev.Seq > reached }})
	if err != nil {
		return nil, false, err
	}
	slices.Reverse(recent)
	// The newest window met the forward read unless the forward read
	// ended further back than the window can reach (or it stopped at 100
	// events).
	gap = last-reached > uint64(budget) || len(recent) == 100
	return append(evs, recent...), gap, nil
}
