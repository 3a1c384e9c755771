package test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tapefs/tapefs/cli"
)

// TestDaemonConfigErrorsExit4: every kind of bad configuration of mount
// and serve — a flag's value, a configuration file's value or syntax, an
// environment variable, the --http address, the mount point argument —
// stops the daemon before it touches a home, with a message naming the
// culprit and exit code 4, as README and `tapefs help exit-codes` say
// (issue 8, fault 7: it was 1).
func TestDaemonConfigErrorsExit4(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	conf := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badValue := conf("bad-value.conf", "[Daemon]\nsettle = soon\n")
	badSyntax := conf("bad-syntax.conf", "[Daemon\nsettle = 1s\n")
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	notEmpty := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(notEmpty, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  []string
		want string // in the message
	}{
		{"flag value", []string{"--settle", "soon"}, nil, "--settle"},
		{"size flag", []string{"--cache-size", "lots"}, nil, "cache-size"},
		{"log level", []string{"--log-level", "loud"}, nil, "log-level"},
		{"unknown flag", []string{"--colour", "blue"}, nil, "colour"},
		{"config file value", []string{"--config", badValue}, nil, badValue + ":2:"},
		{"config file syntax", nil, []string{"TAPEFS_USER_CONFIG=" + badSyntax}, badSyntax + ":1:"},
		{"missing --config", []string{"--config", filepath.Join(dir, "missing.conf")}, nil, "missing.conf"},
		{"environment", nil, []string{"TAPEFS_TIME_SCALE=fast"}, "TAPEFS_TIME_SCALE"},
		{"http not an address", []string{"--http", "localhost"}, nil, "--http"},
		{"http bad port", []string{"--http", "127.0.0.1:99999"}, nil, "99999"},
		{"http off loopback without token", []string{"--http", "0.0.0.0:0"}, nil, "--http-token"},
	}
	for _, c := range cases {
		for _, cmd := range []string{"serve", "mount"} {
			t.Run(cmd+" "+c.name, func(t *testing.T) {
				home := filepath.Join(t.TempDir(), "home")
				args := append([]string{cmd, "--home", home}, c.args...)
				if cmd == "mount" {
					args = append(args, mnt)
				}
				r := runDaemonCmd(t, c.env, args...)
				if r.code != cli.ExitUsage || !strings.Contains(r.stderr, c.want) {
					t.Errorf("want exit %d and a message with %q\n%s", cli.ExitUsage, c.want, r)
				}
				if _, err := os.Stat(filepath.Join(home, "catalog.db")); err == nil {
					t.Errorf("a daemon refused for its configuration created a catalog in %s", home)
				}
			})
		}
	}
	for _, c := range []struct {
		name, mnt, want string
	}{
		{"missing mount point", filepath.Join(dir, "nowhere"), "does not exist"},
		{"mount point is a file", badValue, "not a directory"},
		{"mount point not empty", notEmpty, "not empty"},
	} {
		t.Run("mount "+c.name, func(t *testing.T) {
			needMount(t)
			r := runDaemonCmd(t, nil, "mount", "--home", filepath.Join(t.TempDir(), "home"), "--http", "", c.mnt)
			if r.code != cli.ExitUsage || !strings.Contains(r.stderr, c.want) {
				t.Errorf("want exit %d and a message with %q\n%s", cli.ExitUsage, c.want, r)
			}
		})
	}
	// Not a configuration error: a home in use is 1.
	t.Run("home in use", func(t *testing.T) {
		s := startServer(t)
		r := runDaemonCmd(t, nil, "serve", "--home", s.home, "--http", "")
		if r.code != cli.ExitFailed || !strings.Contains(r.stderr, "in use by another tapefs daemon") {
			t.Errorf("want exit %d, home in use\n%s", cli.ExitFailed, r)
		}
	})
}

// runDaemonCmd runs mount or serve that is expected to stop at once (60 s
// at most), with a clean environment plus env.
func runDaemonCmd(t *testing.T, env []string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(tapefsBin, args...)
	cmd.Env = cleanEnv(env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan struct{})
	timer := time.AfterFunc(60*time.Second, func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	r, err := runCmd(cmd, args)
	close(done)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestDaemonSurvivesLogReaderGone: `tapefs mount 2>&1 | tee log`, then the
// reader dies (Ctrl-C kills tee with the daemon): the daemon keeps
// working, and on SIGTERM it logs "stopping" to its log file, unmounts
// and exits 0 (issue 8, fault 8: it died of SIGPIPE and left a dead
// mount).
func TestDaemonSurvivesLogReaderGone(t *testing.T) {
	t.Parallel()
	needMount(t)
	root := t.TempDir()
	home, mnt := filepath.Join(root, "home"), filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if isMounted(mnt) {
			t.Errorf("%s still mounted at the end of the test", mnt)
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	cmd := exec.Command(tapefsBin, append(append([]string{"mount", "--home", home, "--http", "127.0.0.1:0"}, fastFlags()...), mnt)...)
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	// exited gets the exit status, and is closed after it.
	exited := make(chan error, 1)
	go func() {
		exited <- cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Kill() // fails once it has exited
		for range exited {
		}
	}()
	// Read as tee would until the mount is ready, then go away.
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if sc.Text() == "tapefs: mounted at "+mnt {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("tapefs mount ended its output before it was mounted: %v\n%s", <-exited, tailFile(filepath.Join(home, "tapefs.log"), 20))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("tapefs mount not ready after 60 s")
	}
	pr.Close()

	// Work that logs: an entry is put, sealed and written to tape.
	src := filepath.Join(root, "src")
	if err := os.MkdirAll(filepath.Join(src, "run1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "run1", "a.dat"), []byte("after the reader left\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, root, "cp -a src/run1 "+q(filepath.Join(mnt, "default", "put")))
	waitFor(t, 60*time.Second, "the entry to be sealed into a batch and logged", func() (bool, string) {
		select {
		case err := <-exited:
			t.Fatalf("the daemon died once its log reader was gone: %v\n%s", err, tailFile(filepath.Join(home, "tapefs.log"), 20))
		default:
		}
		b, _ := os.ReadFile(filepath.Join(home, "tapefs.log"))
		return strings.Contains(string(b), `"event":"sealed"`), lastLines(string(b), 3)
	})
	if got := sh(t, root, "cat "+q(mnt)+"/default/*/run1/a.dat"); got != "after the reader left\n" {
		t.Fatalf("read back %q", got)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM with its log reader gone the daemon exited with %v; want status 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not exit within 60 s of SIGTERM")
	}
	if isMounted(mnt) {
		t.Errorf("%s is still mounted after the daemon's exit", mnt)
	}
	log := tailFile(filepath.Join(home, "tapefs.log"), 200)
	for _, msg := range []string{`"message":"stopping"`, `"message":"stopped"`} {
		if !strings.Contains(log, msg) {
			t.Errorf("the log file has no %s line:\n%s", msg, lastLines(log, 10))
		}
	}
}

// TestMakeRunAfterCrash: `make run`, the daemon killed with SIGKILL (its
// mount stays, dead), then `make run` again must start: make's mkdir of
// the mount point used to fail on the dead mount before the daemon could
// detach it (issue 8, fault 8).
func TestMakeRunAfterCrash(t *testing.T) {
	t.Parallel()
	needMount(t)
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Fatalf("make is needed to test make run: %v", err)
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	home, mnt := filepath.Join(root, "home"), filepath.Join(root, "mnt")
	t.Cleanup(func() {
		if isMounted(mnt) {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	// The recipe of make run as it is, on the binary under test: GO=true
	// makes its build step a no-op.
	run := func() (*exec.Cmd, chan error, *syncBuf) {
		cmd := exec.Command(mk, "-s", "-C", repo, "run", "GO=true", "BIN="+tapefsBin, "RUN_HOME="+home, "RUN_MNT="+mnt)
		cmd.Env = cleanEnv()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out := &syncBuf{}
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan error, 1)
		exited := make(chan error, 1)
		go func() {
			err := cmd.Wait()
			pw.Close()
			exited <- err
		}()
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				out.WriteString(sc.Text() + "\n")
				if sc.Text() == "tapefs: mounted at "+mnt {
					ready <- nil
				}
			}
			ready <- errors.New("make run ended its output")
		}()
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("make run did not mount: %v; exit %v\n%s", err, <-exited, out)
			}
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			t.Fatalf("make run not ready after 60 s\n%s", out)
		}
		return cmd, exited, out
	}
	daemonPID := func() int {
		b, err := os.ReadFile(filepath.Join(home, "tapefs.lock"))
		pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || perr != nil {
			t.Fatalf("daemon pid from the lock file: %v %v", err, perr)
		}
		return pid
	}

	_, exited, out := run()
	if err := syscall.Kill(daemonPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run still running 30 s after its daemon was killed\n%s", out)
	}
	if !isMounted(mnt) {
		t.Fatalf("no dead mount left at %s after kill -9: the test proves nothing", mnt)
	}
	if _, err := os.Stat(mnt); !errors.Is(err, syscall.ENOTCONN) {
		t.Logf("stat of the dead mount: %v", err)
	}

	cmd, exited, out := run()
	if _, err := os.Stat(filepath.Join(mnt, "default", "put")); err != nil {
		t.Errorf("the new mount does not work: %v", err)
	}
	if err := syscall.Kill(daemonPID(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("make run after SIGTERM of its daemon: %v; want status 0\n%s", err, out)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("make run still running 60 s after SIGTERM of its daemon\n%s", out)
	}
	if isMounted(mnt) {
		t.Errorf("%s still mounted after the daemon stopped", mnt)
	}
}

// syncBuf is an output collected by one goroutine and read by another.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) WriteString(x string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(x)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
