package test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// slowTape makes a tape file take seconds to write (20 kB/s simulated at
// 1/100 of real time: 2 MB/s), so that a test can act while one is being
// written, and mounts and locates cost little.
var slowTape = []string{"--time-scale", "0.01", "--tape-speed", "20000", "--cartridges", "1"}

// putRuns puts n trees of about 2.6 MB through host d, each sealed at
// once, and returns their batch IDs and sources.
func putRuns(t *testing.T, d *daemon, n int) ([]uint64, []string) {
	t.Helper()
	src := t.TempDir()
	var ids []uint64
	var dirs []string
	for i := 1; i <= n; i++ {
		dir := filepath.Join(src, fmt.Sprintf("run%d", i))
		writeFiles(t, dir, map[string]int{"a.dat": 2_000_000, "b.dat": 500_000 + i, "sub/c.dat": 100_000, "sub/empty": 0})
		ids = append(ids, d.putBatch(dir))
		dirs = append(dirs, dir)
	}
	return ids, dirs
}

// TestHostsKill9DuringMigration: batches put on host 1 are being written
// to tape when host 1 is killed with SIGKILL. Another host takes over the
// cartridge and the jobs once host 1's lease lapses, reads the batches
// from host 1's cache (reachable: sibling directories), discards the tape
// file host 1 left half-written, and writes them, while host 1 restarts:
// every batch reaches CACHED_SYNCED, every file has one copy at a place
// of its own, and reads through host 3's mount (recalls from tape) give
// back the md5s put.
func TestHostsKill9DuringMigration(t *testing.T) {
	t.Parallel()
	c := startHosts(t, 3, slowTape...)
	cat := c.openCatalog()
	h1 := c.host(1)
	ids, dirs := putRuns(t, h1, 4)
	waitFor(t, 60*time.Second, "host 1 writing a tape file", func() (bool, string) {
		return len(c.partials()) > 0, "no .partial in the library"
	})
	half := c.partials()
	t.Logf("host 1 is writing %v", half)
	h1.kill9()
	killed := time.Now()
	// Takeover: the migration resumes on another host when a tape file
	// other than host 1's appears (another epoch's name).
	waitFor(t, 60*time.Second, "the migration resumed on another host", func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(c.library, "*", "0*.e*.tar*"))
		for _, p := range m {
			if !slices.Contains(half, p) {
				return true, ""
			}
		}
		return false, fmt.Sprint(m)
	})
	takeover := time.Since(killed)
	t.Logf("takeover: migration resumed on another host %v after the kill -9 of host 1 (lease %v, %.2f leases)", takeover.Round(time.Millisecond), testLease, takeover.Seconds()/testLease.Seconds())
	// The target is 2 leases; 4 leaves room for a loaded machine.
	if takeover > 4*testLease {
		t.Errorf("takeover took %v, more than 4 leases of %v", takeover, testLease)
	}

	// Host 1 comes back while the other host writes its batches: it
	// leaves them to that host.
	h1.startAfterKill9()

	c.waitOnTape(cat, ids, 120*time.Second)
	t.Logf("takeover: every batch on tape %v after the kill -9 of host 1 (lease %v)", time.Since(killed).Round(time.Millisecond), testLease)
	for _, id := range ids {
		if b := c.batch(cat, id); b.Host != "host1" || b.State != "CACHED_SYNCED" {
			t.Errorf("batch %d: host %q state %s, want host1's batch CACHED_SYNCED", id, b.Host, b.State)
		}
	}
	// The half-written tape file is gone: discarded by the host that
	// appended next.
	if p := c.partials(); len(p) > 0 {
		t.Errorf("tape files left half-written after the takeover: %v", p)
	}
	took := 0
	for _, i := range []int{2, 3} {
		took += len(c.host(i).logEvents("took over the cartridge of a host whose heartbeat lapsed; a tape file it left half-written is discarded"))
	}
	if took == 0 {
		t.Errorf("neither host 2 nor host 3 says it took host 1's cartridge over")
	}
	c.checkCopies(cat, ids)

	// Host 3 reads every file back from tape (its cache has none of them).
	h3 := c.host(3)
	for i, id := range ids {
		name := filepath.Base(dirs[i])
		sameTree(t, fmt.Sprintf("batch %d read through host 3", id), md5Tree(t, dirs[i]), md5Tree(t, filepath.Join(h3.ws("default"), fmt.Sprint(id), name)))
	}

	// Host 1, back, failed nothing and wrote nothing again.
	for _, id := range ids {
		if b := c.batch(cat, id); b.State != "CACHED_SYNCED" {
			t.Errorf("batch %d after host 1 restarted: %s (%s)", id, b.State, b.Reason)
		}
	}
	c.checkCopies(cat, ids)
	if out := h1.output(); strings.Contains(out, "FAILED") {
		t.Errorf("host 1 after restart speaks of FAILED:\n%s", lastLines(out, 20))
	}
}

// TestHostsPausedPastLeaseIsFenced: host 2 is frozen with SIGSTOP while it
// writes a tape file, for longer than its lease. Another host takes its
// cartridge and jobs over and writes the batches. When host 2 goes on
// (SIGCONT), its late write and commit are refused: the catalog records
// only the other host's tape files, those files are unchanged on disk,
// and every file reads back with its md5.
func TestHostsPausedPastLeaseIsFenced(t *testing.T) {
	t.Parallel()
	c := startHosts(t, 3, slowTape...)
	cat := c.openCatalog()
	h2 := c.host(2)
	ids, dirs := putRuns(t, h2, 3)
	waitFor(t, 60*time.Second, "host 2 writing a tape file", func() (bool, string) {
		return len(c.partials()) > 0, "no .partial in the library"
	})
	h2.sigstop()
	t.Logf("host 2 frozen while writing %v", c.partials())
	c.waitOnTape(cat, ids, 120*time.Second)
	took := 0
	for _, i := range []int{1, 3} {
		took += len(c.host(i).logEvents("took over the cartridge of a host whose heartbeat lapsed; a tape file it left half-written is discarded"))
	}
	if took == 0 {
		t.Fatalf("the batches reached tape but no host took host 2's cartridge over (host 2 finished before it was frozen?)")
	}
	c.checkCopies(cat, ids)
	recorded := c.recordedTapeFiles(cat, ids)

	h2.sigcont()
	h2.waitLogEvents("this host's heartbeat had lapsed (paused or cut off): cartridges and jobs it held may have been taken over; commits of that work are refused", 1, 30*time.Second)
	h2.waitLogEvents("lease lost while working: nothing of this work is recorded; the host that took over does it", 1, 60*time.Second)
	// Host 2 has given up: what is recorded is what was recorded before,
	// byte for byte on the medium.
	c.checkCopies(cat, ids)
	if after := c.recordedTapeFiles(cat, ids); fmt.Sprint(after) != fmt.Sprint(recorded) {
		t.Errorf("recorded tape files changed after host 2 went on:\nbefore %v\nafter  %v", recorded, after)
	}
	for _, id := range ids {
		if b := c.batch(cat, id); b.State != "CACHED_SYNCED" || b.Attempts != 0 {
			t.Errorf("batch %d after host 2 went on: %s, %d failed attempts (%s)", id, b.State, b.Attempts, b.Reason)
		}
	}
	h1 := c.host(1)
	for i, id := range ids {
		name := filepath.Base(dirs[i])
		sameTree(t, fmt.Sprintf("batch %d read through host 1", id), md5Tree(t, dirs[i]), md5Tree(t, filepath.Join(h1.ws("default"), fmt.Sprint(id), name)))
	}
}

// TestHostsLateCommitIsRefused: host 2 has written a tape file and is
// frozen (SIGSTOP) between writing it and recording it, past its lease:
// a test hook holds it there long enough to be caught. Host 1 takes the
// cartridge and the jobs over and writes the batches; when host 2 goes
// on, its commit is refused by the catalog's fence (not merely by the
// tape's), and nothing recorded changes.
func TestHostsLateCommitIsRefused(t *testing.T) {
	t.Parallel()
	c := newHosts(t, 2, slowTape...)
	h2 := c.host(2)
	h2.env = []string{"TAPEFS_TEST_PAUSE_BEFORE_COMMIT=5s"}
	for _, d := range c.hosts {
		d.start()
	}
	cat := c.openCatalog()
	ids, dirs := putRuns(t, h2, 2)
	h2.waitLogEvents("test hook TAPEFS_TEST_PAUSE_BEFORE_COMMIT: pausing here", 1, 2*time.Minute)
	h2.sigstop()
	c.waitOnTape(cat, ids, 2*time.Minute)
	c.checkCopies(cat, ids)
	recorded := c.recordedTapeFiles(cat, ids)

	h2.sigcont()
	evs := h2.waitLogEvents("lease lost while working: nothing of this work is recorded; the host that took over does it", 1, time.Minute)
	if err := evs[0].str("error"); !strings.Contains(err, "lease lost: another host has taken over") {
		t.Errorf("host 2's late work was given up, but not because the catalog refused its commit: %q", err)
	}
	c.checkCopies(cat, ids)
	if after := c.recordedTapeFiles(cat, ids); fmt.Sprint(after) != fmt.Sprint(recorded) {
		t.Errorf("recorded tape files changed after host 2's late commit:\nbefore %v\nafter  %v", recorded, after)
	}
	h1 := c.host(1)
	for i, id := range ids {
		if b := c.batch(cat, id); b.State != "CACHED_SYNCED" {
			t.Errorf("batch %d after host 2's late commit: %s (%s)", id, b.State, b.Reason)
		}
		name := filepath.Base(dirs[i])
		sameTree(t, fmt.Sprintf("batch %d read through host 1", id), md5Tree(t, dirs[i]), md5Tree(t, filepath.Join(h1.ws("default"), fmt.Sprint(id), name)))
	}
}

// TestHostsRestartLeavesOthersWork: host 2 restarts while host 1 writes
// its batches to tape. Host 2's start-up recovery touches only its own
// work: host 1's batches are neither failed as missing from host 2's
// cache, nor reset from SYNCING, and reach tape at the first attempt.
func TestHostsRestartLeavesOthersWork(t *testing.T) {
	t.Parallel()
	c := startHosts(t, 2, slowTape...)
	cat := c.openCatalog()
	h1, h2 := c.host(1), c.host(2)
	ids, _ := putRuns(t, h1, 3)
	waitFor(t, 60*time.Second, "host 1 writing a tape file", func() (bool, string) {
		return len(c.partials()) > 0, "no .partial in the library"
	})
	h2.restart()
	c.waitOnTape(cat, ids, 120*time.Second)
	for _, id := range ids {
		if b := c.batch(cat, id); b.Attempts != 0 || b.Reason != "" {
			t.Errorf("batch %d of host 1: %d failed attempts (%s) after host 2 restarted", id, b.Attempts, b.Reason)
		}
	}
	if n := len(h1.logEvents("lease lost while working: nothing of this work is recorded; the host that took over does it")); n > 0 {
		t.Errorf("host 1 lost its work when host 2 restarted")
	}
	c.checkCopies(cat, ids)
}
