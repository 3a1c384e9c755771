package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/catalog"
	"github.com/tapefs/tapefs/internal/pgtest"
)

// The suite runs in a second mode with every daemon's catalog on
// PostgreSQL (TAPEFS_E2E_CATALOG=postgres; make test runs it): the same
// tests, the same assertions, one throwaway server for the run and one
// database per home, so a daemon restarted on its home finds its catalog.

var pgMode struct {
	sync.Mutex
	server *pgtest.Server
	urls   map[string]string // home -> database URL ("": catalog.db, forced by setCatalog)
}

// catalogOnPostgres reports whether this run puts catalogs on PostgreSQL.
func catalogOnPostgres() bool { return os.Getenv("TAPEFS_E2E_CATALOG") == "postgres" }

// startCatalogServer starts the run's PostgreSQL server in that mode.
func startCatalogServer() error {
	if !catalogOnPostgres() {
		return nil
	}
	s, err := pgtest.StartShared()
	if err != nil {
		return err
	}
	pgMode.server, pgMode.urls = s, map[string]string{}
	fmt.Fprintf(os.Stderr, "e2e: catalogs on PostgreSQL (socket %s)\n", s.Socket)
	return nil
}

func stopCatalogServer() {
	if pgMode.server != nil {
		pgMode.server.Stop()
	}
}

// catalogEnv is the environment that points a daemon of home at its
// catalog: nothing for the default (catalog.db in the home), TAPEFS_CATALOG
// in the PostgreSQL mode.
func catalogEnv(home string) []string {
	url := catalogSpec(home)
	if url == "" {
		return nil
	}
	return []string{"TAPEFS_CATALOG=" + url}
}

// setCatalog makes the daemons of home use spec ("": catalog.db in the
// home) whatever the mode of the run.
func setCatalog(home, spec string) {
	pgMode.Lock()
	defer pgMode.Unlock()
	if pgMode.urls == nil {
		pgMode.urls = map[string]string{}
	}
	pgMode.urls[home] = spec
}

// catalogSpec is the catalog of home as catalog.OpenAt takes it.
func catalogSpec(home string) string {
	pgMode.Lock()
	defer pgMode.Unlock()
	if url, ok := pgMode.urls[home]; ok || !catalogOnPostgres() {
		return url
	}
	url, err := pgMode.server.NewDB(fmt.Sprintf("home%d", len(pgMode.urls)+1))
	if err != nil {
		panic(err)
	}
	pgMode.urls[home] = url
	return url
}

// openCatalogEngine opens the raw key-value engine of a stopped daemon's
// catalog, for tests that plant records the daemon must cope with.
func openCatalogEngine(home string) (catalog.Engine, error) {
	if spec := catalogSpec(home); spec != "" {
		return catalog.OpenPostgresEngine(spec, catalog.PostgresOptions{})
	}
	return catalog.OpenBoltEngine(home + "/catalog.db")
}

// postgresForTest is a PostgreSQL server for a test that needs one in
// either mode: the run's server, or one of the test's own.
func postgresForTest(t *testing.T) *pgtest.Server {
	if pgMode.server != nil {
		return pgMode.server
	}
	return pgtest.Start(t)
}

// TestCatalogCopyToPostgres: a home on bbolt with batches on tape, evicted
// and removed is stopped, its catalog copied with 'tapefs catalog copy',
// and the daemon started on the database serves the same listings and
// recalls the same bytes.
func TestCatalogCopyToPostgres(t *testing.T) {
	t.Parallel()
	pg := postgresForTest(t)
	d := newDaemon(t, fastFlags()...)
	setCatalog(d.home, "")
	d.start()
	o := cliOpts{home: d.home}
	src := t.TempDir()
	var ids []string
	for _, run := range []string{"run1", "run2", "run3"} {
		writeFiles(t, filepath.Join(src, run), map[string]int{"a.dat": 70_000, "sub/b.dat": 3000, "sub/c.dat": 0})
		ids = append(ids, d.cpSynced(filepath.Join(src, run), 60*time.Second))
	}
	cliOK(t, o, "rm", "-b", ids[2])
	listing := func() string {
		var b strings.Builder
		b.WriteString(cliOK(t, o, "ls", "-w", "default").stdout)
		for _, id := range ids[:2] {
			b.WriteString(cliOK(t, o, "ls", "-b", id, "-L", "file", "-F", "md5sum").stdout)
		}
		return b.String()
	}
	d.evict() // run1 and run2 now only on tape: SYNCED once the start has seen their objects gone
	for _, id := range ids[:2] {
		d.waitBatchState("default", id, "SYNCED", time.Minute)
	}
	before := listing()

	d.stop()
	url, err := pg.NewDB(fmt.Sprintf("copy%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	r := cliOK(t, cliOpts{}, "catalog", "copy", "--home", d.home, "--to", url)
	if !strings.Contains(r.stderr, "copied") {
		t.Errorf("catalog copy said:\n%s", r)
	}
	// The same copy again is refused: the database holds a catalog now.
	if r := runTapefs(t, cliOpts{}, "catalog", "copy", "--home", d.home, "--to", url); r.code != 1 || !strings.Contains(r.stderr, "already holds a catalog") {
		t.Errorf("second copy: want exit 1 'already holds a catalog'\n%s", r)
	}
	setCatalog(d.home, url)
	d.start()
	if after := listing(); after != before {
		t.Errorf("listing on PostgreSQL differs from bbolt:\n--- bbolt\n%s--- postgres\n%s", before, after)
	}
	for i, run := range []string{"run1", "run2"} {
		sh(t, "/", "diff -r "+q(filepath.Join(src, run))+" "+q(filepath.Join(d.ws("default"), ids[i], run)))
	}
	if _, err := os.Stat(filepath.Join(d.ws("default"), ids[2])); !os.IsNotExist(err) {
		t.Errorf("removed batch %s is visible on PostgreSQL: %v", ids[2], err)
	}
}

// TestPostgresAwayDuringPutAndRecall: the catalog's server stops for 10 s
// while a recall streams from a slow tape, and a put is copied in while it
// is away. The read waits or fails with a clear error (EIO), the cp goes
// on (put/ needs only the workspace's record, which the mount keeps),
// nothing hangs and nothing is corrupted: after the server returns, the
// recalled file reads right and the put reaches tape with its bytes.
func TestPostgresAwayDuringPutAndRecall(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t) // its own server: this test stops it
	url, err := pg.NewDB("away")
	if err != nil {
		t.Fatal(err)
	}
	// A slow drive: the 2 MB file takes 100 simulated seconds to read,
	// 5 s at time scale 0.05.
	d := newDaemon(t, "--time-scale", "0.05", "--tape-speed", "20K", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms")
	setCatalog(d.home, url)
	d.allowErrors("catalog database", "unavailable")
	d.start()
	src := t.TempDir()
	writeFiles(t, filepath.Join(src, "run1"), map[string]int{"a.dat": 2_000_000, "b.dat": 5000})
	id := d.cpSynced(filepath.Join(src, "run1"), 2*time.Minute)
	d.evict()

	type result struct {
		out  string
		err  error
		took time.Duration
	}
	run := func(script string) chan result {
		ch := make(chan result, 1)
		go func() {
			t0 := time.Now()
			out, err := shErr("/", script)
			ch <- result{out, err, time.Since(t0)}
		}()
		return ch
	}
	offline := filepath.Join(d.ws("default"), id, "run1", "a.dat")
	cmpOffline := "cmp " + q(filepath.Join(src, "run1", "a.dat")) + " " + q(offline)
	recall := run(cmpOffline)
	waitFor(t, time.Minute, "the recall of run1/a.dat to be under way", func() (bool, string) {
		st, err := xattr(offline, "user.tapefs.state")
		return err == nil && st == "staging", st
	})
	writeFiles(t, filepath.Join(src, "run2"), map[string]int{"c.dat": 40_000, "d/e.dat": 1000, "d/f.dat": 1000})
	cp := "cp -a " + q(filepath.Join(src, "run2")) + " " + q(d.put("default")+"/")
	// The recall is in flight: the catalog goes away under it; then a cp
	// into put/ runs while it is away.
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	put := run(cp)
	// put/ needs nothing of the catalog but the workspace's record, which
	// the mount keeps: the cp goes on (at most one wait of the engine's
	// retry period, 10 s, for the first look at the catalog), never hangs.
	const bound = 30 * time.Second
	var putRes result
	select {
	case putRes = <-put:
		if putRes.err != nil {
			t.Errorf("cp into put/ with the catalog away: %v\n%s", putRes.err, putRes.out)
		}
		t.Logf("cp into put/ with the catalog away took %s", putRes.took.Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("cp into put/ hung for %s with the catalog away", bound)
	}
	time.Sleep(time.Until(stopped.Add(10 * time.Second)))
	if err := pg.Resume(); err != nil {
		t.Fatal(err)
	}
	if putRes.err != nil {
		sh(t, "/", cp) // the same cp works once the catalog is back
	}
	select {
	case r := <-recall:
		if r.err != nil {
			// A clear error is allowed while the catalog is away; the
			// file must read right once it is back.
			t.Logf("read while the catalog was away: %v %s (after %s)", r.err, r.out, r.took.Round(time.Millisecond))
			sh(t, "/", cmpOffline)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("a read of an offline file hung for 90 s after the catalog came back")
	}
	// The put seals and reaches tape once the catalog is back, whole.
	var id2 string
	waitFor(t, 2*time.Minute, "run2 on tape", func() (bool, string) {
		for _, b := range d.batchIDs("default") {
			if b == id {
				continue
			}
			id2 = b
			st, err := xattr(filepath.Join(d.ws("default"), b), "user.tapefs.state")
			return err == nil && st == "CACHED_SYNCED", "state " + st
		}
		return false, "no batch for run2 yet"
	})
	d.stop()
	d.start()
	sh(t, "/", "diff -r "+q(filepath.Join(src, "run1"))+" "+q(filepath.Join(d.ws("default"), id, "run1")))
	sh(t, "/", "diff -r "+q(filepath.Join(src, "run2"))+" "+q(filepath.Join(d.ws("default"), id2, "run2")))
}

// TestCatalogCopyEveryState: 'tapefs catalog copy' of a home caught with
// batches in every state a batch rests in or passes through — SYNCED
// (evicted), DELETED, CACHED_SYNCED, FAILED (a damaged object refused by
// the migration), and, by a kill -9, SYNCING (being written), CACHED
// (waiting for the drive) and SEALING (its checksums crawling) — into
// PostgreSQL. The daemon on the database then finishes what was under
// way, every live batch reads back identical to its source, the failed
// one stays FAILED, the removed one stays removed.
func TestCatalogCopyEveryState(t *testing.T) {
	t.Parallel()
	pg := postgresForTest(t)
	d := newDaemon(t, append(fastFlags(), "--drives", "1", "--scrub-rate", "0")...)
	setCatalog(d.home, "")
	d.allowErrors("damaged", "md5", "CRC32C", "FAILED", "failed")
	d.start()
	o := cliOpts{home: d.home}
	src := t.TempDir()
	runs := map[string]string{} // batch ID -> source directory
	mk := func(run string, size int) string {
		p := filepath.Join(src, run)
		writeFiles(t, p, map[string]int{"data.bin": size, "sub/small.txt": 100})
		return p
	}
	sealRun := func(run string, size int) string {
		t.Helper()
		p := mk(run, size)
		before := d.batchIDs("default")
		sh(t, "/", "cp -a "+q(p)+" "+q(d.put("default")+"/"))
		seal(t, filepath.Join(d.put("default"), run))
		id := d.waitNewBatch("default", before, time.Minute)
		runs[id] = p
		return id
	}
	state := func(id string) string {
		st, _ := xattr(filepath.Join(d.ws("default"), id), "user.tapefs.state")
		return st
	}

	synced := d.cpSynced(mk("synced", 50_000), time.Minute)
	runs[synced] = filepath.Join(src, "synced")
	deleted := d.cpSynced(mk("deleted", 1000), time.Minute)
	cliOK(t, o, "rm", "-b", deleted)
	d.evict()
	cachedSynced := d.cpSynced(mk("cachedsynced", 20_000), time.Minute)
	runs[cachedSynced] = filepath.Join(src, "cachedsynced")

	// FAILED: sealed while the flush is far off, its object damaged on
	// disk, then flushed: the migration refuses the bad bytes.
	quiet := append(fastFlags(), "--flush-age", "1h", "--scrub-rate", "0")
	d.stop()
	d.flags = quiet
	d.start()
	failed := sealRun("failed", 30_000)
	d.waitBatchState("default", failed, "CACHED", time.Minute)
	obj := fileByPath(t, filesJSON(t, o, mustUint(t, failed)), "failed/data.bin")
	d.stop()
	flipBytes(t, d.objectPath(obj.ID), 100)
	d.flags = append(fastFlags(), "--scrub-rate", "0")
	d.start()
	d.waitBatchState("default", failed, "FAILED", 2*time.Minute)
	delete(runs, failed)

	// Slow tape and slow checksums, one drive: a batch being written, one
	// waiting for the drive, one still being checksummed; then kill -9.
	d.stop()
	d.flags = []string{"--time-scale", "0.05", "--tape-speed", "50K", "--hash-rate", "1M", "--settle", "1h",
		"--flush-age", "1s", "--recall-linger", "1ms", "--scrub-rate", "0"}
	d.start()
	// 10 MB: 10 s of checksums at 1 MB/s, then 200 simulated seconds of
	// writing at 50 KB/s, 10 s real at time scale 0.05: time enough for
	// the two seals below, even on a loaded machine.
	syncing := sealRun("syncing", 10_000_000)
	waitFor(t, 2*time.Minute, "batch "+syncing+" to be SYNCING", func() (bool, string) {
		st := state(syncing)
		return st == "SYNCING", st
	})
	cached := sealRun("cached", 2000)
	d.waitBatchState("default", cached, "CACHED", time.Minute)
	sealing := sealRun("sealing", 8_000_000) // 8 s of checksums at 1 MB/s
	got := map[string]string{}
	for _, id := range []string{synced, cachedSynced, failed, syncing, cached, sealing} {
		got[id] = state(id)
	}
	want := map[string]string{synced: "SYNCED", cachedSynced: "CACHED_SYNCED", failed: "FAILED", syncing: "SYNCING", cached: "CACHED", sealing: "SEALING"}
	for id, w := range want {
		if got[id] != w {
			t.Fatalf("before the kill, batch %s is %s, want %s (all: %v): the test's timing did not hold", id, got[id], w, got)
		}
	}
	d.kill9()

	url, err := pg.NewDB(fmt.Sprintf("every%d", time.Now().UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	cliOK(t, cliOpts{}, "catalog", "copy", "--home", d.home, "--to", url)
	setCatalog(d.home, url)
	d.flags = append(fastFlags(), "--scrub-rate", "0")
	d.startAfterKill9()
	for id, dir := range runs {
		waitFor(t, 3*time.Minute, "batch "+id+" on tape on PostgreSQL", func() (bool, string) {
			st := state(id)
			if st == "FAILED" {
				t.Fatalf("batch %s (%s) FAILED after the copy", id, filepath.Base(dir))
			}
			return st == "CACHED_SYNCED" || st == "SYNCED", st
		})
		sh(t, "/", "diff -r "+q(dir)+" "+q(filepath.Join(d.ws("default"), id, filepath.Base(dir))))
	}
	if st := state(failed); st != "FAILED" {
		t.Errorf("the failed batch %s is %s on PostgreSQL, want FAILED", failed, st)
	}
	if _, err := os.Stat(filepath.Join(d.ws("default"), deleted)); !os.IsNotExist(err) {
		t.Errorf("removed batch %s is visible on PostgreSQL: %v", deleted, err)
	}
}
