package web

import (
	"github.com/tapefs/tapefs/archive"
	"maps"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// TestAggregateFollowsChanges: the aggregate kept up from the event log
// equals a fresh count after every kind of change.
func TestAggregateFollowsChanges(t *testing.T) {
	te := newTestEnv(t, Options{})
	g := te.s.agg
	check := func(step string) {
		t.Helper()
		got, err := g.get()
		if err != nil {
			t.Fatal(err)
		}
		fresh := newAggregator(te.e.Surface(), time.Now)
		want, err := fresh.get()
		if err != nil {
			t.Fatal(err)
		}
		// Zero tallies may be left where a batch was; compare without them.
		if !sameTallies(got.byState, want.byState) {
			t.Errorf("%s: by state %v, a fresh count says %v", step, got.byState, want.byState)
		}
		for ws := range want.byWS {
			if !sameTallies(got.byWS[ws], want.byWS[ws]) {
				t.Errorf("%s: %s: %v, a fresh count says %v", step, ws, got.byWS[ws], want.byWS[ws])
			}
		}
		if got.seq != want.seq {
			t.Errorf("%s: at event %d, the log is at %d", step, got.seq, want.seq)
		}
	}
	check("empty")
	b := te.put("gws", "one", "", map[string]string{"f": "hello"})
	check("sealed")
	te.wait(b.ID)
	check("synced")
	r, err := te.e.Reserve("gws", "", 1000, 123)
	if err != nil {
		t.Fatal(err)
	}
	check("reserved")
	if _, err := te.e.Remove(b.ID); err != nil {
		t.Fatal(err)
	}
	check("removed")
	if _, err := te.e.Undelete(b.ID); err != nil {
		t.Fatal(err)
	}
	check("undeleted")
	if err := te.e.CreateWorkspace(catalog.Workspace{Name: "new"}); err != nil {
		t.Fatal(err)
	}
	check("new workspace")
	if a, _ := g.get(); a.byWS["new"] == nil {
		t.Error("a new workspace is not in the aggregate")
	}
	// A purge: the batch record goes, its events stay.
	if err := te.cat.Update(func(tx *catalog.Tx) error {
		if err := tx.PurgeBatch(r.ID); err != nil {
			return err
		}
		_, err := tx.AppendEvent(catalog.Event{Time: time.Now(), Workspace: "gws", Batch: r.ID, Kind: "purged", Message: "purged"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	check("purged")

	// Too many events to follow: counted again.
	g.maxDelta = 1
	b2 := te.put("gws", "two", "", map[string]string{"f": "x"})
	te.wait(b2.ID)
	check("recounted")
}

func sameTallies(a, b map[archive.BatchState]tally) bool {
	nz := func(m map[archive.BatchState]tally) map[archive.BatchState]tally {
		out := map[archive.BatchState]tally{}
		for k, v := range m {
			if v != (tally{}) {
				out[k] = v
			}
		}
		return out
	}
	return maps.Equal(nz(a), nz(b))
}
