package test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The recall storm guard (issue 10): what a user sees while a recall
// waits (queue position, estimated time of arrival), a cap on a
// workspace's recalled-but-unread bytes, and fairness across workspaces.

// fileTapes is the first cartridge of each regular file under dir.
func fileTapes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p, carts := range fileCartridges(t, dir) {
		out[p] = "" // an empty file has no copy on tape
		if len(carts) > 0 {
			out[p] = carts[0]
		}
	}
	return out
}

// etaBound is the error the estimate is held to: the larger of 2 s and
// 15 % of the estimate. The model is the library's own timing model, so
// what differs is only what it cannot see: the daemon's and the disk's own
// time (a few ms per MiB here), sleep overshoot on a busy machine, and the
// 100 ms at which the test polls.
func etaBound(eta float64) float64 { return math.Max(2, 0.15*eta) }

// TestRecallETAMatchesArrival: an offline batch on 2 cartridges, 1 drive,
// real LTO-9 timings (--time-scale 1). Right after asking for 4 files (2
// on each cartridge), user.tapefs.eta of each is read; the test records
// when each comes online and holds the estimate to etaBound. While they
// wait, user.tapefs.state says staging with a queue position, the batch
// directory, `tapefs status` and the status page show the queue.
func TestRecallETAMatchesArrival(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "--time-scale", "0", "--settle", "1s", "--flush-age", "1s", "--drives", "1", "--cartridges", "2", "--cartridge-size", "16M")
	src := filepath.Join(t.TempDir(), "run")
	makeDataTree(t, src, 1, 8, 3<<20) // 24 MiB: does not fit one cartridge
	id := d.cpSynced(src, 3*time.Minute)
	batchDir := filepath.Join(d.ws("default"), id)
	tapes := fileTapes(t, batchDir)
	byCart := map[string][]string{}
	for p, c := range tapes {
		byCart[c] = append(byCart[c], p)
	}
	if len(byCart) != 2 {
		t.Fatalf("the batch's files are on %d cartridges (%v); the test needs 2", len(byCart), byCart)
	}
	var files []string
	for _, ps := range byCart {
		sort.Strings(ps)
		files = append(files, ps[len(ps)-2:]...) // the last two: a locate away from the load point
	}

	// Real time from here: a mount costs 26 s, an unload 30 s.
	d.flags = []string{"--time-scale", "1", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1s"}
	d.evict()
	for _, f := range files {
		if s := mustXattr(t, f, "user.tapefs.state"); s != "offline" {
			t.Fatalf("%s is %q after eviction; want offline", f, s)
		}
		if v, err := xattr(f, "user.tapefs.eta"); err == nil {
			t.Errorf("%s: user.tapefs.eta %q before any recall was asked; want none", f, v)
		}
	}
	sh(t, "/", "setfattr -n user.tapefs.recall "+strings.Join(quoteAll(files), " "))
	asked := time.Now()
	// The batch directory counts its queued files once the estimate has
	// all four (it is made a moment after a burst of requests).
	waitFor(t, 5*time.Second, "the batch directory to count 4 files queued", func() (bool, string) {
		v, err := xattr(batchDir, "user.tapefs.queue")
		return v == "4", fmt.Sprint(v, err)
	})
	etas := map[string]float64{}
	etaAt := map[string]time.Time{} // when each estimate was read: it counts from then
	positions := map[string]bool{}
	for _, f := range files {
		etaAt[f] = time.Now()
		v := mustXattr(t, f, "user.tapefs.eta")
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("%s: user.tapefs.eta %q is not seconds", f, v)
		}
		etas[f] = s
		st := mustXattr(t, f, "user.tapefs.state")
		pos := mustXattr(t, f, "user.tapefs.queue")
		t.Logf("%s: state %s, queue %s, eta %s s", filepath.Base(f), st, pos, v)
		if st != "staging" {
			t.Errorf("%s: user.tapefs.state %q while its recall waits; want staging", f, st)
		}
		if !strings.HasSuffix(pos, "/4") {
			t.Errorf("%s: user.tapefs.queue %q; want POSITION/4", f, pos)
		}
		positions[pos] = true
	}
	if len(positions) != 4 {
		t.Errorf("queue positions %v; want 4 distinct", positions)
	}
	// The batch directory: the last expected when the last file is.
	last := 0.0
	for _, s := range etas {
		last = max(last, s)
	}
	if v := mustXattr(t, batchDir, "user.tapefs.eta"); v == "" || math.Abs(atof(t, v)-last) > 2 {
		t.Errorf("batch directory: user.tapefs.eta %q; want about %.0f (its last file)", v, last)
	}
	// tapefs status and the page.
	r := cliOK(t, cliOpts{home: d.home}, "status", "-b", id)
	if !strings.Contains(r.stdout, "batch "+id+": 4 file(s)") || !strings.Contains(r.stdout, "queued for recall; the first expected in") {
		t.Errorf("tapefs status -b %s does not tell of the queued recall:\n%s", id, r.stdout)
	}
	r = cliOK(t, cliOpts{home: d.home}, "status", "-b", id, "-F", "json")
	var js []struct {
		Recall *struct {
			Files      int     `json:"files"`
			ETASeconds float64 `json:"eta_seconds"`
		} `json:"recall"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || len(js) != 1 || js[0].Recall == nil || js[0].Recall.Files != 4 ||
		math.Abs(js[0].Recall.ETASeconds-(last-time.Since(asked).Seconds())) > 3 {
		t.Errorf("tapefs status -F json: %v; want recall.files 4 and eta_seconds about %.0f\n%s", err, last-time.Since(asked).Seconds(), r.stdout)
	}
	page := string(httpGetOK(t, statusURL(d)+"/").body)
	if !strings.Contains(page, "Recall queue") || !strings.Contains(page, ">"+id+"</a>") {
		t.Errorf("the status page shows no recall queue with batch %s:\n%s", id, clip(page, 3000))
	}

	// When does each arrive?
	arrived := map[string]float64{} // seconds after its estimate was read
	waitFor(t, 6*time.Minute, "the 4 files to come online", func() (bool, string) {
		for _, f := range files {
			if _, ok := arrived[f]; ok {
				continue
			}
			if s, _ := xattr(f, "user.tapefs.state"); s == "online" {
				arrived[f] = time.Since(etaAt[f]).Seconds()
			}
		}
		return len(arrived) == len(files), fmt.Sprint(arrived)
	})
	for _, f := range files {
		got, want := arrived[f], etas[f]
		t.Logf("%s on %s: estimated %.0f s, arrived %.1f s later (error %.1f s; %.1f s after the request)", filepath.Base(f), tapes[f], want, got, got-want,
			got+etaAt[f].Sub(asked).Seconds())
		if math.Abs(got-want) > etaBound(want) {
			t.Errorf("%s: estimated %.0f s, arrived after %.1f s; want within %.1f s", f, want, got, etaBound(want))
		}
	}
	if v, err := xattr(files[0], "user.tapefs.eta"); err == nil {
		t.Errorf("user.tapefs.eta %q on a file that is online; want none", v)
	}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = q(s)
	}
	return out
}

func atof(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%q is not a number", s)
	}
	return v
}

// TestRecallWorkspaceBytesCap: with --recall-workspace-bytes 3M, a recall
// of a whole 12 MiB batch that nobody reads stops at 3 MiB staged; the
// rest waits, shown as held (a queue position, no estimate). As the test
// reads staged files, more come, and the workspace never has more than
// 3 MiB staged and unread. A file a reader waits for is not held back by
// the cap, or a read could wait forever behind recalls nobody reads.
func TestRecallWorkspaceBytesCap(t *testing.T) {
	t.Parallel()
	const fileSize, limit, n = 1 << 20, 3 << 20, 12
	d := startDaemon(t, append(fastFlags(), "--recall-workspace-bytes", "3M")...)
	src := filepath.Join(t.TempDir(), "run")
	want := makeDataTree(t, src, 1, n, fileSize)
	id := d.cpSynced(src, 3*time.Minute)
	batchDir := filepath.Join(d.ws("default"), id)
	dir := filepath.Join(batchDir, "run", "d00")
	d.evict()
	names := listNames(dir)
	if len(names) != n {
		t.Fatalf("%d files in %s; want %d", len(names), dir, n)
	}
	read := map[string]bool{}
	// unread is what the daemon staged that the test has not read; the
	// test reads one file at a time and records it before it looks, so
	// this never undercounts.
	unread := func() (int64, []string) {
		var bytes int64
		var online []string
		for _, nm := range names {
			if s, _ := xattr(filepath.Join(dir, nm), "user.tapefs.state"); s == "online" && !read[nm] {
				bytes += fileSize
				online = append(online, nm)
			}
		}
		return bytes, online
	}
	check := func(when string) []string {
		t.Helper()
		b, online := unread()
		if b > limit {
			t.Fatalf("%s: %d bytes staged and unread (%v); the cap is %d", when, b, online, limit)
		}
		return online
	}
	sh(t, "/", "setfattr -n user.tapefs.recall "+q(batchDir))
	waitFor(t, time.Minute, "3 MiB of the batch staged", func() (bool, string) {
		online := check("after the batch recall")
		return len(online) == limit/fileSize, fmt.Sprint(online)
	})
	// It stays there: nobody reads.
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		check("while nobody reads")
	}
	var held string
	for _, nm := range names {
		p := filepath.Join(dir, nm)
		if s := mustXattr(t, p, "user.tapefs.state"); s == "online" {
			continue
		}
		held = nm
		if s := mustXattr(t, p, "user.tapefs.state"); s != "staging" {
			t.Errorf("%s: state %q while its recall is held; want staging", nm, s)
		}
		if v, err := xattr(p, "user.tapefs.queue"); err != nil || !strings.HasSuffix(v, fmt.Sprintf("/%d", n-limit/fileSize)) {
			t.Errorf("%s: user.tapefs.queue %q (%v); want POSITION/%d", nm, v, err, n-limit/fileSize)
		}
		if v, err := xattr(p, "user.tapefs.eta"); err == nil {
			t.Errorf("%s: user.tapefs.eta %q while held by the cap; want none (it waits for readers)", nm, v)
		}
	}
	r := cliOK(t, cliOpts{home: d.home}, "status", "-b", id)
	if !strings.Contains(r.stdout, "held until files recalled earlier are read") {
		t.Errorf("tapefs status does not say recalls are held:\n%s", r.stdout)
	}
	// A reader of a held file is served although the cap is reached.
	got := map[string]string{}
	got[held] = strings.Fields(sh(t, dir, "timeout 60 md5sum "+q(held)))[0]
	read[held] = true
	check("after reading a held file")
	// Read what is staged, one file at a time, until all are read.
	waitFor(t, 2*time.Minute, "every file read", func() (bool, string) {
		for _, nm := range check("while reading") {
			got[nm] = strings.Fields(sh(t, dir, "md5sum "+q(nm)))[0]
			read[nm] = true
			check("after a read")
		}
		return len(read) == n, fmt.Sprintf("%d read", len(read))
	})
	for _, line := range want {
		sum, p, _ := strings.Cut(line, "  ")
		if g := got[filepath.Base(p)]; g != sum {
			t.Errorf("%s: md5 %s; want %s", p, g, sum)
		}
	}
}

// TestRecallFairAcrossWorkspaces: one drive; workspace default reads its
// 200-file batch with xargs -P32 cat (a storm, staged ahead as a
// traversal), and while it runs workspace wsb reads one file on another
// cartridge. wsb's file arrives before the storm is done: the storm's
// pass gives the drive up after the requests queued before wsb's.
func TestRecallFairAcrossWorkspaces(t *testing.T) {
	t.Parallel()
	// Tape at about 800 KB/s real: the storm's 12.5 MiB take about 16 s.
	d := startDaemon(t, "--time-scale", "0.02", "--tape-speed", "40000", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms",
		"--drives", "1", "--cartridges", "4", "--cartridge-size", "16M")
	cliOK(t, cliOpts{home: d.home}, "workspace", "create", "wsb", "--owner", "0", "--group", "0")
	src := filepath.Join(t.TempDir(), "storm")
	makeDataTree(t, src, 2, 100, 64<<10)
	idA := d.cpSynced(src, 5*time.Minute)
	// wsb's file does not fit what is left of the storm's cartridge.
	bsrc := filepath.Join(t.TempDir(), "b.dat")
	writeBig(t, bsrc, 4<<20, 99)
	sumB := fileMD5(t, bsrc)
	before := d.batchIDs("wsb")
	sh(t, "/", "cp "+q(bsrc)+" "+q(d.put("wsb")+"/"))
	idB := d.waitSynced("wsb", before, 5*time.Minute)
	fileB := filepath.Join(d.ws("wsb"), idB, "b.dat")
	stormDir := filepath.Join(d.ws("default"), idA)
	cartsA := batchCartridges(t, stormDir)
	cartB := mustXattr(t, fileB, "user.tapefs.tapes")
	if cartsA[cartB] {
		t.Fatalf("wsb's file is on %s, a cartridge of the storm's batch (%v); the test needs another", cartB, cartsA)
	}
	d.evict()

	// The storm's shell writes when it ended: the test may only look after.
	endFile := filepath.Join(t.TempDir(), "storm-ended")
	storm, stormOut := startCmd(t, "sh", "-c", "cd "+q(stormDir)+" && find . -type f | shuf | xargs -P32 -n1 cat >/dev/null && date +%s.%N >"+q(endFile))
	t0 := time.Now()
	// The storm is under way: some of its files have arrived.
	waitFor(t, time.Minute, "the storm's first files", func() (bool, string) {
		out := sh(t, stormDir, "getfattr -R -n user.tapefs.state --only-values . 2>/dev/null | grep -c online || true")
		return strings.TrimSpace(out) != "0", out
	})
	startB := time.Since(t0)
	out, errB := shErr("/", "timeout 120 md5sum "+q(fileB))
	doneB := time.Since(t0)
	if errB != nil {
		t.Fatalf("wsb's read: %v %s\n%s", errB, out, lastLines(d.output(), 150))
	}
	err := waitCmd(t, storm, 5*time.Minute)
	ended, rerr := os.ReadFile(endFile)
	if err != nil || rerr != nil {
		t.Fatalf("the storm failed: %v %v\n%s", err, rerr, stormOut.String())
	}
	doneStorm := time.Unix(0, int64(atof(t, strings.TrimSpace(string(ended)))*1e9)).Sub(t0)
	t.Logf("storm of 200 files started; wsb's read started after %v, done after %v; storm done after %v; %v",
		startB.Round(time.Millisecond), doneB.Round(time.Millisecond), doneStorm.Round(time.Millisecond),
		d.logEvents("recall fairness: a pass of another workspace gives its drive up to reads waiting for one"))
	if !strings.HasPrefix(out, sumB+" ") {
		t.Errorf("wsb's file: %q; want md5 %s", out, sumB)
	}
	if doneB >= doneStorm {
		t.Errorf("wsb's one file arrived after %v, the storm of the other workspace was done after %v: starved behind it", doneB, doneStorm)
	}
}
