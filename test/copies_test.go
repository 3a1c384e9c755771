package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/api"
	"github.com/tapefs/tapefs/internal/human"
)

// copiesTree writes a tree of files of several sizes (one spans several
// MiB), a hard link, a symlink and an empty directory, and returns the md5
// of each regular file by its path below the tree's parent.
func copiesTree(t *testing.T, name string) (string, map[string]string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	for _, dir := range []string{"a", "b/c", "empty"} {
		if err := os.MkdirAll(filepath.Join(src, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeBig(t, filepath.Join(src, "a/big.dat"), 6<<20+123, 71)
	for i := range 6 {
		writeBig(t, filepath.Join(src, fmt.Sprintf("b/c/f%d.dat", i)), int64(1000+i*20_000), uint64(80+i))
	}
	sh(t, src, "ln a/big.dat hard.dat && ln -s b/c/f1.dat sym")
	sums := map[string]string{}
	out := sh(t, filepath.Dir(src), "find "+q(name)+" -type f -print0 | xargs -0 md5sum")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		sums[f[1]] = f[0]
	}
	if len(sums) != 8 {
		t.Fatalf("tree: %d files\n%s", len(sums), out)
	}
	return src, sums
}

// cartridgePools reads each cartridge's pool and state from library status -F json.
func cartridgePools(t *testing.T, o cliOpts) (pools, states map[string]string) {
	t.Helper()
	r := cliOK(t, o, "library", "status", "-F", "json")
	var lib struct {
		Cartridges []struct{ Volser, Pool, State string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &lib); err != nil {
		t.Fatalf("library status -F json: %v\n%s", err, r)
	}
	pools, states = map[string]string{}, map[string]string{}
	for _, c := range lib.Cartridges {
		pools[c.Volser], states[c.Volser] = c.Pool, c.State
	}
	return pools, states
}

// checkTwoCopies checks that every regular file owning data has n copies
// on cartridges that are not lost, each on another cartridge and (n ≤ 2)
// in another pool, and returns the cartridges holding them.
func checkTwoCopies(t *testing.T, o cliOpts, id uint64, n int) map[string]bool {
	t.Helper()
	pools, states := cartridgePools(t, o)
	used := map[string]bool{}
	data := 0
	for _, f := range filesJSON(t, o, id) {
		if f.Type != api.TypeFile || f.Link != 0 {
			continue
		}
		data++
		carts, ps := map[string]bool{}, map[string]bool{}
		for _, c := range f.Copies {
			if states[c.VOLSER] == "lost" {
				continue
			}
			carts[c.VOLSER], ps[pools[c.VOLSER]] = true, true
			used[c.VOLSER] = true
		}
		if len(carts) != n || len(ps) != min(n, 2) || ps[""] {
			t.Errorf("%s: copies %+v: want %d on as many cartridges in different pools (pools %v)", f.Path, f.Copies, n, pools)
		}
	}
	if data == 0 {
		t.Fatalf("batch %d: no data file listed", id)
	}
	return used
}

// md5Mount reads every file of the batch through the mount with md5sum
// and compares with the sums of the source.
func md5Mount(t *testing.T, d *daemon, id string, sums map[string]string) {
	t.Helper()
	out := sh(t, filepath.Join(d.ws("default"), id), "find . -type f -print0 | sort -z | xargs -0 md5sum")
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		got[strings.TrimPrefix(f[1], "./")] = f[0]
	}
	for p, want := range sums {
		if got[p] != want {
			t.Errorf("%s through the mount: md5 %q, want %s", p, got[p], want)
		}
	}
	if len(got) != len(sums) {
		t.Errorf("the mount lists %d files, the source %d", len(got), len(sums))
	}
}

// workspaceCopies reads the default workspace's copies and batches short of them.
func workspaceCopies(t *testing.T, o cliOpts) (int, int) {
	t.Helper()
	r := cliOK(t, o, "workspace", "list", "-F", "json")
	var wss []api.Workspace
	if err := json.Unmarshal([]byte(r.stdout), &wss); err != nil {
		t.Fatalf("workspace list -F json: %v\n%s", err, r)
	}
	for _, w := range wss {
		if w.Name == "default" {
			return w.Copies, w.CopiesMissing
		}
	}
	t.Fatalf("no workspace default\n%s", r)
	return 0, 0
}

func waitCopiesDone(t *testing.T, o cliOpts, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "the missing copies to be written", func() (bool, string) {
		_, short := workspaceCopies(t, o)
		return short == 0, fmt.Sprintf("%d batches short", short)
	})
}

// TestCopiesTwoPools: a workspace with copies = 2 (set by root through the
// command line) gets every file on two cartridges of two pools, and its
// batch is CACHED_SYNCED only after both copies' tape files are recorded:
// the log shows tape files on cartridges of both pools before the batch's
// "on tape" event, and status never says CACHED_SYNCED with less than
// both copies' bytes.
func TestCopiesTwoPools(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, append(fastFlags(), "--cartridges", "4")...)
	o := cliOpts{home: d.home}
	r := cliOK(t, o, "workspace", "set-copies", "default", "2")
	if !strings.Contains(r.stdout, "copies of default set to 2") {
		t.Errorf("set-copies: %s", r)
	}
	if c, _ := workspaceCopies(t, o); c != 2 {
		t.Fatalf("workspace default: copies %d after set-copies 2", c)
	}
	// Only root sets copies.
	wantCode(t, runTapefs(t, cliOpts{home: d.home, nobody: true}, "workspace", "set-copies", "default", "3"), 1)

	src, sums := copiesTree(t, "run")
	before := d.batchIDs("default")
	sh(t, "/", "cp -a "+q(src)+" "+q(d.put("default")+"/"))
	id := d.waitNewBatch("default", before, time.Minute)
	n, _ := strconv.ParseUint(id, 10, 64)
	waitFor(t, 2*time.Minute, "batch "+id+" on tape", func() (bool, string) {
		r := cliOK(t, o, "status", "-b", id, "-F", "json")
		var bs []api.Batch
		if err := json.Unmarshal([]byte(r.stdout), &bs); err != nil || len(bs) != 1 {
			t.Fatalf("status -F json: %v\n%s", err, r)
		}
		b := bs[0]
		if b.State.OnTape() && (b.OnTape != 2*b.Bytes || b.Copies != 2 || b.Progress != 1) {
			t.Fatalf("batch %s is %s with %d of 2×%d bytes on tape (copies %d, progress %v)", id, b.State, b.OnTape, b.Bytes, b.Copies, b.Progress)
		}
		return b.State.OnTape(), fmt.Sprintf("%s %d/%d", b.State, b.OnTape, 2*b.Bytes)
	})
	used := checkTwoCopies(t, o, n, 2)
	if len(used) < 2 {
		t.Fatalf("copies on %v", used)
	}

	// The log: tape files on both pools before the batch is on tape.
	pools, _ := cartridgePools(t, o)
	onTape := d.waitLogEvents(fmt.Sprintf("batch %s is on tape (2 copies, %s)", id, human.Size(2*dataBytes(t, o, n))), 1, 10*time.Second)[0]
	seen := map[string]bool{}
	for _, ev := range d.logEvents("") {
		if ev.str("event") == "aggregate" && ev.num("seq") < onTape.num("seq") {
			seen[pools[ev.str("volser")]] = true
		}
	}
	if !seen["pool-a"] || !seen["pool-b"] {
		t.Errorf("tape files before batch %s was on tape were in pools %v, want pool-a and pool-b", id, seen)
	}
	st := cliOK(t, o, "library", "status")
	if !strings.Contains(st.stdout, "POOL") || !strings.Contains(st.stdout, "pool-b") {
		t.Errorf("library status does not show pools\n%s", st)
	}
	d.evict()
	md5Mount(t, d, id, sums)
}

// dataBytes sums the sizes of a batch's data files.
func dataBytes(t *testing.T, o cliOpts, id uint64) int64 {
	t.Helper()
	var n int64
	for _, f := range filesJSON(t, o, id) {
		if f.Type == api.TypeFile && f.Link == 0 {
			n += f.Size
		}
	}
	return n
}

// TestCopiesRaisedAndCartridgeLost: raising the copies of a workspace from
// 1 to 2 writes the second copy of a batch already on tape and evicted (the
// status shows the workspace short of copies meanwhile); then one cartridge
// holding copies is marked lost: its copies are re-created from the other
// copies, and with that cartridge deleted from the library directory every
// file reads back identical through the mount.
func TestCopiesRaisedAndCartridgeLost(t *testing.T) {
	t.Parallel()
	// Simulated tape time is really waited (a twentieth of it: a mount
	// takes 1.3 s), so that a copy job, which mounts at least one
	// cartridge, takes long enough to be seen in status and on the page.
	d := startDaemon(t, "--time-scale", "0.05", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms", "--cartridges", "6")
	o := cliOpts{home: d.home}
	src, sums := copiesTree(t, "run")
	id := d.cpSynced(src, 2*time.Minute)
	n, _ := strconv.ParseUint(id, 10, 64)
	checkTwoCopies(t, o, n, 1)
	d.evict()

	r := cliOK(t, o, "workspace", "set-copies", "default", "2")
	if !strings.Contains(r.stdout, "the missing copies of 1 batches are being written") {
		t.Errorf("set-copies 2 does not say a batch gets copies: %s", r)
	}
	st := cliOK(t, o, "status")
	if !strings.Contains(st.stdout, "workspace default: 1 batches have fewer than 2 copies") {
		t.Errorf("status right after raising copies does not show the workspace short of copies\n%s", st)
	}
	waitCopiesDone(t, o, 2*time.Minute)
	if st := cliOK(t, o, "status"); strings.Contains(st.stdout, "fewer than") {
		t.Errorf("status still shows missing copies\n%s", st)
	}
	used := checkTwoCopies(t, o, n, 2)
	if xs := mustXattr(t, filepath.Join(d.ws("default"), id), "user.tapefs.state"); xs != "SYNCED" && xs != "CACHED_SYNCED" {
		t.Errorf("batch %s is %s after its second copy", id, xs)
	}

	// Lose one cartridge holding copies.
	var lost string
	for v := range used {
		if lost == "" || v < lost {
			lost = v
		}
	}
	r = cliOK(t, o, "library", "set", lost, "--state", "lost")
	if !strings.Contains(r.stdout, "state lost; the copies it held are being re-created for 1 batches") {
		t.Errorf("library set --state lost: %s", r)
	}
	wantCode(t, runTapefs(t, cliOpts{home: d.home, nobody: true}, "library", "set", lost, "--state", "ok"), 1)
	wantCode(t, runTapefs(t, o, "library", "set", lost, "--state", "gone"), 4)
	if st := cliOK(t, o, "status"); !strings.Contains(st.stdout, "fewer than 2 copies") {
		t.Errorf("status right after losing %s does not show missing copies\n%s", lost, st)
	}
	page := string(httpGetOK(t, statusURL(d)+"/").body)
	if !strings.Contains(page, ">1 short</span>") || !strings.Contains(page, `class="badge ca-lost"`) {
		t.Errorf("the status page does not show the workspace short of copies and %s lost:\n%s", lost, clip(page, 4000))
	}
	waitCopiesDone(t, o, 2*time.Minute)
	if page := string(httpGetOK(t, statusURL(d)+"/").body); strings.Contains(page, " short</span>") {
		t.Errorf("the status page still shows missing copies")
	}
	for v := range checkTwoCopies(t, o, n, 2) {
		if v == lost {
			t.Errorf("a copy counted on the lost cartridge %s", v)
		}
	}
	if _, states := cartridgePools(t, o); states[lost] != "lost" {
		t.Errorf("library status: %s is %q, want lost", lost, states[lost])
	}
	// The cartridge is gone for good: its tape files too.
	d.stop()
	if err := os.RemoveAll(filepath.Join(d.home, "cache", "objects")); err != nil {
		t.Fatal(err)
	}
	tapeFiles, _ := filepath.Glob(filepath.Join(d.home, "library", lost, "0*.tar"))
	if len(tapeFiles) < 2 {
		t.Fatalf("cartridge %s holds %v: want its label and tape files", lost, tapeFiles)
	}
	for _, f := range tapeFiles[1:] { // the label stays: the library still lists the slot
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	d.start()
	md5Mount(t, d, id, sums)
}

// TestCopiesKill9DuringSecondCopy: the daemon is killed with SIGKILL while
// it writes the second copy of a batch (copies raised from 1 to 2); after
// the restart nothing is lost, the copy is completed, and every file reads
// back from the new copy alone.
func TestCopiesKill9DuringSecondCopy(t *testing.T) {
	t.Parallel()
	// Slow drives (4 MB/s, a tenth of the time waited): writing the
	// 30 MB file takes about 0.75 s, long enough to be caught.
	flags := []string{"--time-scale", "0.1", "--tape-speed", "4M", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms", "--cartridges", "4"}
	d := startDaemon(t, flags...)
	o := cliOpts{home: d.home}
	src := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBig(t, filepath.Join(src, "big.dat"), 30<<20, 5)
	writeBig(t, filepath.Join(src, "small.dat"), 5000, 6)
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(sh(t, filepath.Dir(src), "md5sum run/big.dat run/small.dat")), "\n") {
		f := strings.Fields(line)
		sums[f[1]] = f[0]
	}
	id := d.cpSynced(src, 3*time.Minute)
	n, _ := strconv.ParseUint(id, 10, 64)
	first := checkTwoCopies(t, o, n, 1)

	cliOK(t, o, "workspace", "set-copies", "default", "2")
	waitFor(t, 2*time.Minute, "a drive writing the second copy", func() (bool, string) {
		r := cliOK(t, o, "library", "status", "-F", "json")
		var lib struct {
			Drives []struct{ State, Volser string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &lib); err != nil {
			t.Fatal(err)
		}
		for _, dr := range lib.Drives {
			if dr.State == "writing" && !first[dr.Volser] {
				return true, ""
			}
		}
		return false, r.stdout
	})
	d.kill9()
	d.startAfterKill9()
	waitCopiesDone(t, o, 3*time.Minute)
	checkTwoCopies(t, o, n, 2)
	// The first copy's cartridge is set aside: the new copy alone must
	// give every byte back.
	for v := range first {
		cliOK(t, o, "library", "set", v, "--state", "disabled")
	}
	waitCopiesDone(t, o, 3*time.Minute)
	d.evict()
	md5Mount(t, d, id, sums)

	// A new batch of the workspace (copies = 2 now) goes to tape as two
	// streams at once; a SIGKILL while they write loses nothing either,
	// and the batch reaches tape with both copies after the restart.
	src2 := filepath.Join(t.TempDir(), "run2")
	if err := os.Mkdir(src2, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBig(t, filepath.Join(src2, "big2.dat"), 30<<20, 7)
	sum2 := strings.Fields(sh(t, filepath.Dir(src2), "md5sum run2/big2.dat"))[0]
	before := d.batchIDs("default")
	sh(t, "/", "cp -a "+q(src2)+" "+q(d.put("default")+"/"))
	id2 := d.waitNewBatch("default", before, time.Minute)
	waitFor(t, 2*time.Minute, "a drive writing batch "+id2, func() (bool, string) {
		r := cliOK(t, o, "library", "status", "-F", "json")
		var lib struct {
			Drives []struct{ State string }
		}
		if err := json.Unmarshal([]byte(r.stdout), &lib); err != nil {
			t.Fatal(err)
		}
		for _, dr := range lib.Drives {
			if dr.State == "writing" {
				return true, ""
			}
		}
		return false, r.stdout
	})
	d.kill9()
	d.startAfterKill9()
	d.waitBatchState("default", id2, "CACHED_SYNCED", 3*time.Minute)
	n2, _ := strconv.ParseUint(id2, 10, 64)
	checkTwoCopies(t, o, n2, 2)
	d.evict()
	md5Mount(t, d, id2, map[string]string{"run2/big2.dat": sum2})
}
