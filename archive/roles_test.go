package archive

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// TestOneHostTakesTheSnapshots: of two hosts on one catalog, only the one
// holding the snapshot role writes snapshots; when its heartbeat can no
// longer be renewed (the catalog out of its reach, as for a host that
// died), the other takes the role over and the snapshots go on from it.
func TestOneHostTakesTheSnapshots(t *testing.T) {
	shared, libDir := catalog.NewMemoryEngine(), t.TempDir()
	dirA, dirB := filepath.Join(t.TempDir(), "snap-a"), filepath.Join(t.TempDir(), "snap-b")
	every := 150 * time.Millisecond
	a := startHostWith(t, hostOpts{id: "a", shared: shared, libDir: libDir, flushAge: time.Hour, snapshotEvery: every, snapshotDir: dirA})
	waitHost(t, "host a's first snapshot", 30*time.Second, func() bool { return len(snapshotFiles(dirA)) > 0 })
	b := startHostWith(t, hostOpts{id: "b", shared: shared, libDir: libDir, flushAge: time.Hour, snapshotEvery: every, snapshotDir: dirB})
	// Several periods and leases with both hosts up: a keeps the role.
	waitHost(t, "host a to take more snapshots", 30*time.Second, func() bool { return len(snapshotFiles(dirA)) >= 4 })
	time.Sleep(3 * hostLease)
	if n := len(snapshotFiles(dirB)); n != 0 {
		t.Fatalf("host b took %d snapshots while host a runs the role", n)
	}
	if !a.leads(roleSnapshot) || b.leads(roleSnapshot) {
		t.Fatalf("roles: a leads %v, b leads %v; want a only", a.leads(roleSnapshot), b.leads(roleSnapshot))
	}
	a.cat.off.Store(true) // a's heartbeat lapses: it is dead to the others
	t.Cleanup(func() { a.cat.off.Store(false) })
	lapsed := time.Now()
	waitHost(t, "host b to take the snapshots over", 30*time.Second, func() bool { return len(snapshotFiles(dirB)) > 0 })
	took := time.Since(lapsed)
	t.Logf("snapshot role taken over %v after host a's catalog went away (lease %v, period %v)", took.Round(time.Millisecond), hostLease, every)
	if !b.leads(roleSnapshot) {
		t.Fatal("host b took a snapshot without holding the role")
	}
	roles, err := b.Roles()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if r.Name == roleSnapshot && (r.Holder != "b" || !r.Alive) {
			t.Errorf("snapshot role as listed: %+v, want held by b, alive", r)
		}
	}
	// a, cut off, knows it no longer holds the role.
	if a.leads(roleSnapshot) {
		t.Error("host a, whose heartbeat lapsed, still thinks it runs the snapshots")
	}
}

// TestSealingBatchWaitsForItsHost: host a dies (its heartbeat lapses)
// while a batch it sealed is still SEALING — moved into its cache, its
// checksums not all computed. Only a finishes a seal, so the batch waits
// for it although a's cache is reachable: host b neither fails it nor
// queues it for tape, and the host list on b says that it waits for a
// (not that b adopted it).
func TestSealingBatchWaitsForItsHost(t *testing.T) {
	shared, libDir := catalog.NewMemoryEngine(), t.TempDir()
	a := startHostWith(t, hostOpts{id: "a", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond})
	cat, err := catalog.New(shared)
	if err != nil {
		t.Fatal(err)
	}
	var sealing catalog.Batch
	if err := cat.Update(func(tx *catalog.Tx) error {
		b, _, err := tx.RegisterBatch(catalog.Batch{Workspace: "ws", Entry: "run", State: catalog.Sealing, Created: time.Now(), Sealed: time.Now(), Bytes: 10, Host: "a"},
			[]catalog.File{{Path: "run", Type: catalog.TypeDir, Mode: 0o755}, {Path: "run/x", Type: catalog.TypeFile, Mode: 0o644, Size: 10}})
		if err != nil {
			return err
		}
		sealing = b
		_, err = tx.AddJob(catalog.Job{Kind: catalog.JobSeal, Batch: b.ID, Created: time.Now(), Owner: "a"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	a.cat.off.Store(true) // a dies: its heartbeat lapses
	t.Cleanup(func() { a.cat.off.Store(false) })
	b := startHostWith(t, hostOpts{id: "b", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond})
	var note string
	waitHost(t, "host a to show as down on host b", 10*time.Second, func() bool {
		hs, err := b.Hosts()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.ID == "a" && h.State != "up" {
				if h.Sealing != 1 || !h.CacheReachable {
					t.Fatalf("host a as host b lists it: %+v; want 1 batch sealing, cache reachable", h)
				}
				note = h.Note()
				return true
			}
		}
		return false
	})
	if !strings.Contains(note, "1 batch(es) it was sealing wait for it") || strings.Contains(note, "adopted") {
		t.Errorf("note on host a: %q; want that its sealing batch waits for it", note)
	}
	b.Flush()
	time.Sleep(3 * hostLease)
	if got := batchState(t, b.Engine, sealing.ID); got.State != catalog.Sealing {
		t.Errorf("host a's sealing batch on host b: %s (%s), want SEALING until a is back", got.State, got.Reason)
	}
	var migrate []catalog.Job
	if err := cat.View(func(tx *catalog.Tx) error {
		migrate, err = tx.Jobs(catalog.JobMigrate)
		return err
	}); err != nil || len(migrate) != 0 {
		t.Errorf("migrate jobs %+v (%v): host b queued a batch whose checksums are not computed", migrate, err)
	}
}
