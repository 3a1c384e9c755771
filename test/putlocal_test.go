package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// put/ behaves like a local directory (issue 8, "smaller ones"): each test
// does the same thing in a local directory and in put/, and wants the same
// result.

// quietFlags: a settle time long enough that nothing is sealed under the
// test.
func quietFlags(more ...string) []string {
	return append([]string{"--time-scale", "0", "--settle", "1h", "--flush-age", "1s", "--recall-linger", "1ms"}, more...)
}

// A file created with mode 0 and a directory made with mode 0 show mode 0,
// as they are on disk (go-fuse shows 0644/0755 without NullPermissions).
func TestPutNullPermissions(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, quietFlags()...)
	local := t.TempDir()
	entry := filepath.Join(d.put("default"), "e")
	if err := os.Mkdir(entry, 0o755); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	syscall.Umask(old) // only read: the modes asked for are 0 whatever the umask
	for _, dir := range []string{local, entry} {
		fd, err := unix.Open(filepath.Join(dir, "f"), unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, 0)
		if err != nil {
			t.Fatalf("open(O_CREAT, 0) in %s: %v", dir, err)
		}
		if _, err := unix.Write(fd, []byte("data\n")); err != nil {
			t.Fatalf("write to a mode-0 file just created: %v", err)
		}
		unix.Close(fd)
		if err := unix.Mkdir(filepath.Join(dir, "d"), 0); err != nil {
			t.Fatalf("mkdir(…, 0) in %s: %v", dir, err)
		}
	}
	staged := filepath.Join(d.home, "cache", "put", "default", "e")
	for _, name := range []string{"f", "d"} {
		want := modeOf(t, filepath.Join(local, name))
		if got := modeOf(t, filepath.Join(entry, name)); got != want {
			t.Errorf("put/e/%s shows mode %04o, want %04o (the same made in a local directory)", name, got, want)
		}
		if got := modeOf(t, filepath.Join(staged, name)); got != want {
			t.Errorf("the staged copy of e/%s has mode %04o, want %04o", name, got, want)
		}
	}
}

func modeOf(t *testing.T, p string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Mode & 0o7777
}

// A write or truncation by an unprivileged user clears the setuid bit, and
// the setgid bit of a group-executable file, as on a local file system.
func TestPutWriteClearsSetid(t *testing.T) {
	t.Parallel()
	setpriv := needSetpriv(t)
	d := newDaemon(t, quietFlags("--allow-other")...)
	// The mount point's parents are the test's 0700 temporary directory.
	for _, p := range []string{filepath.Dir(d.mnt), filepath.Dir(filepath.Dir(d.mnt))} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.start()
	uid := strconv.Itoa(nobodyUID)
	cliOK(t, cliOpts{home: d.home}, "workspace", "create", "w", "--owner", uid, "--group", uid)
	entry := filepath.Join(d.put("w"), "e")
	local := filepath.Join(sharedTempDir(t), "e")

	// file: mode before; what the unprivileged user does to it.
	cases := []struct{ name, script string }{
		{"append", "echo more >> {}"},
		{"trunc-open", ": > {}"},
		{"truncate", "truncate -s 3 {}"},
		{"dd-notrunc", "printf x | dd of={} conv=notrunc status=none"},
	}
	modes := []uint32{0o6777, 0o2766, 0o4766}
	for _, dir := range []string{local, entry} {
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		for _, c := range cases {
			for _, m := range modes {
				p := filepath.Join(dir, fmt.Sprintf("%s-%04o", c.name, m))
				if err := os.WriteFile(p, []byte("content\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := unix.Chmod(p, m); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, dir := range []string{local, entry} {
		for _, c := range cases {
			for _, m := range modes {
				name := fmt.Sprintf("%s-%04o", c.name, m)
				cmd := exec.Command(setpriv, "--reuid="+uid, "--regid="+uid, "--clear-groups", "--",
					"bash", "-c", "set -e; "+strings.ReplaceAll(c.script, "{}", name))
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("as uid %s in %s: %s: %v\n%s", uid, dir, c.script, err, out)
				}
			}
		}
	}
	for _, c := range cases {
		for _, m := range modes {
			name := fmt.Sprintf("%s-%04o", c.name, m)
			want := modeOf(t, filepath.Join(local, name))
			if want == m && m&0o4000 != 0 {
				t.Fatalf("%s: the local file system kept mode %04o: the test proves nothing", name, m)
			}
			// The kernel may show the cached mode for a moment.
			waitFor(t, 5*time.Second, fmt.Sprintf("put/e/%s to show mode %04o as in a local directory", name, want), func() (bool, string) {
				got := modeOf(t, filepath.Join(entry, name))
				return got == want, fmt.Sprintf("%04o", got)
			})
		}
	}
}
