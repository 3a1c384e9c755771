package archive

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// TestRejectedEntryListedOnce: an entry over the quota is listed as
// rejected with its reason in human units and when; sealing it again (the
// same refusal) adds no event; it counts as refused, not as settling; once
// removed from put/ it is forgotten.
func TestRejectedEntryListedOnce(t *testing.T) {
	// No settle timer: the entry is sealed only when the test says (the
	// timer's retry after a change is tested end to end, with touch).
	te := testSetup{Home: t.TempDir(), Settle: time.Hour, Quota: 10 << 20}.open(t)
	staging := te.StagingDir("ws")
	writeBigFile(t, filepath.Join(staging, "big", "a.dat"), 12<<20, 1)
	for i := 0; i < 3; i++ {
		if i > 0 {
			te.EntryChanged("ws", "big") // as a touch through the mount would
		}
		_, err := te.Seal(context.Background(), "ws", "big", 0, "")
		if err == nil || !strings.Contains(err.Error(), "quota") {
			t.Fatalf("seal %d of 12 MiB into a 10 MiB quota: %v", i, err)
		}
	}
	var rejections int
	te.cat.View(func(tx *catalog.Tx) error {
		evs, _ := tx.Events(0, 0, "ws")
		for _, ev := range evs {
			if ev.Kind == EvRejected {
				rejections++
				if !strings.Contains(ev.Message, "needs 12.0 MiB") || !strings.Contains(ev.Message, "10.0 MiB quota") {
					t.Errorf("event %q: want the sizes in human units", ev.Message)
				}
			}
		}
		return nil
	})
	if rejections != 1 {
		t.Errorf("%d rejected events for one entry refused for one cause, want 1", rejections)
	}
	ents := te.PutEntries(nil)
	if len(ents) != 1 || ents[0].State != EntryRejected || ents[0].Name != "big" || ents[0].Bytes != 12<<20 || ents[0].Since.IsZero() ||
		!strings.Contains(ents[0].Reason, "needs 12.0 MiB but workspace ws has 10.0 MiB of its 10.0 MiB quota left") || ents[0].Hint == "" {
		t.Fatalf("put/ entries: %+v", ents)
	}
	if st := te.Stats(); st.EntriesRefused != 1 || st.EntriesPending != 0 {
		t.Errorf("stats: %d refused, %d pending; want 1 refused, 0 settling", st.EntriesRefused, st.EntriesPending)
	}
	if err := os.RemoveAll(filepath.Join(staging, "big")); err != nil {
		t.Fatal(err)
	}
	te.scanStaging()
	if ents := te.PutEntries(nil); len(ents) != 0 {
		t.Errorf("after rm of the entry: %+v", ents)
	}
}
