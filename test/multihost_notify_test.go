package test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Every mount sees every host's changes at once (issue 13). The hosts of
// startHosts (multihost_test.go) keep workspace and batch directories in
// their kernels' caches for an hour (--kernel-cache 1h): a host that
// did not hear of another's change would show the old state for that
// long, so the 2 s bounds below hold only through the notifications.

// notifyBound is how soon another host's change must show in a mount.
const notifyBound = 2 * time.Second

// startHostsNotify starts n hosts with long kernel caches and waits until
// each listens for the others' changes.
func startHostsNotify(t *testing.T, n int) *cluster {
	t.Helper()
	c := startHosts(t, n)
	for _, d := range c.hosts {
		d.waitLogEvents("listening for other hosts' catalog changes", 1, 30*time.Second)
	}
	return c
}

// waitListening waits until d's `tapefs library status` says that every
// host of ids is up and hears of the others' changes at once (want), or
// polls instead; it returns the table `library status` prints.
func waitListening(t *testing.T, d *daemon, want bool, ids ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		hs := libraryHosts(t, d)
		ok := 0
		for _, h := range hs.Hosts {
			if slices.Contains(ids, h.ID) && h.State == "up" && h.Listening == want {
				ok++
			}
		}
		if ok == len(ids) {
			return cliOK(t, cliOpts{home: d.home}, "library", "status").stdout
		}
		if time.Now().After(deadline) {
			t.Fatalf("hosts %v never all listening=%v in library status: %+v", ids, want, hs.Hosts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// statErr is the error of stat(2) on path (nil: it exists).
func statErr(path string) error {
	var st syscall.Stat_t
	return syscall.Stat(path, &st)
}

// waitVisible waits up to notifyBound for path to exist (or, with want
// false, to be gone with ENOENT) in a mount, and says how long it took.
func waitVisible(t *testing.T, host int, path string, want bool) {
	t.Helper()
	t0 := time.Now()
	for {
		err := statErr(path)
		if (err == nil) == want && (want || errors.Is(err, syscall.ENOENT)) {
			t.Logf("host %d: %s %s after %v", host, path, map[bool]string{true: "visible", false: "gone"}[want], time.Since(t0).Round(time.Millisecond))
			return
		}
		if time.Since(t0) > notifyBound {
			t.Fatalf("host %d: stat %s after %v: %v; want %s", host, path, notifyBound, err, map[bool]string{true: "it there", false: "ENOENT"}[want])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMultiHostNotify: a batch sealed on host 1 shows in host 3's mount
// within 2 s; `rm -r` of it through host 3's mount takes it out of hosts 1
// and 2's mounts (stat and ls) within 2 s, although their kernels had it
// cached for an hour; `tapefs undelete` through host 2's command line
// brings it back in every mount, its files listed and their md5s readable.
// Then every host's notification channel is cut and kept from coming back,
// the batch is removed through host 1 meanwhile, and hosts 2 and 3 drop it
// within 2 s all the same; every host listens again once it can.
func TestMultiHostNotify(t *testing.T) {
	t.Parallel()
	c := startHostsNotify(t, 3)
	hosts := c.hosts
	h1, h2, h3 := hosts[0], hosts[1], hosts[2]
	for _, h := range hosts {
		listNames(h.ws("default")) // the kernel caches the workspace
	}
	// Every host's status says each one listens (from its heartbeat), and
	// every once-per-archive role has one runner among them.
	for _, h := range hosts {
		if out := waitListening(t, h, true, "host1", "host2", "host3"); !strings.Contains(out, "listening") || !strings.Contains(out, "CHANGES") {
			t.Errorf("library status shows no listener state:\n%s", out)
		}
	}
	if page := string(httpGetOK(t, statusURL(h2)+"/").body); !strings.Contains(page, "<td>listening</td>") || strings.Contains(page, "polling</span>") {
		t.Errorf("the page of host 2 does not show every host listening:\n%s", clip(page, 3000))
	}
	runners := map[string]string{}
	for _, hv := range libraryHosts(t, h2).Hosts {
		for _, r := range hv.Roles {
			if other, ok := runners[r]; ok {
				t.Errorf("role %s run by %s and %s", r, other, hv.ID)
			}
			runners[r] = hv.ID
		}
	}
	for _, r := range []string{"journal", "purge", "removal-grace"} {
		if runners[r] == "" {
			t.Errorf("role %s run by no host: %v", r, runners)
		}
	}

	src := t.TempDir()
	writeFiles(t, filepath.Join(src, "run7"), map[string]int{"a.dat": 40_000, "sub/b.dat": 3000})
	wantA := fileMD5(t, filepath.Join(src, "run7", "a.dat"))
	before := h1.batchIDs("default")
	sh(t, "/", "cp -a "+q(filepath.Join(src, "run7"))+" "+q(h1.put("default")+"/"))
	seal(t, filepath.Join(h1.put("default"), "run7"))
	id := h1.waitNewBatch("default", before, 30*time.Second)
	waitVisible(t, 3, filepath.Join(h3.ws("default"), id), true)
	h1.waitBatchState("default", id, "CACHED_SYNCED", 60*time.Second)
	if got := mustXattr(t, filepath.Join(h3.ws("default"), id, "run7", "a.dat"), "user.tapefs.md5"); got != wantA {
		t.Errorf("host 3: md5 of a.dat %q, want %q", got, wantA)
	}

	// Every host looks at the batch, so that its kernel caches it.
	for i, h := range hosts {
		if names := listNames(filepath.Join(h.ws("default"), id, "run7")); !slices.Equal(names, []string{"a.dat", "sub"}) {
			t.Fatalf("host %d: batch %s/run7 lists %v", i+1, id, names)
		}
	}
	sh(t, "/", "rm -r "+q(filepath.Join(h3.ws("default"), id)))
	for i, h := range []*daemon{h1, h2} {
		waitVisible(t, i+1, filepath.Join(h.ws("default"), id), false)
		if slices.Contains(h.batchIDs("default"), id) {
			t.Errorf("host %d: ls still lists batch %s after its removal through host 3", i+1, id)
		}
		if err := statErr(filepath.Join(h.ws("default"), id, "run7", "a.dat")); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("host %d: a file of the removed batch: stat %v, want ENOENT", i+1, err)
		}
	}

	cliOK(t, cliOpts{home: h2.home}, "undelete", "-b", id)
	for i, h := range hosts {
		waitVisible(t, i+1, filepath.Join(h.ws("default"), id), true)
		if got := mustXattr(t, filepath.Join(h.ws("default"), id, "run7", "a.dat"), "user.tapefs.md5"); got != wantA {
			t.Errorf("host %d: md5 of the undeleted a.dat %q, want %q", i+1, got, wantA)
		}
	}
	h1.waitBatchState("default", id, "CACHED_SYNCED", 30*time.Second)
	// The batch is whole again where its bytes are: host 1 reads it.
	if got := fileMD5(t, filepath.Join(h1.ws("default"), id, "run7", "a.dat")); got != wantA {
		t.Errorf("host 1: a.dat reads with md5 %s after the undelete, want %s", got, wantA)
	}

	// Every host's notification channel is cut (the database ends the
	// listening sessions and takes no new ones; the daemons' pools keep
	// the connections they have), and the batch is removed through host 1
	// meanwhile: hosts 2 and 3 drop it all the same (they poll while
	// deaf), and all listen again once the database lets them.
	for _, h := range hosts {
		listNames(filepath.Join(h.ws("default"), id, "run7"))
	}
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(c.url)
	if err != nil {
		t.Fatal(err)
	}
	db := cfg.Database
	cfg.Database = "postgres" // a database cannot refuse connections to the session that says so
	admin, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	allow := func(yes bool) {
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %v", pgx.Identifier{db}.Sanitize(), yes)); err != nil {
			t.Fatal(err)
		}
	}
	// Measured for the README's max_connections advice: the sessions
	// three idle-ish daemons hold (pool connections are kept once opened).
	var sessions int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&sessions); err == nil {
		t.Logf("PostgreSQL sessions of %d daemons after a seal, a migration, a removal and an undelete: %d", len(hosts), sessions)
	}
	// The pools keep their connections, but one may need a new one
	// meanwhile (two requests at once): what then fails, a heartbeat
	// say, is logged as an error, rightly, and provoked here.
	for _, h := range hosts {
		h.allowErrors("is not currently accepting connections")
	}
	allow(false)
	defer allow(true)
	var cut int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = $1 AND application_name = 'tapefs watch'`, db).Scan(&cut); err != nil || cut != len(hosts) {
		t.Fatalf("ended %d listening sessions (%v), want %d", cut, err, len(hosts))
	}
	const lost = "lost the catalog's change notifications: the mount caches directories briefly and the log is polled until they are back"
	for _, h := range hosts {
		h.waitLogEvents(lost, 1, 10*time.Second)
	}
	// Deaf, each says so itself at once, and the others after its next
	// heartbeat.
	if out := waitListening(t, h1, false, "host1", "host2", "host3"); !strings.Contains(out, "polling") {
		t.Errorf("host 1: library status while no host listens does not say polling:\n%s", out)
	}
	if page := string(httpGetOK(t, statusURL(h1)+"/").body); !strings.Contains(page, "polling</span>") {
		t.Errorf("the page of host 1 does not say that it polls while its notifications are cut:\n%s", clip(page, 3000))
	}
	sh(t, "/", "rm -r "+q(filepath.Join(h1.ws("default"), id)))
	for i, h := range []*daemon{h2, h3} {
		waitVisible(t, i+2, filepath.Join(h.ws("default"), id), false)
	}
	allow(true)
	for _, h := range hosts {
		h.waitLogEvents("listening for other hosts' catalog changes", 2, 15*time.Second)
	}
	waitListening(t, h3, true, "host1", "host2", "host3")
}

// TestMultiHostCLI: a batch put through host 1's command line is waited
// for by host 2's `status --wait` (woken by the migration, whichever host
// does it), listed by host 2's `tapefs ls` (the md5s of the source), shown
// and read (cat, md5 of the source) through host 2's mount, and removed
// through host 2's command line: gone from host 1's mount within 2 s.
func TestMultiHostCLI(t *testing.T) {
	t.Parallel()
	hosts := startHostsNotify(t, 2).hosts
	h1, h2 := hosts[0], hosts[1]
	listNames(h1.ws("default"))

	src := t.TempDir()
	writeFiles(t, filepath.Join(src, "run8"), map[string]int{"a.dat": 30_000, "b.dat": 100})
	id := batchID(t, cliOK(t, cliOpts{home: h1.home}, "put", "-w", "default", "-t", "run8", filepath.Join(src, "run8")))
	// Host 2 hears of the migration: its status --wait returns.
	args := []string{"status", "-b", idArg(id), "--wait"}
	wait := tapefsCmd(t, cliOpts{home: h2.home}, args...)
	waited := make(chan cliResult, 1)
	go func() {
		r, err := runCmd(wait, args)
		if err != nil {
			r.code, r.stderr = -1, err.Error()
		}
		waited <- r
	}()
	select {
	case r := <-waited:
		if r.code != 0 {
			t.Fatalf("host 2: want exit 0\n%s", r)
		}
		t.Logf("host 2: status --wait of a batch put through host 1 returned after %v", r.took.Round(time.Millisecond))
	case <-time.After(60 * time.Second):
		wait.Process.Kill()
		t.Fatalf("host 2: tapefs status -b %d --wait still waiting after 60 s; host 1 says %+v", id, batchJSON(t, cliOpts{home: h1.home}, id))
	}

	files := filesJSON(t, cliOpts{home: h2.home}, id)
	want := map[string]string{}
	for _, f := range []string{"a.dat", "b.dat"} {
		want[batchPath(filepath.Join(src, "run8", f))] = fileMD5(t, filepath.Join(src, "run8", f))
	}
	found := 0
	for _, f := range files {
		if m, ok := want[f.Path]; ok {
			found++
			if f.MD5 != m {
				t.Errorf("host 2: tapefs ls lists %s with md5 %s, want %s", f.Path, f.MD5, m)
			}
			inMount := filepath.Join(h2.ws("default"), idArg(id), f.Path)
			if got := mustXattr(t, inMount, "user.tapefs.md5"); got != m {
				t.Errorf("host 2: %s has user.tapefs.md5 %q, want %q", inMount, got, m)
			}
		}
	}
	if found != len(want) {
		t.Fatalf("host 2: tapefs ls -b %d lists %d of the %d files put through host 1: %+v", id, found, len(want), files)
	}
	// Host 2 reads the files through its mount: from tape (the shared
	// library) into its own cache, or from host 1's cache.
	for p, m := range want {
		inMount := filepath.Join(h2.ws("default"), idArg(id), p)
		t.Logf("host 2: %s is %s before the read", p, mustXattr(t, inMount, "user.tapefs.state"))
		if got := fileMD5(t, inMount); got != m {
			t.Errorf("host 2: cat %s: md5 %s, want %s", inMount, got, m)
		}
	}
	h1dir := filepath.Join(h1.ws("default"), idArg(id))
	if err := statErr(h1dir); err != nil {
		t.Fatal(err)
	}
	cliOK(t, cliOpts{home: h2.home}, "rm", "-b", idArg(id))
	waitVisible(t, 1, h1dir, false)
	for _, b := range batchesJSON(t, cliOpts{home: h1.home}, "default") {
		if b.ID == id {
			t.Errorf("host 1: tapefs ls lists batch %d as live after its removal through host 2: %+v", id, b)
		}
	}
}
