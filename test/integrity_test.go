package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/api"
)

// End-to-end tests of the cache's integrity (issue 8, fault 4) and of a
// cartridge that lost a tape file (fault 6).

// fileByPath finds a regular file of a batch by its path in the batch.
func fileByPath(t *testing.T, files []api.FileInfo, path string) api.FileInfo {
	t.Helper()
	for _, f := range files {
		if f.Path == path && f.Type == api.TypeFile {
			return f
		}
	}
	t.Fatalf("no file %q in the batch's listing", path)
	return api.FileInfo{}
}

// objectPath is where the cache keeps a file's object.
func (d *daemon) objectPath(id uint64) string {
	return filepath.Join(d.home, "cache", "objects", fmt.Sprintf("%02x", id&0xff), strconv.FormatUint(id, 10))
}

// flipBytes inverts 8 bytes of a file at off, as a bad disk or a stray
// write would, keeping its size.
func flipBytes(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("damage %s: %v", path, err)
	}
	defer f.Close()
	b := make([]byte, 8)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("damage %s: %v", path, err)
	}
	for i := range b {
		b[i] ^= 0xff
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatalf("damage %s: %v", path, err)
	}
	t.Logf("flipped 8 bytes at %d of %s", off, path)
}

// damageEvents are the daemon's log lines of damaged-object events that
// mention text.
func (d *daemon) damageEvents(text string) []logEvent {
	var out []logEvent
	for _, e := range d.logEvents("") {
		if e.str("event") == "damaged-object" && strings.Contains(e.str("message"), text) {
			out = append(out, e)
		}
	}
	return out
}

// TestDamagedCachedObjectIsFoundAndRecalled damages the cached objects of
// two files of a CACHED_SYNCED batch. tapefs verify reports the first
// (exit 1) and drops it; the background scrub finds the second and drops
// it; md5sum through the mount then gives the right sums (recalled from
// tape), and events name both files.
func TestDamagedCachedObjectIsFoundAndRecalled(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	d.allowErrors("damaged-object", "the cached copy is damaged")
	src := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBig(t, filepath.Join(src, "a.dat"), 3<<20+17, 11)
	writeBig(t, filepath.Join(src, "b.dat"), 200_000, 12)
	writeBig(t, filepath.Join(src, "c.dat"), 5000, 13)
	want := map[string]string{}
	for _, n := range []string{"a.dat", "b.dat", "c.dat"} {
		want[n] = fileMD5(t, filepath.Join(src, n))
	}
	id := d.cpSynced(src, 2*time.Minute)
	bid, _ := strconv.ParseUint(id, 10, 64)
	o := cliOpts{home: d.home}
	files := filesJSON(t, o, bid)
	a, b := fileByPath(t, files, "run/a.dat"), fileByPath(t, files, "run/b.dat")
	batch := filepath.Join(d.ws("default"), id, "run")

	// 1. tapefs verify: a clean cache passes, a damaged object is
	// reported and exits 1.
	r := cliOK(t, o, "verify", "--cache", "-b", id)
	if !strings.Contains(r.stdout, "checked 3 cached files") || !strings.Contains(r.stdout, "0 damaged") {
		t.Errorf("verify of a clean batch: want 3 files checked, 0 damaged\n%s", r)
	}
	flipBytes(t, d.objectPath(a.ID), 1<<20)
	r = runTapefs(t, o, "verify", "--cache", "-w", "default")
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, "DAMAGED batch "+id) || !strings.Contains(r.stdout, `"run/a.dat"`) ||
		!strings.Contains(r.stdout, "md5 sealed "+want["a.dat"]) || !strings.Contains(r.stdout, "recalled from TF") {
		t.Errorf("verify should name run/a.dat with its sealed md5 and say it is recalled\n%s", r)
	}
	if got := fileMD5(t, filepath.Join(batch, "a.dat")); got != want["a.dat"] {
		t.Errorf("md5sum of a.dat through the mount after verify: %s; want %s", got, want["a.dat"])
	}
	if ev := d.damageEvents("run/a.dat"); len(ev) != 1 || ev[0].str("volser") == "" {
		t.Errorf("want one damaged-object event naming run/a.dat and its cartridge; got %v", ev)
	}
	cliOK(t, o, "verify", "--cache", "-b", id) // the recalled copy is good

	// 2. The background scrub: restarted with a fast scrub, the daemon
	// finds the damaged b.dat by itself and drops it.
	d.stop()
	flipBytes(t, d.objectPath(b.ID), 4096)
	d.flags = append(d.flags, "--scrub-rate", "1G", "--scrub-interval", "200ms")
	d.start()
	waitFor(t, time.Minute, "the scrub to report run/b.dat", func() (bool, string) {
		n := len(d.damageEvents("run/b.dat"))
		return n > 0, fmt.Sprintf("%d events", n)
	})
	if ev := d.damageEvents("run/b.dat"); !strings.Contains(ev[0].str("message"), "background scrub") {
		t.Errorf("the event of b.dat should say the scrub found it: %v", ev[0])
	}
	if got := fileMD5(t, filepath.Join(batch, "b.dat")); got != want["b.dat"] {
		t.Errorf("md5sum of b.dat through the mount after the scrub: %s; want %s", got, want["b.dat"])
	}
	sh(t, batch, "md5sum c.dat a.dat >/dev/null")
	if st := mustXattr(t, filepath.Join(d.ws("default"), id), "user.tapefs.state"); st != "CACHED_SYNCED" {
		t.Errorf("batch %s is %s after the repairs; want CACHED_SYNCED", id, st)
	}
	if n := len(d.damageEvents("")); n != 2 {
		t.Errorf("%d damaged-object events; want 2 (a.dat by verify, b.dat by the scrub)", n)
	}
}

// TestDamagedObjectNeverReachesTape damages the object of a sealed batch
// before it is written to tape. Migration finds it: that batch is FAILED
// with the file and both md5s in its reason, gets no tape copy, keeps its
// data and reads of the file give EIO; another batch of the same flush
// reaches tape.
func TestDamagedObjectNeverReachesTape(t *testing.T) {
	t.Parallel()
	// No scrub: migration itself must catch it. No flush until restarted.
	d := startDaemon(t, "--time-scale", "0", "--settle", "1s", "--flush-age", "1h", "--recall-linger", "1ms", "--scrub-rate", "0")
	d.allowErrors("damaged-object", "the cached copy is damaged")
	root := t.TempDir()
	for _, n := range []string{"good", "bad"} {
		if err := os.Mkdir(filepath.Join(root, n), 0o755); err != nil {
			t.Fatal(err)
		}
		writeBig(t, filepath.Join(root, n, "big.dat"), 2<<20+5, 21)
		writeBig(t, filepath.Join(root, n, "small.dat"), 3000, 22)
	}
	wantBig := fileMD5(t, filepath.Join(root, "bad", "big.dat"))
	wantSmall := fileMD5(t, filepath.Join(root, "bad", "small.dat"))
	ids := map[string]string{}
	for _, n := range []string{"good", "bad"} {
		before := d.batchIDs("default")
		sh(t, "/", "cp -a "+q(filepath.Join(root, n))+" "+q(d.put("default")+"/"))
		seal(t, filepath.Join(d.put("default"), n))
		ids[n] = d.waitNewBatch("default", before, time.Minute)
	}
	o := cliOpts{home: d.home}
	bad, _ := strconv.ParseUint(ids["bad"], 10, 64)
	files := filesJSON(t, o, bad)
	big, small := fileByPath(t, files, "bad/big.dat"), fileByPath(t, files, "bad/small.dat")
	// The seal returns SEALING; CACHED once its md5s are recorded (from
	// the intact bytes), and it stays so until the flush.
	d.waitBatchState("default", ids["bad"], "CACHED", time.Minute)
	d.stop()
	flipBytes(t, d.objectPath(big.ID), 1<<20)
	flipBytes(t, d.objectPath(small.ID), 100)
	damaged, err := os.ReadFile(d.objectPath(big.ID))
	if err != nil {
		t.Fatal(err)
	}
	d.flags = []string{"--time-scale", "0", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms", "--scrub-rate", "0"}
	d.start()
	d.waitBatchState("default", ids["good"], "CACHED_SYNCED", 2*time.Minute)
	// Either way the damaged batch's fate is settled at once: FAILED, or
	// (the fault) CACHED_SYNCED from the damaged bytes.
	waitFor(t, 2*time.Minute, "batch "+ids["bad"]+" to be FAILED", func() (bool, string) {
		st, err := xattr(filepath.Join(d.ws("default"), ids["bad"]), "user.tapefs.state")
		if st == "CACHED_SYNCED" {
			t.Fatalf("batch %s went to tape from a damaged object (CACHED_SYNCED); want FAILED", ids["bad"])
		}
		return st == "FAILED", fmt.Sprint(st, err)
	})

	st := batchJSON(t, o, bad)
	if st.OnTape != 0 || !st.Synced.IsZero() {
		t.Errorf("batch %d: %d bytes on tape, synced %v; want nothing on tape", bad, st.OnTape, st.Synced)
	}
	// Members are written in file order; whichever damaged file came
	// first stopped the flush. The reason names it with both md5s.
	okReason := strings.Contains(st.Reason, "bad/big.dat") && strings.Contains(st.Reason, wantBig) ||
		strings.Contains(st.Reason, "bad/small.dat") && strings.Contains(st.Reason, wantSmall)
	if !okReason || !strings.Contains(st.Reason, "damaged") {
		t.Errorf("reason of batch %d should name the damaged file and its sealed md5: %q", bad, st.Reason)
	}
	for _, f := range filesJSON(t, o, bad) {
		if len(f.Copies) > 0 {
			t.Errorf("%s of the FAILED batch has a tape copy %v", f.Path, f.Copies)
		}
	}
	if ev := d.damageEvents("bad/"); len(ev) == 0 {
		t.Errorf("no damaged-object event for batch %d", bad)
	}
	// The data is kept, as it was.
	if kept, err := os.ReadFile(d.objectPath(big.ID)); err != nil || string(kept) != string(damaged) {
		t.Errorf("the damaged object of bad/big.dat was not kept as it was (%v)", err)
	}
	// Reading the known-damaged file through the mount is EIO, not its bytes.
	p := filepath.Join(d.ws("default"), ids["bad"], "bad")
	known := "big.dat"
	if strings.Contains(st.Reason, "bad/small.dat") {
		known = "small.dat"
	}
	if out, err := shErr(p, "md5sum "+known); err == nil || !strings.Contains(out, "Input/output error") {
		t.Errorf("md5sum of the damaged %s through the mount: %v\n%s\nwant Input/output error", known, err, out)
	}
	// tapefs verify reports it too, and keeps it.
	r := runTapefs(t, o, "verify", "--cache", "-b", ids["bad"])
	wantCode(t, r, 1)
	if !strings.Contains(r.stdout, "kept (the only copy") {
		t.Errorf("verify of the FAILED batch should report the kept damaged copy\n%s", r)
	}
	if _, err := os.Stat(d.objectPath(big.ID)); err != nil {
		t.Errorf("verify dropped the only copy of bad/big.dat: %v", err)
	}
	// After a restart (the scrub still off) it is still refused: the
	// FAILED batches' only copies are checked again at start.
	d.restart()
	waitFor(t, time.Minute, "the damaged "+known+" to be refused again after a restart", func() (bool, string) {
		out, err := shErr(p, "md5sum "+known)
		return err != nil && strings.Contains(out, "Input/output error"), out
	})
}

// TestMissingTapeFileIsEIO deletes the tape file holding an offline
// file's only copy: reading it through the mount gives EIO (not ENOENT),
// and an event names the cartridge and the tape file.
func TestMissingTapeFileIsEIO(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, fastFlags()...)
	d.allowErrors("recall", "medium error")
	src := filepath.Join(t.TempDir(), "lost")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeBig(t, filepath.Join(src, "f.dat"), 1<<20, 31)
	id := d.cpSynced(src, 2*time.Minute)
	bid, _ := strconv.ParseUint(id, 10, 64)
	f := fileByPath(t, filesJSON(t, cliOpts{home: d.home}, bid), "lost/f.dat")
	if len(f.Copies) != 1 {
		t.Fatalf("lost/f.dat has copies %v; want one", f.Copies)
	}
	c := f.Copies[0]
	d.evict()
	tapeFile := filepath.Join(d.home, "library", c.VOLSER, fmt.Sprintf("%06d.tar", c.TapeFile))
	if err := os.Remove(tapeFile); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.ws("default"), id, "lost", "f.dat")
	out, err := shErr("/", "cat "+q(p)+" >/dev/null")
	if err == nil || !strings.Contains(out, "Input/output error") {
		t.Errorf("cat of a file whose tape file is gone: %v\n%s\nwant Input/output error", err, out)
	}
	var ev []logEvent
	waitFor(t, 30*time.Second, "a recall-failed event naming the cartridge", func() (bool, string) {
		ev = ev[:0]
		for _, e := range d.logEvents("") {
			if e.str("event") == "recall-failed" && e.str("volser") == c.VOLSER {
				ev = append(ev, e)
			}
		}
		return len(ev) > 0, fmt.Sprint(len(ev))
	})
	msg := ev[0].str("message")
	if !strings.Contains(msg, "cartridge "+c.VOLSER) || !strings.Contains(msg, fmt.Sprintf("tape file %d", c.TapeFile)) || !strings.Contains(msg, "lost/f.dat") {
		t.Errorf("the event should name the file, cartridge %s and tape file %d: %q", c.VOLSER, c.TapeFile, msg)
	}
}
