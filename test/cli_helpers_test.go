package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tapefs/tapefs/api"
)

// Helpers of the command-line tests (cli_test.go): a `tapefs serve`
// daemon in a subprocess, and the CLI run as root or as an unprivileged
// user.

// nobodyUID is the unprivileged user the CLI tests run commands as
// (setpriv --reuid/--regid --clear-groups).
const nobodyUID = 65534

// server is one `tapefs serve` daemon (no mount) on its own home.
type server struct {
	t     *testing.T
	home  string
	flags []string // more flags of serve
	proc           // the runs of `tapefs serve`
}

// startServer runs `tapefs serve` on a fresh home under a directory other
// users can traverse (so that an unprivileged CLI reaches the socket), and
// waits until the control socket accepts connections.
func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	s := &server{t: t, home: filepath.Join(sharedTempDir(t), "home"), flags: flags, proc: proc{name: "tapefs serve"}}
	t.Cleanup(s.cleanup)
	s.start()
	return s
}

func (s *server) sock() string { return filepath.Join(s.home, "tapefs.sock") }

// start runs the daemon and waits for its control socket.
func (s *server) start() {
	s.t.Helper()
	args := []string{"serve", "--home", s.home, "--http", "", "--time-scale", "0", "--settle", "1s",
		"--flush-age", "1s", "--recall-linger", "1ms"}
	args = append(args, s.flags...)
	// A socket left by a previous run must not pass for the new daemon's.
	_ = os.Remove(s.sock())
	run, done := s.proc.start(s.t, cleanEnv(append([]string{"HOME=" + filepath.Dir(s.home)}, catalogEnv(s.home)...)...), args, nil)
	t0 := time.Now()
	deadline := t0.Add(60 * time.Second)
	for {
		c, err := net.Dial("unix", s.sock())
		if err == nil {
			c.Close()
			s.t.Logf("tapefs serve run %d ready after %v (pid %d)", run, time.Since(t0).Round(time.Millisecond), s.process().Pid)
			return
		}
		select {
		case <-done:
			s.t.Fatalf("tapefs serve exited before its control socket accepted connections (%v)\n%s", s.exitErr(), s.output())
		default:
		}
		if time.Now().After(deadline) {
			s.quit()
			s.t.Fatalf("tapefs serve: %s does not accept connections after 60s: %v\n%s", s.sock(), err, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and expects exit status 0.
func (s *server) stop() {
	s.t.Helper()
	if err := s.terminate(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) cleanup() {
	if s.running() {
		if err := s.terminate(); err != nil {
			s.t.Errorf("at the end of the test: %v", err)
		}
	}
	// The harness's check of the log: no error-level line.
	(&daemon{t: s.t, home: s.home}).checkLogLevels()
	if s.t.Failed() {
		s.t.Logf("tapefs serve output (last 100 lines of all runs):\n%s", lastLines(s.output(), 100))
		s.t.Logf("last lines of %s:\n%s", filepath.Join(s.home, "tapefs.log"), tailFile(filepath.Join(s.home, "tapefs.log"), 40))
	}
}

// sharedTempDir is t.TempDir made traversable by other users (the test's
// own temporary root is 0700): an unprivileged user can reach what the
// test puts there, as far as the modes inside allow.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cleanEnv is the test's environment without any TAPEFS_* setting of the
// machine, with the configuration files pointed at paths that do not
// exist, and extra (KEY=VALUE) on top: later entries win.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TAPEFS_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"HOME=/nonexistent-tapefs-e2e-home",
		"TAPEFS_SYSTEM_CONFIG=/nonexistent-tapefs-e2e/system.conf",
		"TAPEFS_USER_CONFIG=/nonexistent-tapefs-e2e/user.conf",
		"TAPEFS_ET_SYSTEM_CONFIG=/nonexistent-tapefs-e2e/et_config")
	return append(env, extra...)
}

// cliOpts says how to run a command of the CLI.
type cliOpts struct {
	home   string   // TAPEFS_HOME ("" = none)
	nobody bool     // run as uid/gid 65534 without supplementary groups
	dir    string   // working directory ("" = /)
	env    []string // more KEY=VALUE, after the defaults
}

// cliResult is what a CLI command did.
type cliResult struct {
	args           []string
	code           int
	stdout, stderr string
	took           time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("tapefs %s: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code,
		r.took.Round(time.Millisecond), lastLines(r.stdout, 40), lastLines(r.stderr, 40))
}

// tapefsCmd builds the command: the binary under test, through setpriv
// for the unprivileged user.
func tapefsCmd(t *testing.T, o cliOpts, args ...string) *exec.Cmd {
	t.Helper()
	var cmd *exec.Cmd
	if o.nobody {
		setpriv := needSetpriv(t)
		id := strconv.Itoa(nobodyUID)
		cmd = exec.Command(setpriv, append([]string{"--reuid=" + id, "--regid=" + id, "--clear-groups", "--", tapefsBin}, args...)...)
	} else {
		cmd = exec.Command(tapefsBin, args...)
	}
	extra := []string{}
	if o.home != "" {
		extra = append(extra, "TAPEFS_HOME="+o.home)
	}
	cmd.Env = cleanEnv(append(extra, o.env...)...)
	cmd.Dir = o.dir
	if cmd.Dir == "" {
		cmd.Dir = "/"
	}
	return cmd
}

// runTapefs runs a command of the CLI and returns what it did; it fails the
// test only when the command cannot be run at all.
func runTapefs(t *testing.T, o cliOpts, args ...string) cliResult {
	t.Helper()
	r, err := runCmd(tapefsCmd(t, o, args...), args)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runCmd runs a command built by tapefsCmd; it is safe in any goroutine.
// The error is only for a command that could not be run at all.
func runCmd(cmd *exec.Cmd, args []string) (cliResult, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	r := cliResult{args: args, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(t0)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		return r, fmt.Errorf("run tapefs %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}

// cliOK runs a command that must exit 0.
func cliOK(t *testing.T, o cliOpts, args ...string) cliResult {
	t.Helper()
	r := runTapefs(t, o, args...)
	if r.code != 0 {
		t.Fatalf("want exit 0\n%s", r)
	}
	return r
}

// wantCode fails the test unless r exited with code.
func wantCode(t *testing.T, r cliResult, code int) {
	t.Helper()
	if r.code != code {
		t.Errorf("want exit %d\n%s", code, r)
	}
}

// batchID reads the stdout of put or seal: the batch ID alone on a line.
func batchID(t *testing.T, r cliResult) uint64 {
	t.Helper()
	s := r.stdout
	if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Fatalf("stdout should be the batch ID alone on one line\n%s", r)
	}
	id, err := strconv.ParseUint(strings.TrimSuffix(s, "\n"), 10, 64)
	if err != nil || id == 0 {
		t.Fatalf("stdout %q is not a batch ID\n%s", s, r)
	}
	return id
}

func idArg(id uint64) string { return strconv.FormatUint(id, 10) }

// batchesJSON lists the live batches of a workspace with ls -F json.
func batchesJSON(t *testing.T, o cliOpts, ws string) []api.Batch {
	t.Helper()
	r := cliOK(t, o, "ls", "-w", ws, "-L", "batch", "-F", "json")
	var out []api.Batch
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("ls -F json: %v\n%s", err, r)
	}
	return out
}

// batchJSON is the status of one batch (ls -b ID -L batch -F json).
func batchJSON(t *testing.T, o cliOpts, id uint64) api.Batch {
	t.Helper()
	r := cliOK(t, o, "ls", "-b", idArg(id), "-L", "batch", "-F", "json")
	var out []api.Batch
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("ls -b %d -L batch -F json: want one batch (%v)\n%s", id, err, r)
	}
	return out[0]
}

// filesJSON lists the files of a batch (ls -b ID -L file -F json).
func filesJSON(t *testing.T, o cliOpts, id uint64) []api.FileInfo {
	t.Helper()
	r := cliOK(t, o, "ls", "-b", idArg(id), "-L", "file", "-F", "json")
	var out []api.FileInfo
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("ls -F json: %v\n%s", err, r)
	}
	return out
}

// regularPaths are the paths of the regular files of a listing.
func regularPaths(files []api.FileInfo) map[string]bool {
	out := map[string]bool{}
	for _, f := range files {
		if f.Type == api.TypeFile {
			out[f.Path] = true
		}
	}
	return out
}

var setprivOnce struct {
	sync.Once
	path string
	err  error
}

// needSetpriv finds setpriv (util-linux) and makes the binary under test
// executable by other users (TestMain builds it in a 0700 directory). A
// missing setpriv fails the test: the suite never skips in CI.
func needSetpriv(t *testing.T) string {
	t.Helper()
	setprivOnce.Do(func() {
		setprivOnce.path, setprivOnce.err = exec.LookPath("setpriv")
		if setprivOnce.err != nil {
			setprivOnce.err = fmt.Errorf("setpriv (util-linux) is needed to run commands as an unprivileged user: %w", setprivOnce.err)
			return
		}
		if os.Geteuid() != 0 {
			setprivOnce.err = fmt.Errorf("running commands as uid %d needs root (euid %d)", nobodyUID, os.Geteuid())
			return
		}
		setprivOnce.err = os.Chmod(filepath.Dir(tapefsBin), 0o711)
	})
	if setprivOnce.err != nil {
		t.Fatal(setprivOnce.err)
	}
	return setprivOnce.path
}

// treeSnapshot lists every path under root (relative) with its type,
// skipping the subtrees in skip (absolute paths).
func treeSnapshot(t *testing.T, root string, skip ...string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, s := range skip {
			if p == s && d.IsDir() {
				return fs.SkipDir
			}
			if p == s {
				return nil
			}
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = d.Type()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
