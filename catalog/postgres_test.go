package catalog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tapefs/tapefs/internal/pgtest"
)

// One throwaway PostgreSQL server for the package's tests; each test gets
// its own database on it.
var (
	pgOnce   sync.Once
	pgServer *pgtest.Server
	pgErr    error
	pgSeq    atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pgServer != nil {
		pgServer.Stop()
	}
	os.Exit(code)
}

// newPostgresEngine opens the engine on a fresh database.
func newPostgresEngine(t testing.TB) Engine {
	t.Helper()
	eng, _ := newPostgresEngineURL(t)
	return eng
}

// newPostgresEngineURL is newPostgresEngine, with the database's URL.
func newPostgresEngineURL(t testing.TB) (Engine, string) {
	t.Helper()
	pgOnce.Do(func() { pgServer, pgErr = pgtest.StartShared() })
	if pgErr != nil {
		t.Fatalf("PostgreSQL: %v", pgErr)
	}
	url := pgServer.CreateDB(t, fmt.Sprintf("cat%d", pgSeq.Add(1)))
	eng, err := OpenPostgresEngine(url, PostgresOptions{TxTimeout: 20 * time.Second, Retry: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng, url
}

func TestEnginePostgres(t *testing.T) {
	testEngine(t, func() Engine { return newPostgresEngine(t) })
}

func TestCatalogPostgres(t *testing.T) {
	testCatalog(t, func() *Catalog {
		c, err := New(newPostgresEngine(t))
		if err != nil {
			panic(err)
		}
		return c
	})
}

// TestPostgresSerializationRetry races Updates that read and increment one
// key: PostgreSQL fails all but one of each conflicting round with a
// serialization error, the engine runs the losers' closures again, and no
// increment is lost.
func TestPostgresSerializationRetry(t *testing.T) {
	eng := newPostgresEngine(t)
	const workers, rounds = 4, 10
	var runs atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				err := eng.Update(func(kv KVTxn) error {
					runs.Add(1)
					v, err := kv.Get([]byte("counter"))
					if err != nil {
						return err
					}
					n := 0
					if v != nil {
						fmt.Sscan(string(v), &n)
					}
					time.Sleep(2 * time.Millisecond) // widen the race
					return kv.Put([]byte("counter"), []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var got string
	if err := eng.View(func(kv KVTxn) error {
		v, err := kv.Get([]byte("counter"))
		got = string(v)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got != fmt.Sprint(workers*rounds) {
		t.Errorf("counter = %s after %d increments", got, workers*rounds)
	}
	if runs.Load() <= workers*rounds {
		t.Errorf("closures ran %d times for %d increments: no conflict was retried, the test proves nothing", runs.Load(), workers*rounds)
	}
	t.Logf("%d closure runs for %d increments", runs.Load(), workers*rounds)
}

// TestPostgresClosureErrorNotRetried: an error of the caller's own is
// returned as is, the transaction rolled back, the closure run once.
func TestPostgresClosureErrorNotRetried(t *testing.T) {
	eng := newPostgresEngine(t)
	mine := errors.New("mine")
	runs := 0
	err := eng.Update(func(kv KVTxn) error {
		runs++
		if err := kv.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		return mine
	})
	if !errors.Is(err, mine) || runs != 1 {
		t.Fatalf("err %v after %d runs; want %v after 1", err, runs, mine)
	}
	eng.View(func(kv KVTxn) error {
		if v, _ := kv.Get([]byte("k")); v != nil {
			t.Errorf("write of a failed Update is visible: %q", v)
		}
		return nil
	})
}

// TestPostgresLargeTransaction: writes past the COPY threshold, mixed with
// deletes and overwrites of keys written earlier in the same transaction,
// and scans that must see them.
func TestPostgresLargeTransaction(t *testing.T) {
	eng := newPostgresEngine(t)
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }
	if err := eng.Update(func(kv KVTxn) error {
		for i := 0; i < 5000; i++ {
			if err := kv.Put(key(i), []byte("a")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Update(func(kv KVTxn) error {
		for i := 0; i < 5000; i += 2 {
			if err := kv.Delete(key(i)); err != nil {
				return err
			}
		}
		for i := 5000; i < 6000; i++ {
			if err := kv.Put(key(i), []byte("b")); err != nil {
				return err
			}
		}
		n := 0
		err := kv.Scan([]byte("k"), nil, false, func(k, v []byte) (bool, error) { n++; return true, nil })
		if n != 2500+1000 {
			t.Errorf("scan inside the transaction saw %d keys, want 3500", n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	n, last := 0, ""
	eng.View(func(kv KVTxn) error {
		return kv.Scan([]byte("k"), nil, true, func(k, v []byte) (bool, error) {
			if n == 0 {
				last = string(k)
			}
			n++
			return true, nil
		})
	})
	if n != 3500 || last != "k005999" {
		t.Errorf("after commit: %d keys, last %q; want 3500, k005999", n, last)
	}
}

// TestPostgresUnavailable: with the server stopped, an Update fails with
// ErrCatalogUnavailable after the retry period instead of hanging, and
// works again once the server is back.
func TestPostgresUnavailable(t *testing.T) {
	srv, err := pgtest.StartShared()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	eng, err := OpenPostgresEngine(srv.CreateDB(t, "away"), PostgresOptions{TxTimeout: 5 * time.Second, Retry: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	put := func(v string) error {
		return eng.Update(func(kv KVTxn) error { return kv.Put([]byte("k"), []byte(v)) })
	}
	if err := put("1"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = put("2")
	if !errors.Is(err, ErrCatalogUnavailable) {
		t.Errorf("Update with the server away: %v, want ErrCatalogUnavailable", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("Update with the server away took %s", d)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := put("3"); err != nil {
		t.Fatalf("Update after the server came back: %v", err)
	}
	eng.View(func(kv KVTxn) error {
		if v, _ := kv.Get([]byte("k")); string(v) != "3" {
			t.Errorf("k = %q, want 3", v)
		}
		return nil
	})
}

// TestPostgresRegisterLarge: RegisterBatch of 100,000 files (~300,000
// writes) in one transaction, sent with COPY.
func TestPostgresRegisterLarge(t *testing.T) {
	c, err := New(newPostgresEngine(t))
	if err != nil {
		t.Fatal(err)
	}
	addWorkspace(t, c, "ws")
	files := bigBatch("big", 100_000, 1000)
	start := time.Now()
	update(t, c, func(tx *Tx) error {
		_, _, err := tx.RegisterBatch(Batch{Workspace: "ws", State: Cached, Bytes: 100_000 << 20}, files)
		return err
	})
	t.Logf("RegisterBatch of %d files on PostgreSQL: %s", len(files), time.Since(start))
	view(t, c, func(tx *Tx) error {
		d, err := tx.Lookup(1, 1, "d0050")
		if err != nil {
			return err
		}
		ch, err := tx.Children(1, d.ID, "", 3)
		if err != nil || len(ch) != 3 {
			t.Errorf("children of d0050: %+v, %v", ch, err)
		}
		return err
	})
}

// TestPostgresConcurrentRegistrations: registrations racing from several
// goroutines (as from several hosts) all succeed with distinct batch and
// file IDs, and events appended meanwhile are read back gap-free, in
// order, by a reader following Events(after) as the feed does.
func TestPostgresConcurrentRegistrations(t *testing.T) {
	c, err := New(newPostgresEngine(t))
	if err != nil {
		t.Fatal(err)
	}
	addWorkspace(t, c, "ws")
	const workers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	stop := make(chan struct{})
	seen := make(chan []uint64, 1)
	go func() { // the feed
		var got []uint64
		var after uint64
		for {
			select {
			case <-stop:
				// One last read after every writer is done.
			default:
			}
			var evs []Event
			c.View(func(tx *Tx) error { evs, err = tx.Events(after, 0, ""); return err })
			for _, e := range evs {
				got = append(got, e.Seq)
				after = e.Seq
			}
			select {
			case <-stop:
				c.View(func(tx *Tx) error { evs, err = tx.Events(after, 0, ""); return err })
				for _, e := range evs {
					got = append(got, e.Seq)
				}
				seen <- got
				return
			default:
				time.Sleep(time.Millisecond)
			}
		}
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				files := bigBatch(fmt.Sprintf("w%d-%d", w, i), 200, 50)
				err := c.Update(func(tx *Tx) error {
					b, _, err := tx.RegisterBatch(Batch{Workspace: "ws", State: Cached, Bytes: 200}, files)
					if err != nil {
						return err
					}
					_, err = tx.AppendEvent(Event{Kind: "sealed", Workspace: "ws", Batch: b.ID})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := <-seen
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("the feed read events %v: a gap or a reordering at %d", got, i)
		}
	}
	if len(got) != workers*each {
		t.Errorf("the feed read %d events, want %d", len(got), workers*each)
	}
	// Batch IDs are distinct (a retried closure takes new ones: gaps are
	// allowed, duplicates are not), and every registered batch is whole.
	var n int
	c.View(func(tx *Tx) error {
		bs, err := tx.Batches(ListOptions{Workspace: "ws"})
		for _, b := range bs {
			n++
			if b.Files != int64(len(bigBatch("x", 200, 50))) {
				t.Errorf("batch %d has %d files", b.ID, b.Files)
			}
		}
		return err
	})
	if n != workers*each {
		t.Errorf("%d batches registered, want %d", n, workers*each)
	}
}

// TestCopyBoltToPostgres: a bbolt catalog with batches, files and events
// copied into an empty database reads back identical; a second copy is
// refused; an interrupted copy is refused by New and cleared by the next.
func TestCopyBoltToPostgres(t *testing.T) {
	src, err := Open(t.TempDir() + "/catalog.db")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	addWorkspace(t, src, "ws")
	for i := 0; i < 3; i++ {
		files := bigBatch(fmt.Sprintf("run%d", i), 3000, 100)
		update(t, src, func(tx *Tx) error {
			b, _, err := tx.RegisterBatch(Batch{Workspace: "ws", State: Cached, Bytes: 3000}, files)
			if err != nil {
				return err
			}
			_, err = tx.AppendEvent(Event{Kind: "sealed", Workspace: "ws", Batch: b.ID})
			return err
		})
	}
	dst := newPostgresEngine(t)
	// An interrupted copy: records, no version.
	if err := dst.Update(func(kv KVTxn) error { return kv.Put([]byte("Bjunk"), []byte("{}")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := New(dst); err == nil {
		t.Fatal("New accepted a store with records and no schema version")
	}
	st, err := CopyEngine(dst, src.eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cleared != 1 || st.Keys < 3*3000*2 {
		t.Errorf("copy stats %+v", st)
	}
	c, err := New(dst)
	if err != nil {
		t.Fatal(err)
	}
	var want, got []Batch
	view(t, src, func(tx *Tx) error { want, err = tx.Batches(ListOptions{}); return err })
	view(t, c, func(tx *Tx) error { got, err = tx.Batches(ListOptions{}); return err })
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("batches differ:\n%v\n%v", want, got)
	}
	if _, err := CopyEngine(dst, src.eng, nil); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("second copy: %v, want ErrNotEmpty", err)
	}
}

// TestPostgresNewerSchemaRefused: a database stamped by a newer tapefs is
// refused, untouched.
func TestPostgresNewerSchemaRefused(t *testing.T) {
	eng := newPostgresEngine(t)
	newer := encodeID(SchemaVersion + 1)
	if err := eng.Update(func(kv KVTxn) error { return kv.Put(versionKey(), newer) }); err != nil {
		t.Fatal(err)
	}
	_, err := New(eng)
	if err == nil || !strings.Contains(err.Error(), "upgrade tapefs") {
		t.Fatalf("New on a newer catalog: %v", err)
	}
	eng.View(func(kv KVTxn) error {
		if v, _ := kv.Get(versionKey()); !bytes.Equal(v, newer) {
			t.Errorf("version key now %x", v)
		}
		return nil
	})
}

// TestPostgresUpgradeWaitsForHosts: a schema 1 catalog on PostgreSQL is
// not upgraded while a daemon (of the older tapefs) is running on it; once
// it has stopped, the upgrade runs.
func TestPostgresUpgradeWaitsForHosts(t *testing.T) {
	eng := newPostgresEngine(t)
	files := schema1Files(5)
	writeSchema1(t, eng, files)
	c1 := &Catalog{eng: eng}
	update(t, c1, func(tx *Tx) error {
		now, err := tx.Now()
		if err != nil {
			return err
		}
		return tx.PutHost(Host{ID: "old-node", Started: now, Heartbeat: now, Expires: now.Add(time.Hour)})
	})
	_, err := New(eng)
	if err == nil || !strings.Contains(err.Error(), "hosts old-node are running") || !strings.Contains(err.Error(), "stop every tapefs daemon") {
		t.Fatalf("New with a live host of schema 1: %v", err)
	}
	if v := rawKey(t, c1, versionKey()); !bytes.Equal(v, encodeID(1)) {
		t.Errorf("version after a refused upgrade: %x", v)
	}
	if v := rawKey(t, c1, dirEntryKey(1, 1, files[2].Name)); len(v) != idLen {
		t.Errorf("a refused upgrade rewrote a directory entry: %x", v)
	}
	update(t, c1, func(tx *Tx) error {
		h, err := tx.Host("old-node")
		h.Stopped = true
		return errors.Join(err, tx.PutHost(h))
	})
	c, err := New(eng)
	if err != nil {
		t.Fatalf("New after the host stopped: %v", err)
	}
	view(t, c, func(tx *Tx) error {
		f, err := tx.File(3)
		if err != nil || !reflect.DeepEqual(f, files[2]) {
			t.Errorf("file 3 after the upgrade: %+v, %v; want %+v", f, err, files[2])
		}
		return err
	})
}

// TestPostgresLargeTxnOverwrites: a transaction large enough for the COPY
// path writes keys that exist without reading them (a blind Put: the plain
// INSERT meets a unique violation and the upsert takes over), keys it read
// first (updated), new keys and deletes; every one ends as written.
func TestPostgresLargeTxnOverwrites(t *testing.T) {
	eng := newPostgresEngine(t)
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%06d", i)) }
	if err := eng.Update(func(kv KVTxn) error {
		for i := 0; i < 100; i++ {
			if err := kv.Put(key(i), []byte("old")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for round, blind := range []bool{true, false} {
		if err := eng.Update(func(kv KVTxn) error {
			if !blind {
				for i := 0; i < 50; i++ {
					if _, err := kv.Get(key(i)); err != nil {
						return err
					}
				}
			}
			// Out of order too: 50..99 exist, 0..49 exist, then new keys.
			for _, i := range append(rangeInts(50, 100), rangeInts(0, 50)...) {
				if i%10 == 0 {
					if err := kv.Delete(key(i)); err != nil {
						return err
					}
					continue
				}
				if err := kv.Put(key(i), []byte(fmt.Sprint("new", round))); err != nil {
					return err
				}
			}
			for i := 1000; i < 1000+2*pgCopyThreshold; i++ {
				if err := kv.Put(key(i+round*10000), []byte("fresh")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatalf("round %d (blind %v): %v", round, blind, err)
		}
		if err := eng.View(func(kv KVTxn) error {
			for i := 0; i < 100; i++ {
				v, err := kv.Get(key(i))
				if err != nil {
					return err
				}
				want := fmt.Sprint("new", round)
				if i%10 == 0 {
					want = ""
				}
				if string(v) != want || (want == "" && v != nil) {
					t.Errorf("round %d: key %d = %q, want %q", round, i, v, want)
				}
			}
			v, err := kv.Get(key(1000 + round*10000))
			if string(v) != "fresh" {
				t.Errorf("round %d: new key = %q (%v)", round, v, err)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// The deleted keys come back for the next round.
		if err := eng.Update(func(kv KVTxn) error {
			for i := 0; i < 100; i += 10 {
				if err := kv.Put(key(i), []byte("old")); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func rangeInts(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestPostgresAllocateWithPoolFull: as many Updates as the pool has
// connections each hold one (they have read) and then allocate IDs, which
// take a connection of their own. Allocations come from a pool of their
// own, so the Updates finish at once instead of waiting for one another
// until TxTimeout, and every ID is handed out once.
func TestPostgresAllocateWithPoolFull(t *testing.T) {
	pgOnce.Do(func() { pgServer, pgErr = pgtest.StartShared() })
	if pgErr != nil {
		t.Fatalf("PostgreSQL: %v", pgErr)
	}
	url := pgServer.CreateDB(t, fmt.Sprintf("cat%d", pgSeq.Add(1)))
	eng, err := OpenPostgresEngine(url, PostgresOptions{TxTimeout: 5 * time.Second, Retry: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	c, err := New(eng)
	if err != nil {
		t.Fatal(err)
	}
	conns := int(eng.(*pgEngine).pool.Config().MaxConns)
	var entered atomic.Int64
	var wg sync.WaitGroup
	ids := make([]uint64, conns)
	errs := make([]error, conns)
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			errs[i] = c.Update(func(tx *Tx) error {
				if _, err := tx.LastEvent(); err != nil { // holds a connection from here
					return err
				}
				if first {
					first = false
					entered.Add(1)
					for entered.Load() < int64(conns) && time.Since(start) < 3*time.Second {
						time.Sleep(time.Millisecond)
					}
				}
				var err error
				ids[i], err = tx.allocate(sequenceJob, 1)
				return err
			})
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("update %d of %d with the pool full: %v (after %s)", i, conns, errs[i], time.Since(start))
		}
		if seen[ids[i]] {
			t.Errorf("ID %d handed out twice", ids[i])
		}
		seen[ids[i]] = true
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("%d updates took %s: they waited for connections", conns, d)
	}
}

// TestPostgresBigUpdateNotStarved: a large registration keeps losing to
// a steady stream of small Updates that append events (every event
// append conflicts with every other). After a few losses it runs alone:
// it takes the writers' lock before its snapshot, so the writers that
// were in flight have committed by then, and it commits.
func TestPostgresBigUpdateNotStarved(t *testing.T) {
	c, err := New(newPostgresEngine(t))
	if err != nil {
		t.Fatal(err)
	}
	addWorkspace(t, c, "ws")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var small atomic.Int64
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := c.Update(func(tx *Tx) error {
					_, err := tx.AppendEvent(Event{Kind: "note", Workspace: "ws"})
					return err
				}); err != nil {
					t.Errorf("small update: %v", err)
					return
				}
				small.Add(1)
			}
		}()
	}
	files := bigBatch("big", 5000, 50)
	var runs int
	t0 := time.Now()
	err = c.Update(func(tx *Tx) error {
		runs++
		time.Sleep(50 * time.Millisecond) // the small writers commit meanwhile
		b, _, err := tx.RegisterBatch(Batch{Workspace: "ws", State: Cached, Bytes: 5000}, files)
		if err != nil {
			return err
		}
		_, err = tx.AppendEvent(Event{Kind: "sealed", Workspace: "ws", Batch: b.ID})
		return err
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("the big registration against a stream of small writers: %v (after %d runs, %v)", err, runs, time.Since(t0))
	}
	if runs < 2 {
		t.Errorf("the big registration ran %d time(s): it never lost, so the test shows nothing", runs)
	}
	if runs > pgEscalateAfter+2 {
		t.Errorf("the big registration ran %d times: running alone after %d losses did not stop the conflicts", runs, pgEscalateAfter)
	}
	t.Logf("big registration committed after %d runs in %v; %d small updates meanwhile", runs, time.Since(t0).Round(time.Millisecond), small.Load())
}

// TestPostgresViewNotRerunAfterRead: a View whose connection is cut after
// it read something is not run again (its closure has collected into the
// caller's variables and would collect twice): it reports the catalog
// unavailable. A View that never reached the database is retried.
func TestPostgresViewNotRerunAfterRead(t *testing.T) {
	eng, url := newPostgresEngineURL(t)
	if err := eng.Update(func(kv KVTxn) error { return kv.Put([]byte("a"), []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	killer, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(context.Background())
	var runs int
	var collected []string
	err = eng.View(func(kv KVTxn) error {
		runs++
		v, err := kv.Get([]byte("a"))
		if err != nil {
			return err
		}
		collected = append(collected, string(v))
		if runs == 1 {
			// Cut every other connection of the database: this View's.
			if _, err := killer.Exec(context.Background(),
				"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
				t.Fatal(err)
			}
		}
		_, err = kv.Get([]byte("b"))
		return err
	})
	if !errors.Is(err, ErrCatalogUnavailable) || runs != 1 || len(collected) != 1 {
		t.Fatalf("View cut after a read: %v after %d runs, collected %q; want ErrCatalogUnavailable after one run", err, runs, collected)
	}
	// The next View finds a dead connection in the pool or a new one:
	// either way it reads.
	var got []byte
	if err := eng.View(func(kv KVTxn) error { got, err = kv.Get([]byte("a")); return err }); err != nil || string(got) != "1" {
		t.Fatalf("View after the cut: %q, %v", got, err)
	}
}

// DescribeURL keeps a URL usable (a socket's ?host=) and drops passwords.
func TestDescribeURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://tapefs:s3cret@db.example.org:5432/tapefs": "postgres://tapefs@db.example.org:5432/tapefs",
		"postgres://tapefs@/cat?host=/tmp/pg.sock":            "postgres://tapefs@/cat?host=/tmp/pg.sock",
		"postgres://u@h/db?password=x&sslmode=disable":        "postgres://u@h/db?sslmode=disable",
	} {
		if got := DescribeURL(in); got != want {
			t.Errorf("DescribeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
