package archive

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io/fs"
	"os"
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

// registerSealing registers on the shared catalog a batch host a was
// sealing when it died: its file still in the sealing directory of a's
// cache (sealDir set), or already moved into a's objects (moved).
func registerSealing(t *testing.T, cat *catalog.Catalog, a *testHost, data []byte) catalog.Batch {
	t.Helper()
	sealDir, err := a.cache.NewSealingDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(sealDir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sealDir, "run", "x"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var sealing catalog.Batch
	if err := cat.Update(func(tx *catalog.Tx) error {
		now := time.Now()
		b, _, err := tx.RegisterBatch(catalog.Batch{Workspace: "ws", Entry: "run", State: catalog.Sealing, Created: now, Sealed: now, Bytes: int64(len(data)), Host: "a", Sealing: sealDir},
			[]catalog.File{{Path: "run", Type: catalog.TypeDir, Mode: 0o755, Mtime: now}, {Path: "run/x", Type: catalog.TypeFile, Mode: 0o644, Size: int64(len(data)), Mtime: now}})
		if err != nil {
			return err
		}
		sealing = b
		_, err = tx.AddJob(catalog.Job{Kind: catalog.JobSeal, Batch: b.ID, Created: now, Owner: "a"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return sealing
}

// TestSealOfDeadHostAdopted: host a dies (its heartbeat lapses) while a
// batch it was sealing is still SEALING, its file not yet moved out of
// the sealing directory of a's cache. a's cache is reachable, so host b
// takes the seal job over, moves the file into a's cache, computes its
// md5 there and writes the batch to tape: nothing handed over is lost or
// waits for a.
func TestSealOfDeadHostAdopted(t *testing.T) {
	shared, libDir := catalog.NewMemoryEngine(), t.TempDir()
	a := startHostWith(t, hostOpts{id: "a", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond})
	cat, err := catalog.New(shared)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(31, 123_456)
	sealing := registerSealing(t, cat, a, data)
	a.cat.off.Store(true) // a dies: its heartbeat lapses
	t.Cleanup(func() { a.cat.off.Store(false) })
	b := startHostWith(t, hostOpts{id: "b", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond})
	waitHost(t, "host b to finish a's seal and write the batch to tape", 30*time.Second, func() bool {
		return batchState(t, b.Engine, sealing.ID).State == catalog.CachedSynced
	})
	x := batchFiles(t, b.Engine, sealing.ID)["run/x"]
	if want := fmt.Sprintf("%x", md5.Sum(data)); x.MD5 != want || len(x.Copies) != 1 {
		t.Fatalf("run/x after b took the seal over: md5 %q (want %s), copies %+v", x.MD5, want, x.Copies)
	}
	if got, err := os.ReadFile(a.cache.ObjectPath(x.ID)); err != nil || !bytes.Equal(got, data) {
		t.Errorf("run/x in a's cache: %d bytes, %v; want the sealed bytes", len(got), err)
	}
	if _, err := os.Stat(sealing.Sealing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sealing directory after the adoption: %v, want gone", err)
	}
}

// TestSealingBatchWaitsForItsHost: as TestSealOfDeadHostAdopted, but
// a's cache is out of reach of host b. The batch waits for a with a clear
// state: SEALING, not failed, not queued for tape, and the host list on b
// says that a's batch waits for it. Once a's cache is reachable again, b
// finishes the seal and writes the batch.
func TestSealingBatchWaitsForItsHost(t *testing.T) {
	shared, libDir := catalog.NewMemoryEngine(), t.TempDir()
	a := startHostWith(t, hostOpts{id: "a", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond})
	cat, err := catalog.New(shared)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(32, 4321)
	sealing := registerSealing(t, cat, a, data)
	a.cat.off.Store(true) // a dies: its heartbeat lapses
	t.Cleanup(func() { a.cat.off.Store(false) })
	away := a.cfg.CacheDir + ".away"
	if err := os.Rename(a.cfg.CacheDir, away); err != nil { // out of reach of b
		t.Fatal(err)
	}
	b := startHostWith(t, hostOpts{id: "b", shared: shared, libDir: libDir, flushAge: 20 * time.Millisecond})
	var note string
	waitHost(t, "host a to show as down on host b", 10*time.Second, func() bool {
		hs, err := b.Hosts()
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.ID == "a" && h.State != "up" {
				note = h.Note()
				return true
			}
		}
		return false
	})
	if !strings.Contains(note, "1 batch(es) not yet on tape wait for it") {
		t.Errorf("note on host a: %q; want that its batch waits for it", note)
	}
	b.Flush()
	time.Sleep(3 * hostLease)
	if got := batchState(t, b.Engine, sealing.ID); got.State != catalog.Sealing {
		t.Errorf("host a's sealing batch on host b: %s (%s), want SEALING while a's cache is out of reach", got.State, got.Reason)
	}
	var migrate []catalog.Job
	if err := cat.View(func(tx *catalog.Tx) error {
		migrate, err = tx.Jobs(catalog.JobMigrate)
		return err
	}); err != nil || len(migrate) != 0 {
		t.Errorf("migrate jobs %+v (%v): host b queued a batch whose checksums are not computed", migrate, err)
	}
	if err := os.Rename(away, a.cfg.CacheDir); err != nil {
		t.Fatal(err)
	}
	waitHost(t, "host b to finish a's seal once a's cache is back", 30*time.Second, func() bool {
		return batchState(t, b.Engine, sealing.ID).State == catalog.CachedSynced
	})
	if x := batchFiles(t, b.Engine, sealing.ID)["run/x"]; x.MD5 != fmt.Sprintf("%x", md5.Sum(data)) {
		t.Errorf("run/x: md5 %q after the seal was finished by b", x.MD5)
	}
}

// TestRemovalOfDeadHostUndone: an entry removed inside a batch through
// host a hides it for the removal grace period; a dies right after. The
// host running the removal-grace role (b, once a's heartbeat lapsed) finds
// the removal in the catalog and undoes it when the grace period ends, as
// a would have: the entry is visible again.
func TestRemovalOfDeadHostUndone(t *testing.T) {
	shared, libDir := catalog.NewMemoryEngine(), t.TempDir()
	grace := 400 * time.Millisecond
	a := startHostWith(t, hostOpts{id: "a", shared: shared, libDir: libDir, flushAge: time.Hour, removeGrace: grace})
	b := startHostWith(t, hostOpts{id: "b", shared: shared, libDir: libDir, flushAge: time.Hour, removeGrace: grace})
	batch, _ := sealTree(t, &testEngine{Engine: a.Engine}, "run", map[string][]byte{"x": randomBytes(41, 1000), "y": randomBytes(42, 10)})
	files := batchFiles(t, a.Engine, batch.ID)
	if _, err := a.RemoveEntry("ws", batch.ID, files["run"].ID, "x", false); err != nil {
		t.Fatal(err)
	}
	a.cat.off.Store(true) // a dies with the removal in its grace period
	t.Cleanup(func() { a.cat.off.Store(false) })
	waitHost(t, "the removal begun through host a to be undone by host b", 20*time.Second, func() bool {
		return !batchFiles(t, b.Engine, batch.ID)["run/x"].Removed && !batchState(t, b.Engine, batch.ID).Removal.Pending()
	})
	if !b.leads(roleRemovalGrace) {
		t.Error("host b undid the removal without holding the removal-grace role")
	}
}
