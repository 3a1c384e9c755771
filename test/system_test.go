package test

// System integration: --version, the mount helper (mount -t fuse.tapefs,
// fstab), the service manager's notify protocol, log reopen on SIGHUP, df,
// make install.

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tapefs/tapefs/cli"
)

// TestVersion: tapefs --version and tapefs version name the commit the
// binary was built from.
func TestVersion(t *testing.T) {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	want := regexp.MustCompile(`^tapefs \S+ \(commit ` + regexp.QuoteMeta(string(rev[:12])) + `(\+dirty)?, go[0-9.]+\S*\)\n$`)
	var outs []string
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, err := exec.Command(tapefsBin, args...).Output()
		if err != nil {
			t.Fatalf("tapefs %s: %v\n%s", args[0], err, out)
		}
		if !want.Match(out) {
			t.Errorf("tapefs %s printed %q, want a line matching %s", args[0], out, want)
		}
		outs = append(outs, string(out))
	}
	if outs[0] != outs[1] {
		t.Errorf("--version %q and version %q differ", outs[0], outs[1])
	}
}

// waitStopped waits until the daemon of home has logged "stopped" (the
// mount helper's daemon is not a child of the test).
func waitStopped(t *testing.T, home string) {
	t.Helper()
	waitFor(t, 60*time.Second, "the daemon of "+home+" to stop", func() (bool, string) {
		b, _ := os.ReadFile(filepath.Join(home, "tapefs.log"))
		return strings.Contains(string(b), `"message":"stopped"`), lastLines(string(b), 3)
	})
}

// TestMountHelper mounts through mount(8) as an administrator would: with
// mount -t fuse.tapefs HOME MNT, and with an fstab line (mount -T FILE
// MNT). mount(8) looks for mount.fuse.tapefs in /sbin only, so the test
// runs in a mount namespace of its own where a tmpfs over /sbin holds the
// link make install makes; the host's /sbin is not touched.
func TestMountHelper(t *testing.T) {
	needMount(t)
	needRoot(t, "mount(8) and a private mount namespace")
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	root := t.TempDir()
	home1, home2 := filepath.Join(root, "home1"), filepath.Join(root, "home2")
	mnt1, mnt2 := filepath.Join(root, "mnt1"), filepath.Join(root, "mnt2")
	sbin, err := filepath.EvalSymlinks("/sbin")
	if err != nil {
		t.Fatal(err)
	}
	fstab := filepath.Join(root, "fstab")
	opts := "settle=1s,time_scale=0,flush-age=1s,http=127.0.0.1:0"
	if err := os.WriteFile(fstab, []byte("# a tapefs line as an administrator writes it\n"+
		home2+" "+mnt2+" fuse.tapefs defaults,_netdev,allow_other,"+opts+" 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mkdir -p ` + q(mnt1) + ` ` + q(mnt2) + `
mount -t tmpfs tmpfs ` + q(sbin) + `
ln -s ` + q(tapefsBin) + ` ` + q(sbin) + `/mount.fuse.tapefs
mount -t fuse.tapefs -o ` + opts + ` ` + q(home1) + ` ` + q(mnt1) + `
grep -F " ` + mnt1 + ` " /proc/self/mounts
ls ` + q(mnt1) + `
echo hello > ` + q(mnt1) + `/default/put/a.txt
cat ` + q(mnt1) + `/default/put/a.txt
df -B1 --output=size ` + q(mnt1) + `
umount ` + q(mnt1) + `
mount -T ` + q(fstab) + ` ` + q(mnt2) + `
grep -F " ` + mnt2 + ` " /proc/self/mounts
ls ` + q(mnt2) + `
umount ` + q(mnt2) + `
grep -F " ` + mnt2 + ` " /proc/self/mounts && exit 1
echo done
`
	out, err := exec.Command("unshare", "--mount", "--propagation", "private", "bash", "-c", script).CombinedOutput()
	if err != nil {
		b1, _ := os.ReadFile(filepath.Join(home1, "tapefs.log"))
		t.Fatalf("%v\n%s\nlog of %s:\n%s", err, out, home1, lastLines(string(b1), 20))
	}
	s := string(out)
	for _, want := range []string{mnt1 + " fuse.tapefs ", mnt2 + " fuse.tapefs ", "default\n", "hello\n", "done\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// Both daemons were detached from mount(8) and stop on umount.
	waitStopped(t, home1)
	waitStopped(t, home2)
	for _, h := range []string{home1, home2} {
		b, _ := os.ReadFile(filepath.Join(h, "tapefs.log"))
		if !strings.Contains(string(b), `"message":"mount ready"`) {
			t.Errorf("%s/tapefs.log has no mount ready line:\n%s", h, lastLines(string(b), 10))
		}
	}
}

// TestMountHelperBadOption: a mistyped option stops mount(8) with the
// option named, exit status 1, and nothing mounted.
func TestMountHelperBadOption(t *testing.T) {
	needMount(t)
	root := t.TempDir()
	link := filepath.Join(root, "mount.fuse.tapefs")
	if err := os.Symlink(tapefsBin, link); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(link, filepath.Join(root, "home"), mnt, "-o", "rw,setle=1s").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `unknown mount option "setle=1s"`) {
		t.Errorf("message does not name the option:\n%s", out)
	}
	if isMounted(mnt) {
		t.Errorf("%s is mounted", mnt)
	}
}

// TestNotifyReadyStopping: started with NOTIFY_SOCKET (as systemd starts a
// Type=notify service), the daemon sends READY=1 once the mount is usable
// and STOPPING=1 when SIGTERM begins the unmount.
func TestNotifyReadyStopping(t *testing.T) {
	needMount(t)
	root := t.TempDir()
	home, mnt := filepath.Join(root, "home"), filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "notify")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := make(chan string, 8)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ln.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	cmd := exec.Command(tapefsBin, append(append([]string{"mount", "--home", home, "--http", "127.0.0.1:0"}, fastFlags()...), mnt)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "HOME="+root)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if isMounted(mnt) {
			_ = exec.Command("umount", "-l", mnt).Run()
		}
	})
	expect := func(want string) {
		t.Helper()
		select {
		case m := <-msgs:
			if m != want {
				t.Fatalf("notify message %q, want %q", m, want)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("no %s after 60 s\n%s", want, out.String())
		}
	}
	expect("READY=1")
	// READY=1 means usable: the mount is there and answers.
	if !isMounted(mnt) {
		t.Fatalf("READY=1 sent before %s was mounted", mnt)
	}
	if _, err := os.Stat(filepath.Join(mnt, "default", "put")); err != nil {
		t.Fatalf("after READY=1: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tapefs mount after SIGTERM: %v\n%s", err, out.String())
	}
}

// TestLogReopenOnHangup: after the log file is renamed (as logrotate does)
// and SIGHUP is sent, the daemon writes to a new file of the old name.
func TestLogReopenOnHangup(t *testing.T) {
	d := startDaemon(t, fastFlags()...)
	logPath := filepath.Join(d.home, "tapefs.log")
	// The ready line on stderr comes just before "mount ready" is logged:
	// rotate only once it is in the file, or it may land in the new one.
	waitFor(t, 30*time.Second, "mount ready in tapefs.log", func() (bool, string) {
		b, err := os.ReadFile(logPath)
		return err == nil && strings.Contains(string(b), `"message":"mount ready"`), "not yet"
	})
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	// The SIGHUP is sent by the postrotate script of the logrotate file
	// that make install installs, with this home for /var/lib/tapefs: a
	// daemon without a systemd unit (mount -t, fstab) is found by the pid
	// in its lock file.
	rot, err := os.ReadFile(filepath.Join("..", "dist", "tapefs.logrotate"))
	if err != nil {
		t.Fatal(err)
	}
	_, post, ok := strings.Cut(string(rot), "postrotate\n")
	post, _, ok2 := strings.Cut(post, "endscript")
	if !ok || !ok2 {
		t.Fatalf("dist/tapefs.logrotate has no postrotate script:\n%s", rot)
	}
	if out, err := exec.Command("sh", "-c", strings.ReplaceAll(post, "/var/lib/tapefs", d.home)).CombinedOutput(); err != nil {
		t.Fatalf("the logrotate postrotate script: %v\n%s", err, out)
	}
	waitFor(t, 30*time.Second, "a new tapefs.log after SIGHUP", func() (bool, string) {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(string(b), "log file reopened"), lastLines(string(b), 3)
	})
	d.stop()
	newLog, _ := os.ReadFile(logPath)
	oldLog, _ := os.ReadFile(logPath + ".1")
	if !strings.Contains(string(newLog), `"message":"stopped"`) {
		t.Errorf("the new log lacks the daemon's last line:\n%s", lastLines(string(newLog), 5))
	}
	if strings.Contains(string(oldLog), "log file reopened") || strings.Contains(string(oldLog), `"message":"stopped"`) {
		t.Errorf("lines after SIGHUP went to the rotated file:\n%s", lastLines(string(oldLog), 5))
	}
	if !strings.Contains(string(oldLog), `"message":"mount ready"`) {
		t.Errorf("the rotated file lost its lines:\n%s", lastLines(string(oldLog), 5))
	}
}

// dfBytes is df's size, used and available bytes for path.
func dfBytes(t *testing.T, path string) [3]int64 {
	t.Helper()
	out := sh(t, "", "df -B1 --output=size,used,avail "+q(path)+" | tail -n 1")
	f := strings.Fields(out)
	if len(f) != 3 {
		t.Fatalf("df %s: %q", path, out)
	}
	var r [3]int64
	for i := range f {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			t.Fatalf("df %s: %q", path, out)
		}
		r[i] = n
	}
	return r
}

// TestDfReportsCache: df of the mount's root and of put/ both report the
// cache, which is where what is copied in goes first: its size limit as
// the size, and the same use and room.
func TestDfReportsCache(t *testing.T) {
	d := startDaemon(t, append(fastFlags(), "--cache-size", "64M")...)
	check := func(when string) [3]int64 {
		t.Helper()
		root, put := dfBytes(t, d.mnt), dfBytes(t, d.put("default"))
		if root != put {
			t.Errorf("%s: df of the root %v and of put/ %v differ", when, root, put)
		}
		if root[0] != 64<<20 {
			t.Errorf("%s: df size %d, want the cache's 64 MiB (%d)", when, root[0], 64<<20)
		}
		if root[1]+root[2] > root[0] {
			t.Errorf("%s: used %d + available %d exceed the size %d", when, root[1], root[2], root[0])
		}
		return root
	}
	before := check("empty")
	src := t.TempDir()
	sh(t, src, "mkdir run && head -c 8388608 /dev/urandom > run/a.dat")
	id := d.cpSynced(filepath.Join(src, "run"), 2*time.Minute)
	after := check("after batch " + id)
	if after[1] < before[1]+8<<20 {
		t.Errorf("used %d after an 8 MiB batch, was %d before", after[1], before[1])
	}
}

// TestMakeInstall: make install puts the binary, the mount helper link,
// Elastic Tape's script names, the systemd unit (Type=notify, the
// installed binary), the man pages and the shell completions under DESTDIR.
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatalf("make: %v", err)
	}
	dest := t.TempDir()
	// make install builds first: into a binary of its own, not the one
	// the other tests run.
	out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "PREFIX=/opt/tapefs", "BIN="+filepath.Join(t.TempDir(), "tapefs")).CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(dest, "opt/tapefs/bin/tapefs")
	if v, err := exec.Command(bin, "--version").Output(); err != nil || !strings.HasPrefix(string(v), "tapefs ") {
		t.Errorf("%s --version: %v %q", bin, err, v)
	}
	target, err := os.Readlink(filepath.Join(dest, "sbin/mount.fuse.tapefs"))
	if err != nil || target != "/opt/tapefs/bin/tapefs" {
		t.Errorf("sbin/mount.fuse.tapefs -> %q (%v), want /opt/tapefs/bin/tapefs", target, err)
	}
	// Elastic Tape's script names, next to the binary.
	for _, n := range cli.ETNames {
		link := filepath.Join(dest, "opt/tapefs/bin", n)
		if target, err := os.Readlink(link); err != nil || target != "tapefs" {
			t.Errorf("bin/%s -> %q (%v), want tapefs", n, target, err)
		}
		if out, err := exec.Command(link, "--help").Output(); err != nil || !strings.Contains(string(out), "Elastic Tape") {
			t.Errorf("%s --help: %v %q", link, err, out)
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "opt/tapefs/lib/systemd/system/tapefs.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nType=notify\n", "\nExecStart=/opt/tapefs/bin/tapefs mount ", "\nExecReload=/bin/kill -HUP $MAINPID\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	if _, err := os.Stat(filepath.Join(dest, "etc/logrotate.d/tapefs")); err != nil {
		t.Error(err)
	}
	// The man pages (one per command) and the completion of each shell.
	for _, p := range []string{"share/man/man1/tapefs.1", "share/man/man1/tapefs-put.1", "share/man/man1/tapefs-mount.1",
		"share/bash-completion/completions/tapefs", "share/zsh/site-functions/_tapefs", "share/fish/vendor_completions.d/tapefs.fish"} {
		if b, err := os.ReadFile(filepath.Join(dest, "opt/tapefs", p)); err != nil || !strings.Contains(string(b), "tapefs") {
			t.Errorf("make install: %s: %v", p, err)
		}
	}
}

// TestMountFuse3Form: without mount.fuse.tapefs installed, mount(8) falls
// back to mount.fuse3, which runs "tapefs HOME MNT -o OPTIONS"; that form
// mounts too, in the background, and returns once the mount is usable.
func TestMountFuse3Form(t *testing.T) {
	needMount(t)
	root := t.TempDir()
	home, mnt := filepath.Join(root, "home"), filepath.Join(root, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tapefsBin, home, mnt, "-o", "rw,nosuid,nodev,settle=1s,time_scale=0,http=127.0.0.1:0").CombinedOutput()
	if err != nil {
		t.Fatalf("tapefs HOME MNT -o …: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if isMounted(mnt) {
			_ = exec.Command("fusermount3", "-u", "-z", mnt).Run()
		}
	})
	if !isMounted(mnt) {
		t.Fatalf("exit 0 but %s is not mounted\n%s", mnt, out)
	}
	if _, err := os.Stat(filepath.Join(mnt, "default", "put")); err != nil {
		t.Fatal(err)
	}
	sh(t, "", "fusermount3 -u "+q(mnt)+" 2>/dev/null || umount "+q(mnt))
	waitStopped(t, home)
}

// TestUnitVerifies: systemd-analyze verify accepts the installed unit (its
// ExecStart must name an executable, so the tree is installed for real
// under a temporary PREFIX). systemd does not run here (no PID 1 to start
// the unit with), so this is as far as the unit can be checked; the notify
// protocol it relies on is TestNotifyReadyStopping.
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		skip(t, "systemd-analyze is not installed (package systemd): the unit file is not verified")
	}
	prefix := t.TempDir()
	out, err := exec.Command("make", "-C", "..", "install", "PREFIX="+prefix, "SBINDIR="+prefix+"/sbin",
		"LOGROTATEDIR="+prefix+"/etc/logrotate.d", "BIN="+filepath.Join(t.TempDir(), "tapefs")).CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	unit := filepath.Join(prefix, "lib/systemd/system/tapefs.service")
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
	}
}

// TestMountHelperDaemonError: when the daemon cannot start (here: its home
// is a file), the mount helper shows the daemon's error and exits 32, the
// status mount(8) documents for a failed mount.
func TestMountHelperDaemonError(t *testing.T) {
	needMount(t)
	root := t.TempDir()
	home, mnt := filepath.Join(root, "home"), filepath.Join(root, "mnt")
	if err := os.WriteFile(home, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "mount.fuse.tapefs")
	if err := os.Symlink(tapefsBin, link); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(link, home, mnt, "-o", "rw,http=127.0.0.1:0").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 32 {
		t.Fatalf("want exit status 32, got %v\n%s", err, out)
	}
	for _, want := range []string{"tapefs: home: ", home, "the daemon stopped before the mount was ready"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if isMounted(mnt) {
		t.Errorf("%s is mounted", mnt)
	}
}

// TestXDGDataHome: a user's daemon without --home keeps its home in
// $XDG_DATA_HOME/tapefs, and that user's command line finds it there.
func TestXDGDataHome(t *testing.T) {
	needRoot(t, "runs the daemon and the command line as another user")
	xdg := filepath.Join(sharedTempDir(t), "xdg")
	if err := os.Mkdir(xdg, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(xdg, nobodyUID, nobodyUID); err != nil {
		t.Fatal(err)
	}
	o := cliOpts{nobody: true, env: []string{"XDG_DATA_HOME=" + xdg}}
	serve := tapefsCmd(t, o, "serve", "--http", "", "--time-scale", "0")
	var out strings.Builder
	serve.Stdout, serve.Stderr = &out, &out
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if serve.ProcessState == nil {
			_ = serve.Process.Kill()
			_ = serve.Wait()
		}
	})
	sock := filepath.Join(xdg, "tapefs", "tapefs.sock")
	waitFor(t, 60*time.Second, "the daemon's socket "+sock, func() (bool, string) {
		_, err := os.Stat(sock)
		return err == nil, out.String()
	})
	r := runTapefs(t, o, "ls", "-L", "workspace")
	if r.code != 0 || !strings.Contains(r.stdout, "default") {
		t.Fatalf("the command line did not find the daemon under XDG_DATA_HOME:\n%s", r)
	}
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve.Wait(); err != nil {
		t.Fatalf("tapefs serve: %v\n%s", err, out.String())
	}
}
