package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tapefs/tapefs/archive"
	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/enginetest"
)

// BenchmarkPages renders the pages over a catalog of 100,000 batches (3
// workspaces, 2 entries and 2 events each; 1 in 1,000 FAILED) on bbolt:
//
//	go test -run XXX -bench Pages -benchtime 200x ./web/
//
// overview is the steady state (batch counts cached); count is the
// whole-catalog count behind them, redone at most every few seconds while
// batches change.
func BenchmarkPages(b *testing.B) {
	const batches = 100_000
	home := enginetest.Open(b, enginetest.Options{Drives: 2, Cartridges: 20, Capacity: 1 << 40, CacheLimit: 1 << 40, NoStart: true,
		Config: func(c *archive.Config) { c.Settle, c.FlushAge, c.RecallLinger = 0, 0, 0 }})
	e, cat := home.Engine, home.Catalog

	start := time.Now()
	wss := []string{"atlas", "cms", "lhcb"}
	for _, ws := range wss {
		if err := e.CreateWorkspace(catalog.Workspace{Name: ws}); err != nil {
			b.Fatal(err)
		}
	}
	const perTx = 5000
	// One batch sealed a minute, in the past: event times grow with
	// their sequence numbers, as they do in a real log.
	t0 := time.Now().Add(-batches * time.Minute)
	for i := 0; i < batches; i += perTx {
		err := cat.Update(func(tx *catalog.Tx) error {
			for j := i; j < i+perTx; j++ {
				ws := wss[j%len(wss)]
				st := catalog.Synced
				switch {
				case j%1000 == 999:
					st = catalog.Failed
				case j%10 == 0:
					st = catalog.CachedSynced
				}
				entry := fmt.Sprintf("run%06d", j)
				now := t0.Add(time.Duration(j) * time.Minute)
				bt, _, err := tx.RegisterBatch(catalog.Batch{Workspace: ws, Entry: entry, State: st, Created: now, Synced: now, Bytes: 1 << 30, OnTape: 1 << 30},
					[]catalog.File{{Path: entry, Type: catalog.TypeDir, Mode: 0o755},
						{Path: entry + "/data.raw", Type: catalog.TypeFile, Mode: 0o644, Size: 1 << 30, MD5: "8f14e45fceea167a5a36dedd4bea2543",
							Copies: []catalog.Copy{{VOLSER: "TF0001", TapeFile: j + 1, Length: 1 << 30}}}})
				if err != nil {
					return err
				}
				for _, ev := range []catalog.Event{
					{Time: now, Workspace: ws, Batch: bt.ID, Kind: archive.EvSealed, State: catalog.Cached, Message: "sealed"},
					{Time: now, Workspace: ws, Batch: bt.ID, Kind: archive.EvState, State: st, Message: "on tape"},
				} {
					if _, err := tx.AppendEvent(ev); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("catalog of %d batches built in %s", batches, time.Since(start).Round(time.Millisecond))

	s := New(e.Surface(), Options{})
	defer s.Close()
	h := s.Handler()
	if _, err := s.agg.get(); err != nil { // waits for the first count
		b.Fatal(err)
	}
	page := func(path string) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("GET %s: %d", path, w.Code)
				}
				io.Copy(io.Discard, w.Body)
			}
		}
	}
	b.Run("overview", page("/"))
	b.Run("count", func(b *testing.B) {
		for b.Loop() {
			g := newAggregator(e.Surface(), time.Now)
			if _, err := g.get(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("batches", page("/batches"))
	b.Run("batches-ws-page-100", page("/batches?workspace=cms&after=150000"))
	b.Run("batches-failed", page("/batches?state=FAILED"))
	b.Run("batch", page("/batches/50000"))
	b.Run("feed", page("/feed.atom"))
	b.Run("feed-ws", page("/feed.atom?workspace=lhcb"))
	b.Run("metrics", page("/metrics"))
}
