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
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return err
		}
		v, err := xattr(p, "user.tapefs.tapes")
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out[p], _, _ = strings.Cut(v, ",")
		return nil
	})
	if err != nil {
		t.Fatal(err)
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
	etas := map[string]float64{}
	positions := map[string]bool{}
	for _, f := range files {
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
	// The batch directory: 4 files queued, the last expected when the last file is.
	last := 0.0
	for _, s := range etas {
		last = max(last, s)
	}
	if v := mustXattr(t, batchDir, "user.tapefs.queue"); v != "4" {
		t.Errorf("batch directory: user.tapefs.queue %q; want 4", v)
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
	arrived := map[string]float64{}
	waitFor(t, 6*time.Minute, "the 4 files to come online", func() (bool, string) {
		for _, f := range files {
			if _, ok := arrived[f]; ok {
				continue
			}
			if s, _ := xattr(f, "user.tapefs.state"); s == "online" {
				arrived[f] = time.Since(asked).Seconds()
			}
		}
		return len(arrived) == len(files), fmt.Sprint(arrived)
	})
	for _, f := range files {
		got, want := arrived[f], etas[f]
		t.Logf("%s on %s: estimated %.0f s, arrived after %.1f s (error %.1f s)", filepath.Base(f), tapes[f], want, got, got-want)
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
