package test

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Repack and reclaim (issue 11): a cartridge with purged batches on it is
// repacked: its live files move to other cartridges and it becomes
// scratch, with every file readable all along.

// libCartridge is a cartridge as `library status -F json` shows it.
type libCartridge struct {
	VOLSER     string  `json:"volser"`
	State      string  `json:"state"`
	TapeFiles  int     `json:"tape_files"`
	Dead       int64   `json:"dead"`
	Live       float64 `json:"live"`
	Repacking  bool    `json:"repacking"`
	Progress   int     `json:"repack_progress"`
	Generation int     `json:"generation"`
}

func libraryCartridges(t *testing.T, home string) map[string]libCartridge {
	t.Helper()
	var lib struct {
		Cartridges []libCartridge `json:"cartridges"`
	}
	r := cliOK(t, cliOpts{home: home}, "library", "status", "-F", "json")
	if err := json.Unmarshal([]byte(r.stdout), &lib); err != nil {
		t.Fatalf("library status -F json: %v\n%s", err, r.stdout)
	}
	out := map[string]libCartridge{}
	for _, c := range lib.Cartridges {
		out[c.VOLSER] = c
	}
	return out
}

// repackScene archives six trees (files, a hard link, a symlink, an empty
// directory) on one cartridge, removes every other batch and waits until
// they are purged. It returns the cartridge, the trees kept and their
// batch IDs.
func repackScene(t *testing.T, d *daemon) (volser string, src string, trees, ids []string) {
	t.Helper()
	src = t.TempDir()
	var all []string
	for i := range 6 {
		tr := fmt.Sprintf("run%d", i)
		sh(t, src, fmt.Sprintf(`
mkdir -p %[1]s/sub/deeper %[1]s/empty
head -c %[2]d /dev/urandom > %[1]s/a.dat
head -c %[3]d /dev/urandom > %[1]s/sub/b.dat
head -c 3000 /dev/urandom > %[1]s/sub/deeper/c.dat
ln %[1]s/a.dat %[1]s/sub/hard.dat
ln -s ../a.dat %[1]s/sub/link
chmod 0640 %[1]s/sub/b.dat
`, tr, 400_000+i*1000, 150_000+i*7))
		id := d.cpSynced(filepath.Join(src, tr), 60*time.Second)
		if i%2 == 1 {
			cliOK(t, cliOpts{home: d.home}, "rm", "-b", id)
		} else {
			trees, ids = append(trees, tr), append(ids, id)
		}
		all = append(all, id)
	}
	d.waitEvents("purged", 3, 60*time.Second)
	// The journal writes the purges to tape a flush age later, on the
	// cartridge in the drive: let it, so that nothing is written to the
	// cartridge after the test looked at it.
	var lastPurge int64
	for _, e := range d.logEvents("") {
		if e.str("event") == "purged" {
			lastPurge = max(lastPurge, e.num("seq"))
		}
	}
	waitFor(t, 60*time.Second, "the purges written to tape by the journal", func() (bool, string) {
		for _, e := range d.logEvents("") {
			if e.str("event") == "journal" && e.num("seq") > lastPurge {
				return true, ""
			}
		}
		return false, ""
	})
	var written []string
	for v, c := range libraryCartridges(t, d.home) {
		if c.TapeFiles > 1 {
			written = append(written, v)
		}
	}
	if len(written) != 1 {
		t.Fatalf("batches %v written to cartridges %v, want one", all, written)
	}
	volser = written[0]
	c := libraryCartridges(t, d.home)[volser]
	if c.Dead == 0 || c.Live > 0.8 {
		t.Fatalf("cartridge %s after three of six batches were purged: %+v, want dead bytes", volser, c)
	}
	return volser, src, trees, ids
}

// checkTrees compares every kept tree through the mount with its source
// (diff -r reads every file, recalled from tape: the cache is emptied
// first), and the md5s the catalog recorded with md5sum of the mount.
func checkTrees(t *testing.T, d *daemon, src string, trees, ids []string) {
	t.Helper()
	cliOK(t, cliOpts{home: d.home}, "cache", "evict")
	for i, tr := range trees {
		dir := filepath.Join(d.ws("default"), ids[i])
		sh(t, "/", "diff -r --no-dereference "+q(filepath.Join(src, tr))+" "+q(filepath.Join(dir, tr)))
		list := cliOK(t, cliOpts{home: d.home}, "ls", "-b", ids[i], "-F", "md5sum").stdout
		sh(t, dir, "md5sum --quiet -c - <<'EOF'\n"+list+"EOF")
	}
}

// TestRepackReclaimsCartridge: root repacks a cartridge half of whose
// bytes belong to purged batches; every live file reads back identical
// through the mount, from another cartridge, and the old one is scratch
// with a label of the next generation.
func TestRepackReclaimsCartridge(t *testing.T) {
	d := newDaemon(t, append(fastFlags(), "--retention", "1s")...)
	d.start()
	volser, src, trees, ids := repackScene(t, d)
	o := cliOpts{home: d.home}
	want := libraryCartridges(t, d.home)[volser].Dead
	m := string(httpGetOK(t, statusURL(d)+"/metrics").body)
	var got float64
	for _, l := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(l, `tapefs_cartridge_dead_bytes{volser="`+volser+`"} `); ok {
			got, _ = strconv.ParseFloat(v, 64)
		}
	}
	if int64(got) != want {
		t.Errorf("/metrics should say %d dead bytes on %s:\n%s", want, volser, grepLines(m, "dead"))
	}

	r := cliOK(t, o, "library", "repack", volser, "--wait")
	if !strings.Contains(r.stdout, volser+" repacked: scratch") {
		t.Errorf("library repack --wait said:\n%s", r)
	}
	// Waiting on a pipe: plain progress lines, where the repack is.
	if !strings.Contains(r.stderr, "repack "+volser+": at tape file ") || strings.Contains(r.stderr, "\r") {
		t.Errorf("library repack --wait on a pipe showed no plain progress line:\n%s", r)
	}
	c := libraryCartridges(t, d.home)[volser]
	if c.State != "scratch" || c.TapeFiles != 1 || c.Generation != 2 || c.Repacking || c.Dead != 0 {
		t.Fatalf("cartridge %s after the repack: %+v, want scratch, only its label, generation 2", volser, c)
	}
	for _, id := range ids {
		if l := cliOK(t, o, "ls", "-b", id, "-L", "file", "-F", "json").stdout; strings.Contains(l, volser) {
			t.Fatalf("batch %s still names %s after the repack:\n%s", id, volser, l)
		}
	}
	checkTrees(t, d, src, trees, ids)
	if m := string(httpGetOK(t, statusURL(d)+"/metrics").body); strings.Contains(m, `tapefs_cartridge_dead_bytes{volser="`+volser+`"}`) || !strings.Contains(m, "tapefs_cartridges_repacking 0") {
		t.Errorf("/metrics after the repack of %s:\n%s", volser, grepLines(m, "repack")+grepLines(m, "dead"))
	}
	if n := d.eventCount("repack"); n != 2 {
		t.Errorf("%d repack events in the log, want 2 (queued, done)", n)
	}
	// A scratch cartridge has nothing to repack.
	wantCode(t, runTapefs(t, o, "library", "repack", "TF0020"), 1)
	wantCode(t, runTapefs(t, o, "library", "repack", "TF9999"), 1)
	st := cliOK(t, o, "library", "status").stdout
	if !strings.Contains(st, "LIVE") {
		t.Errorf("library status has no LIVE column:\n%s", st)
	}
}

// TestRepackKill9: the daemon is killed with SIGKILL at random moments of
// repacks, at least five while one runs (a repack that finishes between two
// kills is followed by one of the cartridge that now holds the files);
// after each start every file reads back identical, and at the end the
// cartridge last repacked is scratch.
func TestRepackKill9(t *testing.T) {
	d := newDaemon(t, append(fastFlags(), "--retention", "1s", "--aggregate-size", "100K")...)
	d.start()
	volser, src, trees, ids := repackScene(t, d)
	o := cliOpts{home: d.home}
	// Simulated tape time from here: mounts, locates and filemarks take
	// long enough that the kills fall inside the repack.
	d.flags = append(d.flags, "--time-scale", "0.03")
	d.restart()
	cliOK(t, o, "library", "repack", volser)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	during, repacks := 0, 1
	for k := 0; during < 5; k++ {
		if k == 20 {
			t.Fatalf("only %d of 20 kills fell inside a repack", during)
		}
		delay := time.Duration(100+rng.Intn(2500)) * time.Millisecond
		time.Sleep(delay)
		c := libraryCartridges(t, d.home)[volser]
		d.kill9()
		t.Logf("kill %d after %v: cartridge %s %+v", k+1, delay, volser, c)
		if c.Repacking {
			during++
		}
		d.startAfterKill9()
		checkTrees(t, d, src, trees, ids)
		if during < 5 && !libraryCartridges(t, d.home)[volser].Repacking {
			// Done: the old cartridge is scratch; on with the one
			// holding the files now.
			waitFor(t, time.Minute, volser+" scratch", func() (bool, string) {
				c := libraryCartridges(t, d.home)[volser]
				return c.State == "scratch", fmt.Sprintf("%+v", c)
			})
			volser = holder(t, d, ids)
			cliOK(t, o, "library", "repack", volser)
			repacks++
		}
	}
	waitFor(t, 3*time.Minute, volser+" scratch after the repack", func() (bool, string) {
		c := libraryCartridges(t, d.home)[volser]
		return c.State == "scratch" && !c.Repacking, fmt.Sprintf("%+v", c)
	})
	c := libraryCartridges(t, d.home)[volser]
	if c.TapeFiles != 1 || c.Generation < 2 {
		t.Fatalf("cartridge %s after the repack: %+v", volser, c)
	}
	checkTrees(t, d, src, trees, ids)
	t.Logf("%d repacks, %d kills while one ran", repacks, during)
}

// holder is the cartridge holding the kept batches' files (one).
func holder(t *testing.T, d *daemon, ids []string) string {
	t.Helper()
	vols := map[string]bool{}
	for _, id := range ids {
		var files []struct {
			Copies []struct {
				VOLSER string `json:"volser"`
			} `json:"copies"`
		}
		r := cliOK(t, cliOpts{home: d.home}, "ls", "-b", id, "-L", "file", "-F", "json")
		if err := json.Unmarshal([]byte(r.stdout), &files); err != nil {
			t.Fatalf("ls -L file -F json: %v\n%s", err, r.stdout)
		}
		for _, f := range files {
			for _, c := range f.Copies {
				vols[c.VOLSER] = true
			}
		}
	}
	if len(vols) != 1 {
		t.Fatalf("the kept batches are on %v, want one cartridge", vols)
	}
	for v := range vols {
		return v
	}
	return ""
}

// TestRepackTwoCopiesNeverFewer: with two copies of every file, one in
// each pool, a cartridge of pool-a half full of purged batches is
// repacked while the test watches the catalog: at every moment every
// live file has two copies on two cartridges of two pools (a repack
// switches a reference in the transaction that records the new copy),
// and after it the moved copies are on another cartridge of pool-a.
func TestRepackTwoCopiesNeverFewer(t *testing.T) {
	t.Parallel()
	// A slow drive: the repack takes seconds, long enough to be watched.
	d := startDaemon(t, append(fastFlags(), "--copies", "2", "--retention", "1s", "--cartridges", "6",
		"--time-scale", "0.05", "--tape-speed", "4M")...)
	o := cliOpts{home: d.home}
	src := t.TempDir()
	var keep []string
	for i := range 4 {
		tr := filepath.Join(src, fmt.Sprintf("run%d", i))
		writeFiles(t, tr, map[string]int{"a.dat": 1_500_000 + i, "sub/b.dat": 200_000, "sub/c.txt": 100})
		id := d.cpSynced(tr, 2*time.Minute)
		if i%2 == 1 {
			cliOK(t, o, "rm", "-b", id)
		} else {
			keep = append(keep, id)
		}
	}
	d.waitEvents("purged", 2, time.Minute)
	pools, _ := cartridgePools(t, o)
	var volser string
	for _, f := range filesJSON(t, o, mustUint(t, keep[0])) {
		for _, c := range f.Copies {
			if pools[c.VOLSER] == "pool-a" {
				volser = c.VOLSER
			}
		}
	}
	if volser == "" {
		t.Fatal("no copy in pool-a")
	}

	done := make(chan cliResult, 1)
	go func() { done <- runTapefs(t, o, "library", "repack", volser, "--wait") }()
	checks := 0
	for watching := true; watching; {
		select {
		case r := <-done:
			if r.code != 0 || !strings.Contains(r.stdout, volser+" repacked: scratch") {
				t.Fatalf("library repack %s --wait:\n%s", volser, r)
			}
			watching = false
		case <-time.After(50 * time.Millisecond):
		}
		for _, id := range keep {
			checkTwoCopies(t, o, mustUint(t, id), 2)
		}
		checks++
		if t.Failed() {
			t.Fatalf("a file had fewer than two copies in two pools during the repack of %s (check %d)", volser, checks)
		}
	}
	t.Logf("two copies in two pools at each of %d looks during the repack of %s", checks, volser)
	for _, id := range keep {
		for _, f := range filesJSON(t, o, mustUint(t, id)) {
			for _, c := range f.Copies {
				if c.VOLSER == volser {
					t.Errorf("%s still has a copy on the repacked %s", f.Path, volser)
				}
			}
		}
	}
	d.evict()
	for i, id := range keep {
		sh(t, "/", "diff -r "+q(filepath.Join(src, fmt.Sprintf("run%d", 2*i)))+" "+q(filepath.Join(d.ws("default"), id, fmt.Sprintf("run%d", 2*i))))
	}
}
