package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapefs/tapefs/internal/mountinfo"
	"golang.org/x/sys/unix"
)

// tapefsBin is the binary under test, built once by TestMain.
var tapefsBin string

// prereqErr says what this machine lacks to run the suite (FUSE, a tool);
// nil when nothing is missing. In CI it fails the run in TestMain.
var prereqErr error

// requiredTools are the programs the tests run.
var requiredTools = []string{"tar", "rsync", "getfattr", "setfattr", "diff", "md5sum", "find",
	"cp", "mv", "ls", "dd", "cat", "touch", "mkdir", "chmod", "chown", "ln", "truncate", "rm", "bash"}

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	flag.Parse()
	// The tests mostly wait on daemons and tools in other processes, so
	// they run in parallel even when GOMAXPROCS=1 (the second pass of make
	// test), which would otherwise make -parallel 1. An explicit
	// -test.parallel wins.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit && runtime.GOMAXPROCS(0) < 4 {
		_ = flag.Set("test.parallel", "4")
	}
	if bin := os.Getenv(orphanBinEnv); bin != "" {
		// A child run of TestInterruptedRunLeavesNoMount: the parent's
		// binary, no build.
		tapefsBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "tapefs-e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	tapefsBin = filepath.Join(dir, "tapefs")
	if err := buildTapefs(tapefsBin); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: cannot build the tapefs binary under test: %v\n", err)
		return 1
	}
	prereqErr = checkPrereqs()
	if prereqErr != nil && inCI() {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: CI=%s and this machine cannot run the end-to-end suite: %v\n"+
			"(.ci/run installs fuse3 attr rsync tar coreutils findutils diffutils)\n", os.Getenv("CI"), prereqErr)
		return 1
	}
	if err := startCatalogServer(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: TAPEFS_E2E_CATALOG=postgres and no PostgreSQL server: %v\n", err)
		return 1
	}
	defer stopCatalogServer()
	fmt.Fprintf(os.Stderr, "e2e: tapefs built at %s; GOMAXPROCS=%d (env %q)\n", tapefsBin, runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS"))
	code := m.Run()
	if err := reportSkips(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: cannot write the list of skipped tests: %v\n", err)
		return 1
	}
	return code
}

func inCI() bool {
	v := strings.ToLower(os.Getenv("CI"))
	return v != "" && v != "false" && v != "0"
}

// buildTapefs builds ../cmd/tapefs. GOMAXPROCS is dropped from the build's
// environment only (it would serialise the compiler); the daemon inherits
// the test's environment unchanged.
func buildTapefs(out string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	// The commit is linked in as make build does (-X main.commit), for the
	// --version test: GOFLAGS may turn the VCS stamp off.
	args := []string{"build", "-o", out}
	if rev, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		args = append(args, "-ldflags", "-X main.commit="+strings.TrimSpace(string(rev)))
	}
	cmd := exec.Command(gobin, append(args, "../cmd/tapefs")...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s ../cmd/tapefs: %w\n%s", out, err, b)
	}
	return nil
}

func checkPrereqs() error {
	var missing []string
	if _, err := os.Stat("/dev/fuse"); err != nil {
		missing = append(missing, "/dev/fuse ("+err.Error()+")")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			missing = append(missing, "fusermount3 (not root; install fuse3)")
		}
	}
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing: %s", strings.Join(missing, ", "))
	}
	return nil
}

// needMount skips a test on a machine that cannot mount (never in CI:
// TestMain has failed the run there already).
func needMount(t *testing.T) {
	t.Helper()
	if prereqErr != nil {
		skip(t, "cannot run end-to-end tests here: %v (in CI this is a failure; make deps installs what is missing)", prereqErr)
	}
}

// kernelCacheEnv, set (e.g. to 1h), runs every mount of the suite with
// that --kernel-cache: the second pass of make test does.
const kernelCacheEnv = "TAPEFS_TEST_KERNEL_CACHE"

// fastFlags are the daemon flags of a quick test: no simulated tape
// time, short settle, flush and recall collection.
func fastFlags() []string {
	return []string{"--time-scale", "0", "--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms"}
}

// daemon is one tapefs mount daemon running the binary under test, with
// its own home and mount point. It can be stopped, killed and started
// again on the same home.
type daemon struct {
	t     *testing.T
	home  string
	mnt   string
	flags []string

	proc             // the runs of `tapefs mount`; mu also guards allowed
	allowed []string // error lines the test provokes (allowErrors)
	env     []string // more environment of the daemon (test hooks)
}

// newDaemon prepares a daemon (not started) with a fresh home and mount
// point. Whatever happens, it is stopped and nothing stays mounted when
// the test ends.
func newDaemon(t *testing.T, flags ...string) *daemon {
	t.Helper()
	needMount(t)
	return newDaemonAt(t, t.TempDir(), flags...)
}

// newDaemonAt is newDaemon with home and mount point under root.
func newDaemonAt(t *testing.T, root string, flags ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, home: filepath.Join(root, "home"), mnt: filepath.Join(root, "mnt"), flags: flags, proc: proc{name: "tapefs"}}
	if err := os.Mkdir(d.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir's own cleanup, so it runs first.
	t.Cleanup(d.cleanup)
	return d
}

// startDaemon is newDaemon and start.
func startDaemon(t *testing.T, flags ...string) *daemon {
	t.Helper()
	d := newDaemon(t, flags...)
	d.start()
	return d
}

// ws is the path of a workspace in the mount.
func (d *daemon) ws(name string) string { return filepath.Join(d.mnt, name) }

// put is the path of a workspace's put/ directory.
func (d *daemon) put(ws string) string { return filepath.Join(d.mnt, ws, "put") }

// start runs `tapefs mount` and waits for its ready line.
func (d *daemon) start() {
	d.t.Helper()
	d.start1(false)
}

// start1 is start; with tolerateExit, a daemon that exits before it is
// ready returns (not running) instead of failing the test.
func (d *daemon) start1(tolerateExit bool) {
	d.t.Helper()
	args := []string{"mount", "--home", d.home, "--http", "127.0.0.1:0"}
	if v := os.Getenv(kernelCacheEnv); v != "" {
		// The long-cache mode: the kernel keeps workspace and batch
		// directories for this long, so every test checks that what
		// changes behind its back is notified (a test's own flag wins).
		args = append(args, "--kernel-cache", v)
	}
	args = append(args, d.flags...)
	args = append(args, d.mnt)
	want := "tapefs: mounted at " + d.mnt
	ready := make(chan struct{})
	seen := false
	// The daemon inherits the test's environment (GOMAXPROCS=1 in the
	// second pass of make test). HOME is private so that no ~/.tapefs.conf
	// of the user changes the settings under test.
	env := append(append(append(os.Environ(), "HOME="+filepath.Dir(d.home)), catalogEnv(d.home)...), d.env...)
	run, done := d.proc.start(d.t, env, args, func(line string) {
		if line == want && !seen {
			seen = true
			close(ready)
		}
	})
	t0 := time.Now()
	select {
	case <-ready:
		pid := d.process().Pid
		d.t.Logf("daemon run %d ready after %v (pid %d)", run, time.Since(t0).Round(time.Millisecond), pid)
		if v := os.Getenv("GOMAXPROCS"); v != "" {
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err == nil && !bytes.Contains(append([]byte{0}, env...), []byte("\x00GOMAXPROCS="+v+"\x00")) {
				d.t.Errorf("the daemon does not run with GOMAXPROCS=%s", v)
			}
		}
	case <-done:
		if tolerateExit {
			return
		}
		d.t.Fatalf("tapefs mount exited before it was ready (%v); want the line %q on stderr\n%s", d.exitErr(), want, d.output())
	case <-time.After(60 * time.Second):
		d.quit() // goroutine dump into the output, then kill
		d.t.Fatalf("tapefs mount not ready after 60s; want the line %q on stderr\n%s", want, d.output())
	}
}

// stop sends SIGTERM and expects exit status 0 and the mount gone.
func (d *daemon) stop() {
	d.t.Helper()
	if err := d.terminate(); err != nil {
		d.t.Fatal(err)
	}
}

// terminate is stop returning its complaint instead of failing.
func (d *daemon) terminate() error {
	if err := d.proc.terminate(); err != nil {
		return err
	}
	if isMounted(d.mnt) {
		return fmt.Errorf("tapefs exited 0 after SIGTERM but %s is still mounted\n%s", d.mnt, d.output())
	}
	return nil
}

// kill9 kills the daemon with SIGKILL and leaves its mount behind (stale):
// the next start must cope with it.
func (d *daemon) kill9() {
	d.t.Helper()
	if !d.running() {
		d.t.Fatal("kill9: daemon not running")
	}
	if err := d.process().Signal(syscall.SIGKILL); err != nil {
		d.t.Fatal(err)
	}
	if !d.waitExit(10 * time.Second) {
		d.t.Fatal("tapefs still running 10s after SIGKILL")
	}
	d.t.Logf("daemon killed with SIGKILL; mounted afterwards: %v", isMounted(d.mnt))
}

// startAfterKill9 starts the daemon right after a kill9, on the stale mount
// it left: the daemon must cope with it at once. If it does not, that is
// reported as a failure, and the test goes on with a second start once the
// kernel says the old mount is dead (ENOTCONN), to check the rest.
func (d *daemon) startAfterKill9() {
	d.t.Helper()
	if ok := d.tryStart(); ok {
		return
	}
	d.t.Errorf("tapefs mount, started at once after a kill -9 of the previous daemon, did not cope with the stale mount at %s (see test/BUGS.md):\n%s",
		d.mnt, lastLines(d.output(), 3))
	d.allowErrors("is busy: a fuse.tapefs file system is mounted there") // reported just above
	waitFor(d.t, 10*time.Second, "the stale mount to say ENOTCONN", func() (bool, string) {
		_, err := os.Stat(d.mnt)
		return errors.Is(err, syscall.ENOTCONN), fmt.Sprint(err)
	})
	d.start()
}

// tryStart is start that reports a daemon exiting before it is ready
// instead of failing.
func (d *daemon) tryStart() bool {
	d.t.Helper()
	d.start1(true)
	return d.running()
}

// restart is stop and start.
func (d *daemon) restart() {
	d.t.Helper()
	d.stop()
	d.start()
}

// evict drops every cached object of the home: the daemon is stopped, the
// objects directory removed and the daemon started again; the engine
// notices at start that synced objects are gone and their files become
// offline.
func (d *daemon) evict() {
	d.t.Helper()
	d.stop()
	if err := os.RemoveAll(filepath.Join(d.home, "cache", "objects")); err != nil {
		d.t.Fatal(err)
	}
	d.start()
}

func (d *daemon) cleanup() {
	if d.running() {
		if err := d.terminate(); err != nil {
			d.t.Errorf("at the end of the test: %v", err)
		}
	}
	if isMounted(d.mnt) {
		// Only after a kill -9 that no start cleaned up, or a failed stop.
		if err := syscall.Unmount(d.mnt, syscall.MNT_DETACH); err != nil {
			d.t.Errorf("cleanup: cannot detach %s: %v", d.mnt, err)
		}
	}
	d.checkLogLevels()
	if d.t.Failed() {
		d.t.Logf("daemon output (last 150 lines of all runs):\n%s", lastLines(d.output(), 150))
		d.t.Logf("last lines of %s:\n%s", filepath.Join(d.home, "tapefs.log"), tailFile(filepath.Join(d.home, "tapefs.log"), 40))
	}
}

// allowErrors declares error-level log lines the test provokes on
// purpose (by a substring of their message or error); any other error
// logged by the daemon fails the test.
func (d *daemon) allowErrors(substrings ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.allowed = append(d.allowed, substrings...)
}

// checkLogLevels fails the test for error-level lines of the daemon's log
// that the test did not declare, and logs how many warnings there were.
func (d *daemon) checkLogLevels() {
	b, err := os.ReadFile(filepath.Join(d.home, "tapefs.log"))
	if err != nil {
		return // the daemon never started
	}
	d.mu.Lock()
	allowed := d.allowed
	d.mu.Unlock()
	warnings := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		var e logEvent
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		msg := e.str("message")
		switch e.str("level") {
		case "warn":
			// go-fuse names each orphaned inode: count them as one kind.
			if i := strings.Index(msg, "Inode.Path: n"); i >= 0 {
				msg = "go-fuse: Inode.Path: (inode) is orphaned"
			}
			warnings[msg]++
		case "error", "fatal", "panic":
			ok := false
			for _, a := range allowed {
				ok = ok || strings.Contains(line, a)
			}
			if !ok {
				d.t.Errorf("the daemon logged an error: %s", line)
			}
		}
	}
	if len(warnings) > 0 {
		var lines []string
		for m, n := range warnings {
			lines = append(lines, fmt.Sprintf("%6d × %s", n, m))
		}
		sort.Strings(lines)
		d.t.Logf("daemon warnings:\n%s", strings.Join(lines, "\n"))
	}
}

// isMounted reports whether something is mounted on path.
func isMounted(path string) bool {
	_, ok := mountinfo.Lookup(path)
	return ok
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// logEvent is one JSON line of HOME/tapefs.log.
type logEvent map[string]any

func (e logEvent) str(k string) string {
	v, _ := e[k].(string)
	return v
}

func (e logEvent) num(k string) int64 {
	switch v := e[k].(type) {
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return -1
}

// logEvents returns the events of the daemon's log with the given message
// (all events for "").
func (d *daemon) logEvents(message string) []logEvent {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.home, "tapefs.log"))
	if err != nil {
		d.t.Fatalf("daemon log: %v", err)
	}
	var out []logEvent
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e logEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			d.t.Errorf("tapefs.log: a line that is not JSON: %q", line)
			continue
		}
		if message == "" || e.str("message") == message {
			out = append(out, e)
		}
	}
	return out
}

// waitLogEvents waits until the daemon's log has at least n events with
// the message (they may be logged a moment after the effect a test saw)
// and returns all of them.
func (d *daemon) waitLogEvents(message string, n int, timeout time.Duration) []logEvent {
	d.t.Helper()
	var ev []logEvent
	waitFor(d.t, timeout, fmt.Sprintf("%d %q line(s) in the log", n, message), func() (bool, string) {
		ev = d.logEvents(message)
		return len(ev) >= n, fmt.Sprintf("%d", len(ev))
	})
	return ev
}

// sh runs a bash script (set -eo pipefail) in dir and fails the test with
// its output when it fails. It returns the combined output.
func sh(t *testing.T, dir, script string) string {
	t.Helper()
	out, err := shErr(dir, script)
	if err != nil {
		t.Fatalf("%s\n(in %s): %v\n%s", script, dir, err, out)
	}
	return out
}

// shErr runs a bash script in dir and returns its combined output and error.
func shErr(dir, script string) (string, error) {
	cmd := exec.Command("bash", "-c", "set -eo pipefail\n"+script)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// q quotes a path for the shell.
func q(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// xattr reads an extended attribute (of the link itself for a symlink).
func xattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.EINTR) {
			// The Go runtime preempts this thread with SIGURG; the
			// kernel turns the signal into a FUSE INTERRUPT of a
			// getxattr that waits (an md5 still being computed), and
			// the daemon rightly answers EINTR. A C tool sees no such
			// signal; retry as the os package does for its calls.
			continue
		}
		if err != nil {
			return "", fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		return string(buf[:n]), nil
	}
}

func mustXattr(t *testing.T, path, name string) string {
	t.Helper()
	v, err := xattr(path, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitFor polls cond every 50 ms until it holds or timeout passes; then it
// fails the test saying what was awaited and the last state seen.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; last seen: %s", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// batchIDs lists the batch directories of a workspace in the mount.
func (d *daemon) batchIDs(ws string) []string {
	d.t.Helper()
	ents, err := os.ReadDir(d.ws(ws))
	if err != nil {
		d.t.Fatalf("list workspace: %v", err)
	}
	var ids []string
	for _, e := range ents {
		if e.Name() == "put" {
			continue
		}
		if _, err := strconv.ParseUint(e.Name(), 10, 64); err != nil {
			d.t.Errorf("workspace %s holds %q: neither put nor a batch ID", ws, e.Name())
			continue
		}
		ids = append(ids, e.Name())
	}
	sort.Slice(ids, func(i, j int) bool {
		a, _ := strconv.ParseUint(ids[i], 10, 64)
		b, _ := strconv.ParseUint(ids[j], 10, 64)
		return a < b
	})
	return ids
}

// waitNewBatch waits for a batch that is not in before to appear in the
// workspace and returns its ID.
func (d *daemon) waitNewBatch(ws string, before []string, timeout time.Duration) string {
	d.t.Helper()
	old := map[string]bool{}
	for _, id := range before {
		old[id] = true
	}
	var id string
	waitFor(d.t, timeout, "a new batch in "+ws, func() (bool, string) {
		ids := d.batchIDs(ws)
		for _, x := range ids {
			if !old[x] {
				id = x
				return true, ""
			}
		}
		return false, fmt.Sprintf("batches %v, put/ %v", ids, listNames(d.put(ws)))
	})
	return id
}

// waitBatchState polls user.tapefs.state of a batch until it is want. A
// batch that turns FAILED fails the test at once.
func (d *daemon) waitBatchState(ws, id, want string, timeout time.Duration) {
	d.t.Helper()
	dir := filepath.Join(d.ws(ws), id)
	t0 := time.Now()
	waitFor(d.t, timeout, fmt.Sprintf("batch %s/%s to be %s", ws, id, want), func() (bool, string) {
		st, err := xattr(dir, "user.tapefs.state")
		if err != nil {
			return false, err.Error()
		}
		if st == "FAILED" && want != "FAILED" {
			d.t.Fatalf("batch %s/%s is FAILED (waiting for %s)", ws, id, want)
		}
		return st == want, st
	})
	d.t.Logf("batch %s/%s %s after %v", ws, id, want, time.Since(t0).Round(time.Millisecond))
}

// cpSynced copies the tree src into put/ of the default workspace with
// cp -a, waits for its batch to reach CACHED_SYNCED and returns its ID.
func (d *daemon) cpSynced(src string, timeout time.Duration) string {
	d.t.Helper()
	before := d.batchIDs("default")
	sh(d.t, "/", "cp -a "+q(src)+" "+q(d.put("default")+"/"))
	return d.waitSynced("default", before, timeout)
}

// waitSynced waits for a new batch and for it to be wholly on tape:
// CACHED_SYNCED, or SYNCED when a small cache's watermark eviction has
// already taken some of its objects.
func (d *daemon) waitSynced(ws string, before []string, timeout time.Duration) string {
	d.t.Helper()
	t0 := time.Now()
	id := d.waitNewBatch(ws, before, timeout)
	dir := filepath.Join(d.ws(ws), id)
	waitFor(d.t, timeout-time.Since(t0), fmt.Sprintf("batch %s/%s on tape", ws, id), func() (bool, string) {
		st, err := xattr(dir, "user.tapefs.state")
		if err != nil {
			return false, err.Error()
		}
		if st == "FAILED" {
			d.t.Fatalf("batch %s/%s is FAILED (waiting for it to be on tape)", ws, id)
		}
		return st == "CACHED_SYNCED" || st == "SYNCED", st
	})
	d.t.Logf("batch %s/%s on tape after %v", ws, id, time.Since(t0).Round(time.Millisecond))
	return id
}

func listNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// seal asks for an entry of put/ to be sealed now, with setfattr.
func seal(t *testing.T, entry string) {
	t.Helper()
	sh(t, "/", "setfattr -n user.tapefs.seal "+q(entry))
}

// objectFiles counts the regular files under HOME/cache/objects.
func (d *daemon) objectFiles() int {
	n := 0
	_ = filepath.WalkDir(filepath.Join(d.home, "cache", "objects"), func(_ string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// stat is lstat that fails the test.
func stat(t *testing.T, path string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	return &st
}
