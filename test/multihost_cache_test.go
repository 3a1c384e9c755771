package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
)

// hostsJSON is the hosts part of `tapefs library status -F json`.
type hostsJSON struct {
	Hosts []struct {
		ID             string   `json:"id"`
		Self           bool     `json:"self"`
		State          string   `json:"state"`
		AgeSeconds     float64  `json:"age_seconds"`
		Waiting        int      `json:"waiting"`
		CacheReachable bool     `json:"cache_reachable"`
		Listening      bool     `json:"listening"`
		Roles          []string `json:"roles"`
		Note           string   `json:"note"`
		Drives         []struct {
			Index int    `json:"index"`
			State string `json:"state"`
		} `json:"drives"`
	} `json:"hosts"`
}

func libraryHosts(t *testing.T, d *daemon) hostsJSON {
	t.Helper()
	var out hostsJSON
	r := cliOK(t, cliOpts{home: d.home}, "library", "status", "-F", "json")
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("library status -F json: %v\n%s", err, r.stdout)
	}
	return out
}

// TestHostsCacheOutOfReach: host 1 seals batches and dies before they
// reach tape, and its cache is out of reach of the others (not on shared
// storage). The batches wait for it with a clear state — CACHED, not
// failed — and `tapefs library status` and the page on host 2 say that
// they wait for host 1. Once its cache is reachable again, another host
// adopts it and writes the batches.
func TestHostsCacheOutOfReach(t *testing.T) {
	t.Parallel()
	c := newHosts(t, 3)
	// Host 1 flushes late: its batches stay in its cache.
	c.host(1).flags = append(c.host(1).flags, "--flush-age", "1h")
	for _, d := range c.hosts {
		d.start()
	}
	cat := c.openCatalog()
	h1, h2 := c.host(1), c.host(2)
	ids, dirs := putRuns(t, h1, 2)
	waitFor(t, 30*time.Second, "the batches sealed and hashed", func() (bool, string) {
		b := c.batch(cat, ids[1])
		return b.State == catalog.Cached, string(b.State)
	})

	st := libraryHosts(t, h2)
	if len(st.Hosts) != 3 {
		t.Fatalf("library status on host 2 lists %d hosts, want 3: %+v", len(st.Hosts), st)
	}
	for i, h := range st.Hosts {
		if h.State != "up" || h.AgeSeconds > 10 || len(h.Drives) != 2 || h.Self != (i == 1) {
			t.Errorf("host %d in library status on host 2: %+v, want up, a fresh heartbeat, 2 drives", i+1, h)
		}
	}
	text := cliOK(t, cliOpts{home: h2.home}, "library", "status").stdout
	for _, want := range []string{"HOST", "host1", "host2 (this)", "host3", "HEARTBEAT"} {
		if !strings.Contains(text, want) {
			t.Errorf("library status on host 2 does not show %q:\n%s", want, text)
		}
	}

	h1.kill9()
	away := filepath.Join(filepath.Dir(h1.home), "cache-away")
	if err := os.Rename(filepath.Join(h1.home, "cache"), away); err != nil {
		t.Fatal(err)
	}
	var last hostsJSON
	waitFor(t, 30*time.Second, "host 2 to see host 1 lapsed with its batches waiting", func() (bool, string) {
		last = libraryHosts(t, h2)
		h := last.Hosts[0]
		return h.State == "lapsed" && h.Waiting == 2 && !h.CacheReachable && strings.Contains(h.Note, "wait for it"), h.State + " " + h.Note
	})
	// They keep waiting: several leases later nothing was failed or
	// written.
	time.Sleep(3 * testLease)
	for _, id := range ids {
		if b := c.batch(cat, id); b.State != catalog.Cached || b.Host != "host1" {
			t.Errorf("batch %d of dead host 1, cache out of reach: %s on %s (%s), want CACHED waiting", id, b.State, b.Host, b.Reason)
		}
	}
	page := string(httpGetOK(t, statusURL(h2)+"/").body)
	if !strings.Contains(page, "host1") || !strings.Contains(page, "wait for it") {
		t.Errorf("the page of host 2 does not say that host 1's batches wait for it:\n%s", clip(page, 3000))
	}

	// The cache is back within reach: host 2 or 3 adopts it.
	if err := os.Rename(away, filepath.Join(h1.home, "cache")); err != nil {
		t.Fatal(err)
	}
	c.waitOnTape(cat, ids, 90*time.Second)
	c.checkCopies(cat, ids)
	for i, id := range ids {
		name := filepath.Base(dirs[i])
		sameTree(t, "batch read through host 2", md5Tree(t, dirs[i]), md5Tree(t, filepath.Join(h2.ws("default"), itoa(id), name)))
	}
	if h := libraryHosts(t, h2).Hosts[0]; h.Waiting != 0 {
		t.Errorf("host 1 after the adoption: %+v, want nothing waiting", h)
	}
}

func itoa(id uint64) string { return strconv.FormatUint(id, 10) }

// TestHostsReadUnsyncedElsewhere: a batch sealed on host 1 and not yet on
// tape reads back through host 3's mount from host 1's cache. With host 1
// dead and its cache out of reach, a read through host 2 waits (no EIO)
// and completes with the right bytes once the cache is back.
func TestHostsReadUnsyncedElsewhere(t *testing.T) {
	t.Parallel()
	c := newHosts(t, 3)
	c.host(1).flags = append(c.host(1).flags, "--flush-age", "1h") // host 1's batches stay in its cache
	for _, d := range c.hosts {
		d.start()
	}
	cat := c.openCatalog()
	h1, h2, h3 := c.host(1), c.host(2), c.host(3)
	ids, dirs := putRuns(t, h1, 1)
	waitFor(t, 30*time.Second, "the batch sealed and hashed", func() (bool, string) {
		b := c.batch(cat, ids[0])
		return b.State == catalog.Cached, string(b.State)
	})
	batchDir := func(d *daemon) string { return filepath.Join(d.ws("default"), itoa(ids[0]), filepath.Base(dirs[0])) }
	sameTree(t, "a batch of host 1 not yet on tape, read through host 3", md5Tree(t, dirs[0]), md5Tree(t, batchDir(h3)))

	h1.kill9()
	away := filepath.Join(filepath.Dir(h1.home), "cache-away")
	if err := os.Rename(filepath.Join(h1.home, "cache"), away); err != nil {
		t.Fatal(err)
	}
	cmd, out := md5sumCmd(t, filepath.Join(batchDir(h2), "a.dat"))
	time.Sleep(3 * testLease)
	if cmd.ProcessState != nil {
		t.Fatalf("a read of a file only in the cache of dead host 1 (out of reach) ended at once: %s", out)
	}
	if b := c.batch(cat, ids[0]); b.State != catalog.Cached {
		t.Errorf("batch of dead host 1 while its cache is out of reach: %s (%s)", b.State, b.Reason)
	}
	if err := os.Rename(away, filepath.Join(h1.home, "cache")); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(t, cmd, 60*time.Second); err != nil {
		t.Fatalf("the waiting read failed once host 1's cache was back: %v\n%s", err, out)
	}
	if want := md5Tree(t, dirs[0])["a.dat"]; !strings.HasPrefix(out.String(), want) {
		t.Errorf("the waiting read gave md5 %q, want %s", out, want)
	}
	c.waitOnTape(cat, ids, 60*time.Second)
}
