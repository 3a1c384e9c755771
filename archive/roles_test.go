package archive

import (
	"path/filepath"
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
