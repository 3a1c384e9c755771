package catalog

import (
	"errors"
	"testing"
	"time"
)

func TestHostsMemory(t *testing.T) {
	c, err := New(NewMemoryEngine())
	if err != nil {
		t.Fatal(err)
	}
	testFence(t, c)
}

func TestHostsPostgres(t *testing.T) {
	c, err := New(newPostgresEngine(t))
	if err != nil {
		t.Fatal(err)
	}
	testFence(t, c)
	// The clock is the server's: close to this machine's (same host), and
	// it moves.
	var a, b time.Time
	view(t, c, func(tx *Tx) error {
		var err error
		if a, err = tx.Now(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
		b, err = tx.Now()
		return err
	})
	if d := time.Since(a); d < 0 || d > time.Minute {
		t.Errorf("database clock %v is %v from this machine's", a, d)
	}
	if !b.After(a) {
		t.Errorf("database clock does not move: %v then %v", a, b)
	}
}

// testFence: a commit of an aggregate under a cartridge lease or job claim
// that another host has taken since is refused and records nothing; the
// holder's own commit goes through; a holder whose heartbeat lapsed
// commits nothing even if nobody took over yet.
func testFence(t *testing.T, c *Catalog) {
	addWorkspace(t, c, "ws")
	b, files := register(t, c, "ws", "top", Cached)
	var job Job
	update(t, c, func(tx *Tx) error {
		now, err := tx.Now()
		if err != nil {
			return err
		}
		for _, id := range []string{"h1", "h2"} {
			if err := tx.PutHost(Host{ID: id, Heartbeat: now, Expires: now.Add(time.Hour)}); err != nil {
				return err
			}
		}
		if err := tx.PutCartridgeLease(CartridgeLease{VOLSER: "TF0001", Holder: "h1", Epoch: 1}); err != nil {
			return err
		}
		job, err = tx.AddJob(Job{Kind: JobMigrate, Batch: b.ID, Created: t0, Owner: "h1", Epoch: 1})
		return err
	})
	commit := func(f Fence) error {
		return c.Update(func(tx *Tx) error {
			return tx.CommitAggregate(AggregateCommit{
				Copies: map[uint64]Copy{files[1].ID: {VOLSER: "TF0001", TapeFile: 1, Length: 100}},
				OnTape: map[uint64]int64{b.ID: 100}, Time: t0, Fence: f,
			})
		})
	}
	copies := func() int {
		var n int
		view(t, c, func(tx *Tx) error {
			f, err := tx.File(files[1].ID)
			n = len(f.Copies)
			return err
		})
		return n
	}
	h1 := Fence{Host: "h1", VOLSER: "TF0001", Epoch: 1, Jobs: map[uint64]uint64{job.ID: 1}}

	// h2 takes the cartridge over: h1's commit is refused.
	update(t, c, func(tx *Tx) error {
		return tx.PutCartridgeLease(CartridgeLease{VOLSER: "TF0001", Holder: "h2", Epoch: 2})
	})
	wantErr(t, commit(h1), ErrFenced, "TF0001", "h2", "epoch 2")
	// h2 claims the job too; with the cartridge back, h1 is still refused.
	update(t, c, func(tx *Tx) error {
		if err := tx.PutCartridgeLease(CartridgeLease{VOLSER: "TF0001", Holder: "h1", Epoch: 1}); err != nil {
			return err
		}
		j, err := tx.Job(job.ID)
		if err != nil {
			return err
		}
		j.Owner, j.Epoch = "h2", 2
		return tx.PutJob(j)
	})
	wantErr(t, commit(h1), ErrFenced, "job", "h2")
	if n := copies(); n != 0 {
		t.Fatalf("refused commits recorded %d copies", n)
	}
	// h2 commits under what it holds.
	update(t, c, func(tx *Tx) error {
		return tx.PutCartridgeLease(CartridgeLease{VOLSER: "TF0001", Holder: "h2", Epoch: 3})
	})
	if err := commit(Fence{Host: "h2", VOLSER: "TF0001", Epoch: 3, Jobs: map[uint64]uint64{job.ID: 2}}); err != nil {
		t.Fatalf("the holder's commit: %v", err)
	}
	if n := copies(); n != 1 {
		t.Fatalf("holder's commit: %d copies, want 1", n)
	}
	// A holder whose heartbeat lapsed commits nothing.
	update(t, c, func(tx *Tx) error {
		now, err := tx.Now()
		if err != nil {
			return err
		}
		return tx.PutHost(Host{ID: "h2", Heartbeat: now.Add(-time.Hour), Expires: now.Add(-time.Minute)})
	})
	err := commit(Fence{Host: "h2", VOLSER: "TF0001", Epoch: 3})
	if !errors.Is(err, ErrFenced) {
		t.Errorf("commit of a host whose heartbeat lapsed: %v, want ErrFenced", err)
	}
	// No fence: one host, nothing checked.
	if err := commit(Fence{}); err != nil {
		t.Errorf("commit without a fence: %v", err)
	}
}
