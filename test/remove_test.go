package test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/cli"
)

// End-to-end tests of removal inside a batch (issue 8, faults 2 and 9):
// rm, mv out of a batch and rsync --delete only hide entries until the
// batch directory itself is removed; an unfinished removal is visible,
// undoable, undone after the grace period (across a kill -9 too), and
// never lets get report a partial restore as complete.

// removalFlags are fastFlags with a removal grace period.
func removalFlags(grace time.Duration) []string {
	return append(fastFlags(), "--remove-grace", grace.String())
}

// removalStatus is what these tests read of a batch's status (ls -F
// json): the fields that say whether a removal is in progress.
type removalStatus struct {
	State    catalog.State `json:"state"`
	Removing string        `json:"removing"`
	Removal  struct {
		Hidden int64     `json:"hidden"`
		Last   time.Time `json:"last"`
	} `json:"removal"`
}

// statusOf is the status of a batch through the CLI (ls -b ID -F json).
func statusOf(t *testing.T, d *daemon, id string) removalStatus {
	t.Helper()
	r := cliOK(t, cliOpts{home: d.home}, "ls", "-b", id, "-L", "batch", "-F", "json")
	var out []removalStatus
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("ls -b %s -L batch -F json: want one batch (%v)\n%s", id, err, r)
	}
	return out[0]
}

// undoneEvents are the removal-undone events of the daemon's log for a
// batch.
func undoneEvents(d *daemon, id string) []logEvent {
	var out []logEvent
	for _, e := range d.logEvents("") {
		if e.str("event") == "removal-undone" && strconv.FormatInt(e.num("batch"), 10) == id {
			out = append(out, e)
		}
	}
	return out
}

// waitUndone waits for the removal-undone event of a batch and returns it.
func waitUndone(t *testing.T, d *daemon, id string, timeout time.Duration) logEvent {
	t.Helper()
	var ev []logEvent
	waitFor(t, timeout, "a removal-undone event for batch "+id, func() (bool, string) {
		ev = undoneEvents(d, id)
		return len(ev) > 0, fmt.Sprint(len(ev))
	})
	return ev[len(ev)-1]
}

var undoneCount = regexp.MustCompile(`: (\d+) entr(?:y|ies) visible again`)

// undoneEntries reads how many entries an undo event brought back.
func undoneEntries(t *testing.T, e logEvent) int {
	t.Helper()
	m := undoneCount.FindStringSubmatch(e.str("message"))
	if m == nil {
		t.Fatalf("removal-undone event without a count of entries: %q", e.str("message"))
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// makeRemovalSource writes a small tree: e/a, e/d/b, e/d/c, e/keep.
func makeRemovalSource(t *testing.T, root string) {
	t.Helper()
	writeFiles(t, root, map[string]int{"a": 1000, "d/b": 2000, "d/c": 0, "keep": 30})
	setPastTimes(t, root)
}

// TestRmInBatchIsVisibleAndUndoable: rm of one file inside a batch exits 0
// and hides it, but the batch says so (status, ls, the page), get restores
// the file and exits 0, and undelete brings it back at once with an event.
// On main before the fix the removal was invisible, get left the file out
// with exit 0, and undelete said "not deleted".
func TestRmInBatchIsVisibleAndUndoable(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, removalFlags(time.Hour)...)
	o := cliOpts{home: d.home}
	src := filepath.Join(t.TempDir(), "e")
	makeRemovalSource(t, src)
	id := d.cpSynced(src, 2*time.Minute)
	e := filepath.Join(d.ws("default"), id, "e")

	// What rm and rmdir refuse anywhere, they refuse in a batch, and hide
	// nothing.
	expectFail(t, "/", []string{"Directory not empty"}, "rmdir "+q(e+"/d"), "rmdir "+q(filepath.Dir(e)))
	expectFail(t, "/", []string{"Is a directory"}, "rm "+q(e+"/d"))
	expectFail(t, "/", []string{"Not a directory"}, "rmdir "+q(e+"/a"))
	if st := statusOf(t, d, id); st.Removing != "" {
		t.Errorf("refused removals left %q", st.Removing)
	}

	sh(t, "/", "rm "+q(e+"/d/b"))
	if _, err := os.Lstat(filepath.Join(e, "d", "b")); !os.IsNotExist(err) {
		t.Fatalf("lstat of the removed file: %v; want ENOENT", err)
	}
	const want = "removal in progress (1 entry hidden)"
	if st := statusOf(t, d, id); st.Removing != want || st.Removal.Hidden != 1 {
		t.Errorf("status JSON: removing %q, %+v; want %q", st.Removing, st.Removal, want)
	}
	if r := cliOK(t, o, "status", "-b", id); !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "undelete -b "+id) {
		t.Errorf("tapefs status does not show the removal in progress\n%s", r)
	}
	if r := cliOK(t, o, "ls", "-w", "default", "-H"); !strings.Contains(r.stdout, want) {
		t.Errorf("tapefs ls does not show the removal in progress\n%s", r)
	}
	if r := cliOK(t, o, "ls", "-b", id, "-L", "file"); !regexp.MustCompile(`(?m)^/e/d/b\s.*\shidden\s`).MatchString(r.stdout) {
		t.Errorf("tapefs ls -L file does not list the hidden file as hidden\n%s", r)
	}
	batchDir := filepath.Join(d.ws("default"), id)
	if v, err := xattr(batchDir, "user.tapefs.removing"); err != nil || !strings.HasPrefix(v, "1 hidden since ") {
		t.Errorf("user.tapefs.removing of the batch directory: %q, %v; want \"1 hidden since ...\"", v, err)
	}
	page := string(httpGetOK(t, statusURL(d)+"/batches/"+id).body)
	if !strings.Contains(page, want) {
		t.Errorf("the batch page does not show %q", want)
	}
	if list := string(httpGetOK(t, statusURL(d)+"/batches").body); !strings.Contains(list, want) {
		t.Errorf("the batch list does not show %q", want)
	}
	started := 0
	for _, ev := range d.logEvents("") {
		if ev.str("event") == "removing" && strconv.FormatInt(ev.num("batch"), 10) == id {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d 'removing' events for batch %s; want 1", started, id)
	}

	// get restores everything, the hidden file too, and exits 0.
	restore := filepath.Join(t.TempDir(), "restore")
	r := runTapefs(t, o, "get", "-b", id, "-r", restore)
	wantCode(t, r, cli.ExitOK)
	if !strings.Contains(r.stderr, want) {
		t.Errorf("get does not say that it restores hidden entries\n%s", r)
	}
	sh(t, "/", "diff -r "+q(src)+" "+q(filepath.Join(restore, "e")))

	// undelete brings it back now, with an event.
	r = cliOK(t, o, "undelete", "-b", id)
	if !strings.Contains(r.stdout, "batch "+id+": the hidden entry is back") {
		t.Errorf("undelete does not say what came back\n%s", r)
	}
	if _, err := os.Lstat(filepath.Join(e, "d", "b")); err != nil {
		t.Fatalf("after undelete: %v", err)
	}
	sh(t, "/", "diff -r "+q(src)+" "+q(e))
	if st := statusOf(t, d, id); st.Removing != "" || st.Removal.Hidden > 0 {
		t.Errorf("after undelete the batch still shows a removal: %q %+v", st.Removing, st.Removal)
	}
	if v, err := xattr(batchDir, "user.tapefs.removing"); err == nil {
		t.Errorf("user.tapefs.removing after undelete: %q; want no such attribute", v)
	}
	if ev := waitUndone(t, d, id, 10*time.Second); undoneEntries(t, ev) != 1 || !strings.Contains(ev.str("message"), "by tapefs undelete") {
		t.Errorf("undo event: %q", ev.str("message"))
	}
	// Nothing left to undo: undelete of a live batch fails.
	wantCode(t, runTapefs(t, o, "undelete", "-b", id), cli.ExitFailed)
}

// bigRemovalSource writes n small files in 10 directories under root, so
// that rm -r of their batch takes long enough to be cut off.
func bigRemovalSource(t *testing.T, root string, n int) {
	t.Helper()
	for i := range 10 {
		if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%04d", i))
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setPastTimes(t, root)
}

// startRmR starts rm -r of a batch directory and waits until at least
// min entries are hidden; it fails the test if rm finished before.
func startRmR(t *testing.T, d *daemon, id string, min int64) *exec.Cmd {
	t.Helper()
	rm := exec.Command("rm", "-r", filepath.Join(d.ws("default"), id))
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rm.Wait() }()
	waitFor(t, 60*time.Second, fmt.Sprintf("rm -r to hide %d entries of batch %s", min, id), func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("rm -r of batch %s finished (%v) before the batch's status showed %d entries hidden (%+v)", id, err, min, statusOf(t, d, id))
		default:
		}
		st := statusOf(t, d, id)
		return st.Removal.Hidden >= min, fmt.Sprintf("%+v", st.Removal)
	})
	rm.Process.Kill()
	<-done // no unlink of rm comes after this
	return rm
}

// TestInterruptedRmRUndoneAfterGrace: rm -r of a batch killed part way
// leaves the batch live with "removal in progress"; when the grace period
// after the last removal ends, every entry is visible again and an event
// says which batch, how many entries and why.
func TestInterruptedRmRUndoneAfterGrace(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second
	d := startDaemon(t, removalFlags(grace)...)
	src := filepath.Join(t.TempDir(), "big")
	bigRemovalSource(t, src, 3000)
	id := d.cpSynced(src, 3*time.Minute)
	batch := filepath.Join(d.ws("default"), id)

	startRmR(t, d, id, 30)
	st := statusOf(t, d, id)
	// Shown until the undo (a loaded machine may read it after).
	if !st.State.Live() || !strings.HasPrefix(st.Removing, "removal in progress (") && len(undoneEvents(d, id)) == 0 {
		t.Fatalf("after rm -r was killed: state %s, removing %q; want a live batch with a removal in progress", st.State, st.Removing)
	}
	t.Logf("rm -r killed with %d entries hidden", st.Removal.Hidden)
	ev := waitUndone(t, d, id, grace+30*time.Second)
	if n := undoneEntries(t, ev); int64(n) < st.Removal.Hidden || !strings.Contains(ev.str("message"), "not removed within 5s") {
		t.Errorf("undo event %q: want at least %d entries and the reason", ev.str("message"), st.Removal.Hidden)
	}
	if ev.str("level") != "warn" {
		t.Errorf("undo event logged at %q; want warn", ev.str("level"))
	}
	if st := statusOf(t, d, id); st.Removing != "" {
		t.Errorf("after the undo: %q", st.Removing)
	}
	sh(t, "/", "diff -r "+q(src)+" "+q(filepath.Join(batch, "big")))
}

// TestKill9DuringRmR: the daemon is killed with SIGKILL in the middle of
// rm -r of a batch. After the restart the removal is still in progress
// (the grace period goes on from the last removal recorded), then undone
// with an event; nothing of the batch is lost.
func TestKill9DuringRmR(t *testing.T) {
	t.Parallel()
	const grace = 10 * time.Second
	d := startDaemon(t, removalFlags(grace)...)
	src := filepath.Join(t.TempDir(), "big")
	bigRemovalSource(t, src, 3000)
	id := d.cpSynced(src, 3*time.Minute)
	batch := filepath.Join(d.ws("default"), id)

	rm := exec.Command("rm", "-r", batch)
	if err := rm.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "rm -r to hide 30 entries", func() (bool, string) {
		st := statusOf(t, d, id)
		return st.Removal.Hidden >= 30, fmt.Sprintf("%+v", st.Removal)
	})
	d.kill9()
	if err := rm.Wait(); err == nil {
		t.Errorf("rm -r exited 0 although the daemon was killed under it")
	}
	d.allowErrors("Transport endpoint is not connected")
	d.startAfterKill9()
	st := statusOf(t, d, id)
	if time.Now().Before(st.Removal.Last.Add(grace - 2*time.Second)) {
		// Still inside the grace period: the removal must still show.
		if !strings.HasPrefix(st.Removing, "removal in progress (") || !st.State.Live() {
			t.Errorf("right after the restart: state %s, removing %q; want the removal still in progress", st.State, st.Removing)
		}
	} else {
		t.Logf("the restart took past the grace period (last removal %v); only the undo is checked", st.Removal.Last)
	}
	ev := waitUndone(t, d, id, grace+30*time.Second)
	t.Logf("undo: %s", ev.str("message"))
	sh(t, "/", "diff -r "+q(src)+" "+q(filepath.Join(batch, "big")))
}

// TestMvOutOfBatchKeepsArchive: GNU mv from a batch to another file system
// copies, then unlinks. The copy is made, the unlink only hides the file
// (visible as a removal in progress), and after the grace period the file
// is back in the batch, with an event. A full rm -r of the batch directory
// still deletes the batch, and undelete brings it back whole.
func TestMvOutOfBatchKeepsArchive(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second
	d := startDaemon(t, removalFlags(grace)...)
	o := cliOpts{home: d.home}
	src := filepath.Join(t.TempDir(), "e")
	makeRemovalSource(t, src)
	id := d.cpSynced(src, 2*time.Minute)
	batch := filepath.Join(d.ws("default"), id)
	e := filepath.Join(batch, "e")

	out := filepath.Join(t.TempDir(), "x")
	sh(t, "/", "mv "+q(e+"/a")+" "+q(out))
	sh(t, "/", "cmp "+q(src+"/a")+" "+q(out))
	// Shown until the undo (a loaded machine may read it after).
	if st := statusOf(t, d, id); st.Removing != "removal in progress (1 entry hidden)" && len(undoneEvents(d, id)) == 0 {
		t.Errorf("after mv out of the batch: removing %q; want it shown", st.Removing)
	}
	ev := waitUndone(t, d, id, grace+30*time.Second)
	if undoneEntries(t, ev) != 1 {
		t.Errorf("undo event: %q; want 1 entry", ev.str("message"))
	}
	sh(t, "/", "diff -r "+q(src)+" "+q(e))
	// The undo is in the feed, where a user who subscribed sees it.
	inFeed := false
	for _, en := range fetchFeed(t, statusURL(d), "").Entries {
		inFeed = inFeed || en.has("removal-undone") && strings.Contains(en.Summary, "1 entry visible again")
	}
	if !inFeed {
		t.Errorf("the feed has no removal-undone entry for batch %s", id)
	}
	files := filesJSON(t, o, mustID(t, id))
	if !regularPaths(files)["e/a"] {
		t.Errorf("ls -L file after the undo does not list e/a")
	}

	// rm -r of the batch directory still deletes the batch; nothing
	// brings it back but undelete.
	sh(t, "/", "rm -r "+q(batch))
	if slices.Contains(d.batchIDs("default"), id) {
		t.Fatalf("batch %s still listed after rm -r", id)
	}
	st := statusOf(t, d, id)
	if st.State != "DELETED" || st.Removing != "" {
		t.Fatalf("after rm -r: state %s, removing %q; want DELETED and no removal in progress", st.State, st.Removing)
	}
	// Past the grace period the batch stays deleted (no undo of a
	// completed removal).
	time.Sleep(grace + time.Second)
	if ev := undoneEvents(d, id); len(ev) != 1 {
		t.Errorf("%d undo events after rm -r completed; want the 1 from the mv", len(ev))
	}
	if st := statusOf(t, d, id); st.State != "DELETED" {
		t.Fatalf("a deleted batch came back by itself: %s", st.State)
	}
	cliOK(t, o, "undelete", "-b", id)
	sh(t, "/", "diff -r "+q(src)+" "+q(e))
}

func mustID(t *testing.T, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRsyncDeleteIntoBatchKeepsArchive: rsync -a --delete into a batch
// directory gets EROFS for what it creates; what it deletes is only hidden
// and comes back after the grace period: the batch ends as it was.
func TestRsyncDeleteIntoBatchKeepsArchive(t *testing.T) {
	t.Parallel()
	const grace = 5 * time.Second
	d := startDaemon(t, removalFlags(grace)...)
	src := filepath.Join(t.TempDir(), "e")
	makeRemovalSource(t, src)
	id := d.cpSynced(src, 2*time.Minute)
	e := filepath.Join(d.ws("default"), id, "e")
	// --delete removes every entry of e/: a, d/b, d/c, d, keep.
	const deleted = 5

	other := filepath.Join(t.TempDir(), "other")
	writeFiles(t, other, map[string]int{"new": 10})
	out, err := shErr("/", "rsync -a --delete "+q(other+"/")+" "+q(e+"/"))
	t.Logf("rsync -a --delete into the batch: %v\n%s", err, lastLines(out, 10))
	if err == nil {
		t.Errorf("rsync into a read-only batch exited 0")
	}
	// Shown until the undo (a loaded machine may read it after).
	if st := statusOf(t, d, id); st.Removal.Hidden != deleted && len(undoneEvents(d, id)) == 0 {
		t.Errorf("after rsync --delete: %+v; want %d entries hidden\n%s", st.Removal, deleted, out)
	}
	ev := waitUndone(t, d, id, grace+30*time.Second)
	if n := undoneEntries(t, ev); n != deleted {
		t.Errorf("undo event %q: want %d entries", ev.str("message"), deleted)
	}
	sh(t, "/", "diff -r "+q(src)+" "+q(e))
	if _, err := os.Lstat(filepath.Join(e, "new")); err == nil {
		t.Error("rsync created a file in a batch")
	}
}

// TestGetOfShortListingExits2: a batch whose catalog lists fewer entries
// than the batch holds (one file record lost) is restored in part, and get
// says so with exit 2, never 0.
func TestGetOfShortListingExits2(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	o := cliOpts{home: s.home}
	src := filepath.Join(t.TempDir(), "src")
	writeFiles(t, src, map[string]int{"a.dat": 100, "b.dat": 200, "c.dat": 300})
	id := batchID(t, cliOK(t, o, "put", src))
	cliOK(t, o, "status", "-b", idArg(id), "--wait")
	s.stop()
	lost := batchPath(filepath.Join(src, "b.dat"))
	dropFileRecord(t, s.home, id, lost)
	s.start()

	restore := filepath.Join(t.TempDir(), "restore")
	o.dir = t.TempDir()
	r := runTapefs(t, o, "get", "-b", idArg(id), "-r", restore)
	wantCode(t, r, cli.ExitPartial)
	wantLine(t, r, fmt.Sprintf("(batch %d)", id), "not restored")
	if got, want := fileMD5(t, filepath.Join(restore, batchPath(filepath.Join(src, "a.dat")))), fileMD5(t, filepath.Join(src, "a.dat")); got != want {
		t.Errorf("a.dat restored with md5 %s, want %s", got, want)
	}
}

// dropFileRecord deletes the record of one file of a batch from a stopped
// daemon's catalog (its directory entry stays): a catalog that lists fewer
// entries than the batch counts.
func dropFileRecord(t *testing.T, home string, batch uint64, path string) {
	t.Helper()
	db, err := openCatalogEngine(home)
	if err != nil {
		t.Fatalf("open the catalog of %s: %v", home, err)
	}
	defer db.Close()
	err = db.Update(func(b catalog.KVTxn) error {
		var doomed []byte
		err := b.Scan([]byte{'F'}, nil, false, func(k, v []byte) (bool, error) {
			var f catalog.File
			if len(k) != 9 || json.Unmarshal(v, &f) != nil {
				return true, nil
			}
			if f.Batch == batch && f.Path == path {
				doomed = slices.Clone(k)
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if doomed == nil {
			return fmt.Errorf("no file %s in batch %d", path, batch)
		}
		return b.Delete(doomed)
	})
	if err != nil {
		t.Fatalf("drop a file record from the catalog of %s: %v", home, err)
	}
}
