package test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// snapshotsIn counts the catalog snapshots kept in a home.
func snapshotsIn(home string) int {
	m, _ := filepath.Glob(filepath.Join(home, "snapshots", "catalog-*.db"))
	return len(m)
}

// TestHostsOneSnapshotRunner: two hosts on one catalog, both asked for a
// catalog snapshot every second. Only one takes them (the snapshot role,
// archive/roles.go); after it is killed with SIGKILL the other takes the
// role over once the dead host's lease lapses, and the snapshots go on
// from it.
func TestHostsOneSnapshotRunner(t *testing.T) {
	t.Parallel()
	c := startHosts(t, 2, "--snapshot-every", "1s")
	var runner, other *daemon
	waitFor(t, 30*time.Second, "a first catalog snapshot", func() (bool, string) {
		for i, d := range c.hosts {
			if snapshotsIn(d.home) > 0 {
				runner, other = d, c.hosts[1-i]
				return true, ""
			}
		}
		return false, "no snapshot in either home"
	})
	waitFor(t, 30*time.Second, "more snapshots from the same host", func() (bool, string) {
		return snapshotsIn(runner.home) >= 3, ""
	})
	if n := snapshotsIn(other.home); n != 0 {
		t.Fatalf("both hosts take snapshots: %d in %s and %d in %s", snapshotsIn(runner.home), runner.home, n, other.home)
	}
	runner.kill9()
	killed := time.Now()
	waitFor(t, 6*testLease, "the other host to take the snapshots over", func() (bool, string) {
		return snapshotsIn(other.home) > 0, ""
	})
	t.Logf("snapshot role taken over %v after kill -9 of its host (lease %v)", time.Since(killed).Round(10*time.Millisecond), testLease)
	other.waitLogEvents("took over a role of a host whose heartbeat lapsed", 1, 10*time.Second)
}

// TestHostsKill9DuringSeal: host 1 checksums slowly (--hash-rate), and is
// killed with SIGKILL while a batch put through it is SEALING. Its cache
// is reachable (sibling directories), so host 2 takes the seal over,
// computes the checksums from host 1's cache and writes the batch to
// tape; host 2's mount then reads every file with the md5 of its source.
func TestHostsKill9DuringSeal(t *testing.T) {
	t.Parallel()
	c := newHosts(t, 2)
	h1, h2 := c.host(1), c.host(2)
	h1.flags = append(h1.flags, "--hash-rate", "100000") // 2.6 MB: about 26 s of hashing
	for _, d := range c.hosts {
		d.start()
	}
	cat := c.openCatalog()
	ids, dirs := putRuns(t, h1, 1)
	if st := c.batch(cat, ids[0]).State; st != catalog.Sealing {
		t.Fatalf("batch %d is %s right after its seal, want SEALING (host 1 hashes slowly)", ids[0], st)
	}
	h1.kill9()
	killed := time.Now()
	c.waitOnTape(cat, ids, 120*time.Second)
	t.Logf("batch sealed on host 1, killed while SEALING, on tape %v later", time.Since(killed).Round(10*time.Millisecond))
	if b := c.batch(cat, ids[0]); b.Host != "host1" {
		t.Errorf("batch %d belongs to host %q, want host1 (its data is in host 1's cache)", ids[0], b.Host)
	}
	h2.waitLogEvents("finishing the seal of a batch of a host that died: its checksums are computed here from its cache, then it goes to tape", 1, 10*time.Second)
	got := md5Tree(t, filepath.Join(h2.ws("default"), itoa(ids[0]), filepath.Base(dirs[0])))
	sameTree(t, "host 2's mount", md5Tree(t, dirs[0]), got)
}
