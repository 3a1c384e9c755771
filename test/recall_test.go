package test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Slow recalls. --tape-speed sets the drives' streaming rate of the
// virtual library, and like every simulated tape cost it is really waited
// only times --time-scale. With 160 KiB/s at a scale of 0.02, a file of
// slowFileSize streams for about 4 s (205 simulated seconds), one way and
// the other; mounting and locating a cartridge (about 36 simulated
// seconds) costs under a second.
const (
	slowTimeScale = "0.02"
	tapeSpeed     = "163840" // bytes per second, simulated
	slowFileSize  = 32 << 20
)

func slowRecallFlags() []string {
	return []string{"--time-scale", slowTimeScale, "--tape-speed", tapeSpeed,
		"--settle", "1s", "--flush-age", "1s", "--recall-linger", "1ms"}
}

// putFile writes a file of pseudo-random bytes as its own entry of put/,
// waits until its batch is synced, and returns the path of the file in the
// batch and its md5.
func putFile(t *testing.T, d *daemon, name string, size int64, seed uint64) (string, string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	writeBig(t, src, size, seed)
	sum := fileMD5(t, src)
	before := d.batchIDs("default")
	sh(t, "/", "cp "+q(src)+" "+q(d.put("default")+"/"))
	id := d.waitSynced("default", before, 2*time.Minute)
	return filepath.Join(d.ws("default"), id, name), sum
}

// startCmd starts a command with its output collected. If the test ends
// before it is waited for, it is killed first, so that no reader holds the
// mount while the daemon stops.
func startCmd(t *testing.T, name string, args ...string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	var out strings.Builder
	c := exec.Command(name, args...)
	c.Stdout, c.Stderr = &out, &out
	// Its own process group, killed whole: a shell pipeline's readers
	// (xargs -P32 cat) must not outlive a failed test, holding the mount
	// busy while the daemon stops.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			killGroup(c)
			_ = c.Wait()
		}
	})
	return c, &out
}

// killGroup kills a command started by startCmd and everything it started.
func killGroup(c *exec.Cmd) {
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	_ = c.Process.Kill()
}

// md5sumCmd starts md5sum of a file through the mount.
func md5sumCmd(t *testing.T, path string) (*exec.Cmd, *strings.Builder) {
	t.Helper()
	return startCmd(t, "md5sum", path)
}

// waitCmd waits for a started command, failing the test after timeout.
func waitCmd(t *testing.T, c *exec.Cmd, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		killGroup(c)
		<-done
		t.Fatalf("%s did not finish within %v", strings.Join(c.Args, " "), timeout)
		return nil
	}
}

// waitFileState polls user.tapefs.state of a file until it is want.
func waitFileState(t *testing.T, path, want string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, filepath.Base(path)+" to be "+want, func() (bool, string) {
		s, err := xattr(path, "user.tapefs.state")
		if err != nil {
			return false, err.Error()
		}
		return s == want, s
	})
}

// TestConcurrentReadersShareOneRecall reads one offline file with two
// md5sum processes at once: both get the right bytes and the engine makes
// exactly one recall pass of one file.
func TestConcurrentReadersShareOneRecall(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, slowRecallFlags()...)
	path, sum := putFile(t, d, "one.dat", slowFileSize, 11)
	d.evict()
	if s := mustXattr(t, path, "user.tapefs.state"); s != "offline" {
		t.Fatalf("one.dat is %q after eviction; want offline", s)
	}
	t0 := time.Now()
	c1, out1 := md5sumCmd(t, path)
	c2, out2 := md5sumCmd(t, path)
	err1 := waitCmd(t, c1, 2*time.Minute)
	err2 := waitCmd(t, c2, 2*time.Minute)
	t.Logf("two concurrent readers done after %v", time.Since(t0).Round(time.Millisecond))
	for i, r := range []struct {
		err error
		out string
	}{{err1, out1.String()}, {err2, out2.String()}} {
		if r.err != nil || !strings.HasPrefix(r.out, sum+" ") {
			t.Errorf("reader %d: %v: %q; want md5 %s", i+1, r.err, r.out, sum)
		}
	}
	// Both readers are done, so no other pass can start now; the one pass
	// may log a moment after the last bytes were handed out.
	passes := d.waitLogEvents("recall pass done", 1, 30*time.Second)
	if len(passes) != 1 || passes[0].num("files") != 1 {
		t.Errorf("recall passes %v; want exactly one, with files=1", passes)
	}
	if s := mustXattr(t, path, "user.tapefs.state"); s != "online" {
		t.Errorf("one.dat is %q after it was read; want online", s)
	}
}

// TestKilledReaderLeavesReadableFile starts a reader (dd) of an offline
// file, checks that the first bytes arrive while the file is still being
// staged (streaming), kills the reader with SIGKILL mid-recall, and
// expects the recall to go on by itself and the file to read correctly.
func TestKilledReaderLeavesReadableFile(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, slowRecallFlags()...)
	path, sum := putFile(t, d, "two.dat", slowFileSize, 12)
	d.evict()

	dd, ddOut := startCmd(t, "dd", "if="+path, "of=/dev/null", "bs=1M")
	waitFileState(t, path, "staging", 30*time.Second)

	// Streaming: the first 64 KiB come before the whole file is staged.
	first := make(chan error, 1)
	go func() {
		f, err := os.Open(path)
		if err == nil {
			_, err = f.Read(make([]byte, 64<<10))
			f.Close()
		}
		first <- err
	}()
	select {
	case err := <-first:
		if err != nil {
			t.Errorf("reading the first 64 KiB during the recall: %v", err)
		}
		if s := mustXattr(t, path, "user.tapefs.state"); s != "staging" {
			t.Errorf("the first 64 KiB came when the file was %q; want them while it is still staging", s)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the first 64 KiB did not come within 30s")
	}

	if s := mustXattr(t, path, "user.tapefs.state"); s != "staging" {
		t.Fatalf("two.dat is %q before the reader is killed; the recall must still run (slow it down with --tape-speed)", s)
	}
	if err := dd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := waitCmd(t, dd, 10*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("dd: %v (%s); want it killed mid-recall by SIGKILL", err, ddOut.String())
	}
	// Nobody reads now: the recall must finish on its own.
	waitFileState(t, path, "online", time.Minute)
	out := sh(t, "/", "md5sum "+q(path))
	if !strings.HasPrefix(out, sum+" ") {
		t.Errorf("md5sum after the killed reader: %q; want %s", out, sum)
	}
	if passes := d.waitLogEvents("recall pass done", 1, 30*time.Second); len(passes) != 1 {
		t.Errorf("recall passes %v; want exactly one", passes)
	}
}

// TestKill9DuringRecall kills the daemon with SIGKILL while a reader
// waits on a recall; the reader must not hang, and after a restart (on
// the stale mount) the file reads correctly.
func TestKill9DuringRecall(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, slowRecallFlags()...)
	path, sum := putFile(t, d, "three.dat", slowFileSize, 13)
	d.evict()

	c, out := md5sumCmd(t, path)
	waitFileState(t, path, "staging", 30*time.Second)
	// Kill in mid-stream: the object's partial file in the cache has
	// bytes, not all of them (the state says staging from the queue on).
	waitFor(t, 60*time.Second, "the recall streaming into the cache", func() (bool, string) {
		m, _ := filepath.Glob(filepath.Join(d.home, "cache", "objects", "*", "*.partial"))
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.Size() > 0 && st.Size() < slowFileSize {
				return true, ""
			}
		}
		return false, fmt.Sprint("partials: ", m)
	})
	d.kill9()
	if err := waitCmd(t, c, 30*time.Second); err == nil {
		t.Errorf("md5sum succeeded through a killed daemon: %q", out.String())
	} else {
		t.Logf("reader after kill -9 of the daemon: %v: %s", err, strings.TrimSpace(out.String()))
	}
	d.startAfterKill9()
	got := sh(t, "/", "md5sum "+q(path))
	if !strings.HasPrefix(got, sum+" ") {
		t.Errorf("md5sum after restart: %q; want %s", got, sum)
	}
	if s := mustXattr(t, path, "user.tapefs.state"); s != "online" {
		t.Errorf("three.dat is %q after it was read; want online", s)
	}
}

// The mount lets direct-I/O handles be mapped shared (for put/). A batch
// file opened while it is being recalled is such a handle; mapped shared,
// it holds the file's inode in the kernel's cached mode, in which an open
// with kernel passthrough fails with EIO. So while it is open, another
// reader of the file, arriving once the object is cached, must get a
// handle through the daemon instead, and read the right bytes.
func TestBatchSharedMapDuringRecallLeavesOtherReadersWorking(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, slowRecallFlags()...)
	const size = 2 << 20
	p, sum := putFile(t, d, "mapped.dat", size, 11)
	d.evict()
	if s := mustXattr(t, p, "user.tapefs.state"); s != "offline" {
		t.Fatalf("%s is %q after eviction, want offline", p, s)
	}

	// Opened while offline: a direct-I/O handle, mapped shared.
	a, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	m, err := syscall.Mmap(int(a.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap MAP_SHARED of a batch file being recalled: %v", err)
	}
	defer func() { _ = syscall.Munmap(m) }()
	// Reading through the mapping recalls the file.
	if got := md5Hex(string(m)); got != sum {
		t.Fatalf("read through the shared mapping: md5 %s, want %s", got, sum)
	}
	waitFor(t, 30*time.Second, "the file cached (online)", func() (bool, string) {
		s, err := xattr(p, "user.tapefs.state")
		return s == "online", fmt.Sprintf("%q %v", s, err)
	})

	// Another reader while the mapping lives: no EIO.
	if got := fileMD5(t, p); got != sum {
		t.Errorf("a second reader while the file is mapped shared: md5 %s, want %s", got, sum)
	}
	if err := syscall.Munmap(m); err != nil {
		t.Fatal(err)
	}
	m = nil
	a.Close()
	// And once the mapping is gone: the same bytes (by passthrough again).
	if got := fileMD5(t, p); got != sum {
		t.Errorf("a reader after the mapping is gone: md5 %s, want %s", got, sum)
	}
}
