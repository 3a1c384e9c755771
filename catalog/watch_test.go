package catalog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tapefs/tapefs/internal/pgtest"
)

// TestPostgresWatch: a commit that appends events on one engine wakes the
// watcher of another engine on the same database with the highest seq, on
// both write paths (pipelined and COPY); a commit without events and a
// rolled back one do not; a listener whose connection is killed reports
// the loss, keeps reporting it while the database refuses connections, and
// listens again once it accepts them.
func TestPostgresWatch(t *testing.T) {
	pgOnce.Do(func() { pgServer, pgErr = pgtest.StartShared() })
	if pgErr != nil {
		t.Fatalf("PostgreSQL: %v", pgErr)
	}
	db := fmt.Sprintf("watch%d", pgSeq.Add(1))
	url := pgServer.CreateDB(t, db)
	open := func() *Catalog {
		eng, err := OpenPostgresEngine(url, PostgresOptions{TxTimeout: 5 * time.Second, Retry: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c, err := New(eng)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(), open()
	if !b.Shared() {
		t.Fatal("a PostgreSQL catalog says it is not shared")
	}
	ctx, cancel := context.WithCancel(context.Background())
	ups, wakes := make(chan error, 100), make(chan uint64, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Watch(ctx, func(err error) { ups <- err }, func(seq uint64) { wakes <- seq })
	}()
	t.Cleanup(func() { cancel(); <-done })
	expectUp := func(want bool) {
		t.Helper()
		select {
		case err := <-ups:
			if (err == nil) != want {
				t.Fatalf("listener up=%v (err %v), want up=%v", err == nil, err, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("listener did not report up=%v within 10 s", want)
		}
	}
	expectWake := func(want uint64) {
		t.Helper()
		select {
		case seq := <-wakes:
			if seq != want {
				t.Fatalf("woken with seq %d, want %d", seq, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no wake for seq %d within 2 s", want)
		}
	}
	expectQuiet := func() {
		t.Helper()
		select {
		case seq := <-wakes:
			t.Fatalf("woken with seq %d by a commit without events", seq)
		case <-time.After(300 * time.Millisecond):
		}
	}
	expectUp(true)

	var last uint64
	appendEvents := func(n int, extra int, fail bool) error {
		return a.Update(func(tx *Tx) error {
			for i := 0; i < n; i++ {
				ev, err := tx.AppendEvent(Event{Time: time.Now(), Workspace: "ws", Kind: "test"})
				if err != nil {
					return err
				}
				if !fail {
					last = ev.Seq
				}
			}
			for i := 0; i < extra; i++ {
				if err := tx.kv.Put([]byte(fmt.Sprintf("zfiller%06d", i)), []byte("x")); err != nil {
					return err
				}
			}
			if fail {
				return fmt.Errorf("rolled back")
			}
			return nil
		})
	}
	if err := appendEvents(3, 0, false); err != nil {
		t.Fatal(err)
	}
	expectWake(last)
	if err := appendEvents(2, 2*pgCopyThreshold, false); err != nil { // the COPY path
		t.Fatal(err)
	}
	expectWake(last)
	if err := appendEvents(0, 5, false); err != nil {
		t.Fatal(err)
	}
	expectQuiet()
	if err := appendEvents(2, 0, true); err == nil {
		t.Fatal("the failing update succeeded")
	}
	expectQuiet()

	// Kill the listener's connection and keep it from coming back.
	allow := pgServer.CutOff(t, db, pgWatchApp)
	expectUp(false)
	expectUp(false) // a reconnection attempt, refused
	allow()
	for {
		select {
		case err := <-ups:
			if err != nil {
				continue // attempts made before connections were allowed again
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the listener did not come back within 15 s of the database accepting connections")
		}
		break
	}
	if err := appendEvents(1, 0, false); err != nil {
		t.Fatal(err)
	}
	expectWake(last)
}
