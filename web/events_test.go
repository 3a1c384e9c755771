package web

import (
	"fmt"
	"github.com/tapefs/tapefs/archive"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

func TestBatchEvents(t *testing.T) {
	te := newTestEnv(t, Options{})
	cat := te.cat
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var target catalog.Batch
	// 300 events of other batches, then batch X sealed, 300 more, X's
	// state change, 300 more, X deleted; one event a second.
	err := cat.Update(func(tx *catalog.Tx) error {
		n := 0
		ev := func(batch uint64, kind string) error {
			n++
			_, err := tx.AppendEvent(catalog.Event{Time: t0.Add(time.Duration(n) * time.Second), Workspace: "gws", Batch: batch, Kind: kind, Message: fmt.Sprint(kind, " ", n)})
			return err
		}
		for i := 0; i < 300; i++ {
			if err := ev(999, "state"); err != nil {
				return err
			}
		}
		var err error
		target, _, err = tx.RegisterBatch(catalog.Batch{Workspace: "gws", State: catalog.Cached, Created: t0.Add(301 * time.Second)}, nil)
		if err != nil {
			return err
		}
		for _, kind := range []string{"sealed", "filler", "state", "filler", "deleted"} {
			if kind == "filler" {
				for i := 0; i < 300; i++ {
					if err := ev(999, "state"); err != nil {
						return err
					}
				}
				continue
			}
			if err := ev(target.ID, kind); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	kinds := func(evs []archive.Event) string {
		s := ""
		for _, e := range evs {
			s += e.Kind + " "
		}
		return s
	}
	var tb archive.Batch
	err = te.e.Surface().Read(archive.Anonymous(), func(tx archive.Snapshot) error {
		var err error
		tb, err = tx.Batch(target.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = te.e.Surface().Read(archive.Anonymous(), func(tx archive.Snapshot) error {
		last, _ := tx.LastEvent()
		at, err := eventAt(tx, last, t0.Add(150*time.Second))
		if err != nil {
			return err
		}
		evs, _ := tx.Events(at-1, 1, "")
		if len(evs) == 0 || evs[0].Time.Before(t0.Add(150*time.Second)) || evs[0].Time.After(t0.Add(151*time.Second)) {
			t.Errorf("eventAt: seq %d, %+v", at, evs)
		}
		// A budget that covers everything since the batch began.
		evs, gap, err := batchEvents(tx, tb, 5000)
		if err != nil {
			return err
		}
		if got := kinds(evs); got != "sealed state deleted " || gap {
			t.Errorf("batch events: %q, gap %v", got, gap)
		}
		// A small budget: the first and the newest, and a gap between.
		evs, gap, err = batchEvents(tx, tb, 100)
		if err != nil {
			return err
		}
		if got := kinds(evs); got != "sealed deleted " || !gap {
			t.Errorf("batch events with a small budget: %q, gap %v", got, gap)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
