package test

import (
	"bufio"
	"crypto/md5"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Recall through the mount in tape order (issue 10): tools that read a
// batch one file at a time (cp -r) or many at once in random order
// (xargs -P16) must cost one mount per cartridge and no locate backwards.

// metrics reads the daemon's Prometheus counters without labels.
func metrics(t *testing.T, d *daemon) map[string]float64 {
	t.Helper()
	resp, err := http.Get(statusURL(d) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if i := strings.IndexByte(line, '{'); i >= 0 {
			// A labelled series adds to NAME{*}, the sum over its labels.
			j := strings.LastIndexByte(line, '}')
			name, val, ok = line[:i]+"{*}", strings.TrimSpace(line[j+1:]), j > i
		}
		if !ok {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// delta is after-before of one counter.
func delta(before, after map[string]float64, name string) float64 { return after[name] - before[name] }

// makeDataTree writes dirs×files files of size bytes of pseudo-random data
// under root and returns "md5  ./path" lines sorted (md5sum's format).
func makeDataTree(t *testing.T, root string, dirs, files int, size int64) []string {
	t.Helper()
	for i := 0; i < dirs; i++ {
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%02d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < files; j++ {
			writeBig(t, filepath.Join(root, fmt.Sprintf("d%02d", i), fmt.Sprintf("f%04d.dat", j)), size, uint64(i*10_000+j+1))
		}
	}
	return md5Lines(t, root)
}

// md5Lines is `find . -type f | xargs md5sum | sort` in dir.
func md5Lines(t *testing.T, dir string) []string {
	t.Helper()
	out := sh(t, dir, "find . -type f -print0 | xargs -0 md5sum | sort -k2")
	return strings.Split(strings.TrimSpace(out), "\n")
}

// fileCartridges is the cartridges of each regular file under dir, from
// its user.tapefs.tapes, first copy first.
func fileCartridges(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		v, err := xattr(p, "user.tapefs.tapes")
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out[p] = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// batchCartridges is the set of cartridges holding the files of a batch
// directory.
func batchCartridges(t *testing.T, dir string) map[string]bool {
	t.Helper()
	carts := map[string]bool{}
	for _, cs := range fileCartridges(t, dir) {
		for _, c := range cs {
			carts[c] = true
		}
	}
	return carts
}

// multiCartridgeFlags: no simulated tape time, a virtual library of small
// cartridges (a batch of a few MB spans several) and the default recall
// linger (2 s): what a user gets.
func multiCartridgeFlags(cartSize string) []string {
	return []string{"--time-scale", "0", "--settle", "1s", "--flush-age", "1s", "--cartridges", "12", "--cartridge-size", cartSize}
}

// TestTraversalRecallsInTapeOrder reads an offline batch spread over
// several cartridges with cp -r, and again (evicted) with xargs -P16 md5sum
// in random order: each time one mount per cartridge of the batch, no
// backward locate, and the bytes are the sealed ones.
func TestTraversalRecallsInTapeOrder(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, multiCartridgeFlags("6M")...)
	src := filepath.Join(t.TempDir(), "run")
	want := makeDataTree(t, src, 4, 60, 64<<10) // 15 MiB in 240 files
	id := d.cpSynced(src, 3*time.Minute)
	batch := filepath.Join(d.ws("default"), id, "run")
	carts := batchCartridges(t, batch)
	if len(carts) < 2 {
		t.Fatalf("the batch is on %d cartridges (%v); the test needs several", len(carts), carts)
	}
	t.Logf("batch %s on %d cartridges %v", id, len(carts), carts)

	for _, reader := range []string{"cp -r", "xargs -P16"} {
		d.evict()
		before := metrics(t, d)
		dest := filepath.Join(t.TempDir(), "restore")
		script := "cp -r " + q(batch) + " " + q(dest)
		if reader == "xargs -P16" {
			script = "cd " + q(batch) + " && find . -type f | shuf | xargs -P16 -n1 md5sum | sort -k2"
		}
		t0 := time.Now()
		out := sh(t, "/", script)
		after := metrics(t, d)
		var got []string
		if reader == "cp -r" {
			got = md5Lines(t, dest)
		} else {
			got = strings.Split(strings.TrimSpace(out), "\n")
		}
		mounts := delta(before, after, "tapefs_tape_mounts_total")
		backward := delta(before, after, "tapefs_recall_backward_locates_total")
		t.Logf("%s: %v, %.0f mounts, %.0f locates, %.0f backward, %.0f passes, %.0f staged ahead, %.0f simulated tape s",
			reader, time.Since(t0).Round(time.Millisecond), mounts, delta(before, after, "tapefs_tape_locates_total"), backward,
			delta(before, after, "tapefs_recall_passes_total"), delta(before, after, "tapefs_recall_staged_ahead_files_total"),
			delta(before, after, "tapefs_tape_simulated_seconds_total"))
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: md5s differ from the source\ngot  %.400q\nwant %.400q", reader, got, want)
		}
		if mounts > float64(len(carts)) {
			t.Errorf("%s: %.0f mounts for a batch on %d cartridges; want one per cartridge", reader, mounts, len(carts))
		}
		if backward != 0 {
			t.Errorf("%s: %.0f locates backwards within a cartridge pass; want none: %v\npasses: %v\ntraversals: %v", reader, backward,
				d.logEvents("recall behind the head: locating backwards"), d.logEvents("recall pass done"), d.logEvents("traversal detected: staging the batch ahead"))
		}
	}
}

// slowTraversalFlags: tape slow enough (about 8 MiB/s real) that a
// traversal of a few tens of MB is still being staged ahead when the test
// acts.
func slowTraversalFlags(extra ...string) []string {
	return append([]string{"--time-scale", "0.02", "--tape-speed", "163840", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms"}, extra...)
}

// cacheFiles lists what HOME/cache/objects holds: objects and partial
// objects.
func cacheFiles(d *daemon) (objects, partials int) {
	_ = filepath.Walk(filepath.Join(d.home, "cache", "objects"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if strings.HasSuffix(p, ".partial") {
				partials++
			} else {
				objects++
			}
		}
		return nil
	})
	return
}

// midTraversal puts a batch of 2 directories of `files` files of 1 MiB,
// evicts it and starts cp -r of it: it returns once the daemon stages the
// traversal ahead and a few files are recalled, with cp still running.
// want is the batch's md5sum lines.
func midTraversal(t *testing.T, files int) (d *daemon, cp *exec.Cmd, id, batch string, want []string) {
	t.Helper()
	d = startDaemon(t, slowTraversalFlags()...)
	src := filepath.Join(t.TempDir(), "run")
	want = makeDataTree(t, src, 2, files, 1<<20)
	id = d.cpSynced(src, 3*time.Minute)
	batch = filepath.Join(d.ws("default"), id, "run")
	d.evict()

	cp, _ = startCmd(t, "cp", "-r", batch, filepath.Join(t.TempDir(), "restore"))
	d.waitLogEvents("traversal detected: staging the batch ahead", 1, time.Minute)
	// A few files recalled (cp's own or staged ahead: cp keeps up with
	// the drive, so it often asks for a file before it is staged).
	waitFor(t, time.Minute, "a few files recalled", func() (bool, string) {
		objects, _ := cacheFiles(d)
		return objects >= 3, fmt.Sprint(objects)
	})
	return d, cp, id, batch, want
}

// TestKilledTraversalStopsStagingAhead kills cp -r mid-traversal: staging
// ahead stops on its own (the rest of the batch is not recalled), nothing
// is left half-written, pinned or open (eviction empties the cache), and
// the batch then reads correctly.
func TestKilledTraversalStopsStagingAhead(t *testing.T) {
	t.Parallel()
	// 80 MiB: 10 s of tape at this speed.
	d, cp, id, batch, want := midTraversal(t, 40)
	_ = cp.Process.Signal(syscall.SIGKILL)
	_ = cp.Wait()
	stopped := d.waitLogEvents("staging ahead stopped: the traversal stopped opening files", 1, time.Minute)
	t.Logf("staging ahead stopped: %v", stopped)
	if stopped[0].num("dropped") == 0 {
		t.Errorf("staging ahead stopped with nothing left to drop: the test did not catch it mid-traversal")
	}
	// The pass that was staging finishes the file in hand and gives its
	// drive back; nothing more is recalled.
	waitFor(t, time.Minute, "the drives to be free and the recall queue empty", func() (bool, string) {
		m := metrics(t, d)
		return m["tapefs_recall_queue_length"] == 0 && m["tapefs_drive_busy{*}"] == 0, fmt.Sprintf("queue %v, drives busy %v", m["tapefs_recall_queue_length"], m["tapefs_drive_busy{*}"])
	})
	staged := metrics(t, d)["tapefs_recall_staged_ahead_files_total"]
	time.Sleep(time.Second) // not a wait for a condition: checks that nothing more happens
	m := metrics(t, d)
	if m["tapefs_recall_staged_ahead_files_total"] != staged {
		t.Errorf("staging ahead went on after it stopped: %v then %v files", staged, m["tapefs_recall_staged_ahead_files_total"])
	}
	if staged >= 80 {
		t.Errorf("the whole batch (%v files) was staged although its reader was killed", staged)
	}
	objects, partials := cacheFiles(d)
	if partials != 0 {
		t.Errorf("%d partial objects left in the cache", partials)
	}
	if used := m["tapefs_cache_used_bytes"]; used != float64(objects)*(1<<20) {
		t.Errorf("cache accounts %v bytes for %d objects of 1 MiB: space leaked", used, objects)
	}
	// Nothing pinned or open: evicting the batch empties the cache.
	cliOK(t, cliOpts{home: d.home}, "cache", "evict", "-b", id)
	if objects, partials := cacheFiles(d); objects+partials != 0 {
		t.Errorf("after evicting the batch, %d objects and %d partial objects remain (pinned or open?)", objects, partials)
	}
	if got := md5Lines(t, batch); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("batch reads differently after the killed traversal")
	}
}

// TestKill9DuringStagingAhead kills the daemon with SIGKILL while a
// traversal is being staged ahead; after a restart every file reads back
// whole and right (no short or damaged object is served).
func TestKill9DuringStagingAhead(t *testing.T) {
	t.Parallel()
	d, cp, _, batch, want := midTraversal(t, 30)
	// Kill while an object is being staged (a partial file in the cache).
	waitFor(t, time.Minute, "an object being staged", func() (bool, string) {
		_, partials := cacheFiles(d)
		return partials > 0, "no partial object"
	})
	d.kill9()
	_ = cp.Process.Kill()
	_ = cp.Wait()
	d.startAfterKill9()
	if _, partials := cacheFiles(d); partials != 0 {
		t.Errorf("%d partial objects after the restart", partials)
	}
	if got := md5Lines(t, batch); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after kill -9 during staging ahead the batch reads differently:\ngot  %.300q\nwant %.300q", got, want)
	}
}

// TestStagingAheadInANearlyFullCache: with a cache that holds a third of a
// batch, a traversal still reads every byte right, the cache never goes
// over its limit, a file held open elsewhere stays readable throughout,
// and a read of another batch succeeds while the traversal stages ahead.
func TestStagingAheadInANearlyFullCache(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, slowTraversalFlags("--cache-size", "24M")...)
	src := filepath.Join(t.TempDir(), "run")
	want := makeDataTree(t, src, 2, 30, 1<<20) // 60 MiB
	id := d.cpSynced(src, 3*time.Minute)
	otherSrc := filepath.Join(t.TempDir(), "other")
	otherWant := makeDataTree(t, otherSrc, 1, 1, 4<<20)
	d.cpSynced(otherSrc, 3*time.Minute)
	batch := filepath.Join(d.ws("default"), id, "run")
	d.evict()
	other := filepath.Join(d.ws("default"))

	// A reader reads the first file and holds it open for the whole
	// traversal: the oldest object, first in line for eviction if it were
	// not in use.
	held := filepath.Join(batch, "d00", "f0000.dat")
	f, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || fmt.Sprintf("%x", md5.Sum(b)) != strings.Fields(want[0])[0] {
		t.Fatalf("held file: %v, md5 %x; want %s", err, md5.Sum(b), want[0])
	}

	dest := filepath.Join(t.TempDir(), "restore")
	cp, cpOut := startCmd(t, "cp", "-r", batch, dest)
	d.waitLogEvents("traversal detected: staging the batch ahead", 1, time.Minute)
	// Another batch's file is read while the traversal fills the cache.
	otherFile := sh(t, other, "ls -d */other/d00/f0000.dat")
	got := sh(t, other, "md5sum "+strings.TrimSpace(otherFile))
	if strings.Fields(got)[0] != strings.Fields(otherWant[0])[0] {
		t.Errorf("read of another batch during the traversal: %q, want %s", got, otherWant[0])
	}
	done := make(chan error, 1)
	go func() { done <- cp.Wait() }()
	var maxUsed, limit float64
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("cp -r: %v: %s", err, cpOut.String())
			}
			waiting = false
		case <-time.After(200 * time.Millisecond):
		}
		m := metrics(t, d)
		maxUsed, limit = max(maxUsed, m["tapefs_cache_used_bytes"]), m["tapefs_cache_limit_bytes"]
	}
	if maxUsed > limit {
		t.Errorf("cache used %v bytes, over its limit %v", maxUsed, limit)
	}
	if got := md5Lines(t, dest); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cp -r through a nearly full cache: md5s differ")
	}
	if st := mustXattr(t, held, "user.tapefs.state"); st != "online" {
		t.Errorf("the file held open is %q after the traversal; want online (an object in use is never evicted)", st)
	}
	if b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<30)); err != nil || fmt.Sprintf("%x", md5.Sum(b)) != strings.Fields(want[0])[0] {
		t.Errorf("the held file reads differently after the traversal: %v", err)
	}
	m := metrics(t, d)
	t.Logf("cache limit %v, max used %v; staged ahead %v files, evictions %v", limit, maxUsed,
		m["tapefs_recall_staged_ahead_files_total"], m["tapefs_cache_evictions_total"])
}
